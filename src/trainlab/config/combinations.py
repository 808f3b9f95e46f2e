"""Checks across groups: combinations that compose fine but cannot train."""

from __future__ import annotations

from omegaconf import DictConfig

from trainlab.config.errors import Problem
from trainlab.config.suggest import did_you_mean
from trainlab.data.datasets import CLASSIFICATION, DatasetError, DatasetInfo, describe
from trainlab.metrics import metric_names


def check_combinations(cfg: DictConfig) -> list[Problem]:
    """Problems that involve more than one key (loss vs. task, monitor vs. metrics, ...)."""
    problems: list[Problem] = []
    try:
        info = describe(cfg.dataset)
    except DatasetError as error:
        return [Problem(error.key, str(error))]
    problems += _check_loss(cfg, info)
    problems += _check_monitor("trainer.monitor", cfg.trainer.monitor, info)
    if cfg.scheduler.name == "plateau" and cfg.scheduler.monitor is not None:
        problems += _check_monitor("scheduler.monitor", cfg.scheduler.monitor, info)
    if (
        cfg.optimizer.name == "sgd"
        and cfg.optimizer.nesterov
        and (cfg.optimizer.momentum <= 0 or cfg.optimizer.dampening != 0)
    ):
        problems.append(
            Problem(
                "optimizer.nesterov",
                "Nesterov momentum needs optimizer.momentum > 0 and optimizer.dampening=0.",
            )
        )
    problems += _check_device(cfg.trainer.device)
    problems += _check_trainer(cfg.trainer, info)
    problems += _check_tracking_uri(str(cfg.tracking.uri))
    return problems


TRACKING_SCHEMES = ("sqlite", "file", "http", "https", "postgresql", "mysql", "mssql", "databricks")


def _check_tracking_uri(uri: str) -> list[Problem]:
    scheme = uri.split(":", 1)[0].split("+", 1)[0] if ":" in uri else ""
    if scheme not in TRACKING_SCHEMES:
        return [
            Problem(
                "tracking.uri",
                f"{uri!r} is not an MLflow store URI; use "
                "sqlite:///path/to/mlflow.db, http://host:port (a tracking server) or "
                "postgresql://user@host/db.",
            )
        ]
    if scheme == "sqlite" and not uri.startswith("sqlite:///"):
        return [
            Problem(
                "tracking.uri",
                f"{uri!r}: a sqlite URI has three slashes and a "
                "path, e.g. sqlite:///outputs/mlflow.db.",
            )
        ]
    return []


def _check_loss(cfg: DictConfig, info: DatasetInfo) -> list[Problem]:
    name = cfg.loss.name
    if name == "auto":
        return []
    if info.task == CLASSIFICATION and name == "mse":
        return [
            Problem(
                "loss",
                f"mse is a regression loss but dataset={cfg.dataset.name} is a "
                f"classification task; use loss=cross_entropy or loss=auto.",
            )
        ]
    if info.task != CLASSIFICATION and name in ("cross_entropy", "bce"):
        return [
            Problem(
                "loss",
                f"{name} needs class labels but dataset={cfg.dataset.name} is "
                "a regression task; use loss=mse or loss=auto.",
            )
        ]
    if name == "bce" and info.num_classes != 2:
        return [
            Problem(
                "loss",
                f"bce is for two classes but dataset={cfg.dataset.name} has "
                f"{info.num_classes}; use loss=cross_entropy.",
            )
        ]
    return []


def _check_monitor(key: str, monitor: str, info: DatasetInfo) -> list[Problem]:
    known = metric_names(info.task, info.num_classes)
    if monitor in known:
        return []
    return [
        Problem(
            key,
            f"{monitor!r} is not a metric of this {info.task} run; choose one of "
            f"{', '.join(known)}.{did_you_mean(monitor, known)}",
        )
    ]


def _check_trainer(trainer: DictConfig, info: DatasetInfo) -> list[Problem]:
    """Early-stopping monitor, and fp16 (which needs CUDA)."""
    problems: list[Problem] = []
    if trainer.early_stopping.monitor is not None:
        problems += _check_monitor(
            "trainer.early_stopping.monitor", trainer.early_stopping.monitor, info
        )
    if trainer.precision == "fp16":
        import torch

        if not torch.cuda.is_available() or trainer.device in ("cpu", "mps"):
            problems.append(Problem("trainer.precision", "fp16 needs a CUDA device (its "
                                    "gradient scaler is CUDA-only); use trainer.precision=bf16 "
                                    "on the CPU, or fp32."))
    return problems


def _check_device(device: str) -> list[Problem]:
    if device in ("auto", "cpu"):
        return []
    if not (device == "cuda" or device.startswith("cuda:") or device == "mps"):
        return [
            Problem(
                "trainer.device", f"{device!r} is not a device; use auto, cpu, cuda, cuda:N or mps."
            )
        ]
    import torch

    if device.startswith("cuda"):
        if not torch.cuda.is_available():
            return [
                Problem(
                    "trainer.device",
                    f"{device} was asked for but this machine has no "
                    "CUDA device; use trainer.device=auto or cpu.",
                )
            ]
        index = int(device.split(":")[1]) if ":" in device else 0
        if index >= torch.cuda.device_count():
            return [
                Problem(
                    "trainer.device",
                    f"{device} does not exist; this machine has "
                    f"{torch.cuda.device_count()} CUDA device(s).",
                )
            ]
    if device == "mps" and not torch.backends.mps.is_available():
        return [
            Problem(
                "trainer.device",
                "mps was asked for but is not available here; use trainer.device=auto or cpu.",
            )
        ]
    return []
