"""Checks across groups: combinations that compose fine but cannot train."""

from __future__ import annotations

from omegaconf import DictConfig, ListConfig

from trainlab.config.errors import Problem
from trainlab.config.schema.loss import BINARY_LOSSES, CLASSIFICATION_LOSSES, REGRESSION_LOSSES
from trainlab.config.suggest import did_you_mean
from trainlab.data.datasets import CLASSIFICATION, DatasetError, DatasetInfo, describe
from trainlab.metrics import metric_names


def check_combinations(cfg: DictConfig) -> list[Problem]:
    """Problems that involve more than one key (loss vs. task, monitor vs. metrics, ...)."""
    problems: list[Problem] = [*_check_folds(cfg.dataset), *_check_fractions(cfg.dataset)]
    problems += _check_schedule(cfg)
    problems += _check_lr_find(cfg) + _check_batch_size_find(cfg)
    try:
        info = describe(cfg.dataset)
    except DatasetError as error:
        return [*problems, *(Problem(each.key, str(each)) for each in error.every())]
    problems += _check_target_normalization(cfg.dataset, info)
    problems += _check_loss(cfg, info)
    problems += _check_regularizers(cfg, info)
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
    if not str(cfg.tracking.experiment).strip():
        problems.append(
            Problem(
                "tracking.experiment",
                "is empty; name the MLflow experiment the runs go to, e.g. "
                "tracking.experiment=my-study (default: trainlab)",
            )
        )
    problems += _check_model(cfg.model, str(cfg.dataset.name), info)
    problems += _check_curriculum(cfg)
    return problems


def _check_curriculum(cfg: DictConfig) -> list[Problem]:
    """curriculum=score needs a dataset that scores its examples."""
    from trainlab.data.datasets import datasets_with_difficulty, provides_difficulty

    if cfg.curriculum.name != "score" or provides_difficulty(cfg.dataset):
        return []
    return [
        Problem(
            "curriculum",
            f"score orders the examples by a difficulty the dataset provides, and dataset "
            f"{cfg.dataset.name} provides none. Datasets that do: "
            f"{', '.join(datasets_with_difficulty())}; a CSV with "
            "dataset.difficulty_column=COLUMN. Or use curriculum=loss (each example's loss "
            "after a warm-up epoch).",
        )
    ]


def _check_folds(dataset: DictConfig) -> list[Problem]:
    folds, fold = int(dataset.folds), int(dataset.fold)
    if folds >= 2 and fold >= folds:
        return [
            Problem(
                "dataset.fold",
                f"fold {fold} does not exist with dataset.folds={folds}: folds are numbered "
                f"0 .. {folds - 1}; sweep them all with dataset.fold=range({folds}).",
            )
        ]
    if folds < 2 and fold > 0:
        return [
            Problem(
                "dataset.fold",
                f"dataset.fold={fold} picks a cross-validation fold, but cross-validation is "
                f"off (dataset.folds={folds}); set dataset.folds to {fold + 1} or more, or "
                "leave dataset.fold=0.",
            )
        ]
    return []


def _check_fractions(dataset: DictConfig) -> list[Problem]:
    if int(dataset.folds) >= 2:  # the folds decide validation; val_fraction is not used
        return []
    total = float(dataset.val_fraction) + float(dataset.test_fraction)
    if total < 1.0:
        return []
    return [
        Problem(
            "dataset.val_fraction",
            f"dataset.val_fraction={dataset.val_fraction} + dataset.test_fraction="
            f"{dataset.test_fraction} = {total:g} leaves no rows for training; make the two "
            "sum to less than 1 (e.g. 0.2 and 0.1).",
        )
    ]


def _check_target_normalization(dataset: DictConfig, info: DatasetInfo) -> list[Problem]:
    if not dataset.normalize_target or info.task != CLASSIFICATION:
        return []
    return [
        Problem(
            "dataset.normalize_target",
            f"dataset={dataset.name} is a classification task and class labels cannot be "
            "standardised; set dataset.normalize_target=false.",
        )
    ]


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
    name, dataset = str(cfg.loss.name), cfg.dataset.name
    if name == "auto":
        return []
    if info.task == CLASSIFICATION and name in REGRESSION_LOSSES:
        return [
            Problem(
                "loss",
                f"{name} is a regression loss but dataset={dataset} is a classification "
                "task; use loss=cross_entropy (or focal; bce for two classes) or loss=auto.",
            )
        ]
    if info.task != CLASSIFICATION and name in CLASSIFICATION_LOSSES:
        why = " (it down-weights well-classified examples)" if name == "focal" else ""
        return [
            Problem(
                "loss",
                f"{name} needs class labels{why} but dataset={dataset} is a regression task; "
                f"use loss=mse (or {', '.join(REGRESSION_LOSSES[1:])}) or loss=auto.",
            )
        ]
    if name in BINARY_LOSSES and info.num_classes != 2:
        return [
            Problem(
                "loss",
                f"{name} is for two classes (one logit) but dataset={dataset} has "
                f"{info.num_classes}; use loss=cross_entropy or loss=focal.",
            )
        ]
    if name == "cross_entropy":
        return _check_class_weights("loss.class_weights", cfg.loss.class_weights, info, dataset)
    if name == "focal":
        alpha = cfg.loss.alpha
        if isinstance(alpha, int | float) and not isinstance(alpha, bool):
            return _check_focal_alpha(float(alpha), info, dataset)
        return _check_class_weights("loss.alpha", alpha, info, dataset)
    return []


def _check_class_weights(key: str, value: object, info: DatasetInfo, dataset: str) -> list[Problem]:
    """None, "balanced", or one non-negative number per class (not all zero)."""
    example = "[" + ", ".join(["1"] * info.num_classes) + "]"
    if value is None or value == "balanced":
        return []
    if isinstance(value, str):
        return [
            Problem(
                key,
                f"{value!r} is not a class weighting; use null, balanced (n / (classes * "
                f"count) from the training split) or one weight per class, e.g. {example}."
                + did_you_mean(value, ("balanced",)),
            )
        ]
    if not isinstance(value, ListConfig):
        return [
            Problem(
                key,
                f"{value!r}: give one weight per class ({info.num_classes} for "
                f"dataset={dataset}), e.g. {example}, or balanced.",
            )
        ]
    weights = list(value)
    if len(weights) != info.num_classes:
        return [
            Problem(
                key,
                f"{len(weights)} weights for the {info.num_classes} classes of "
                f"dataset={dataset}; give exactly one per class, e.g. {example}, or use "
                "balanced to derive them from the training split.",
            )
        ]
    numbers = [w for w in weights if isinstance(w, int | float) and not isinstance(w, bool)]
    if len(numbers) != len(weights) or min(numbers) < 0 or max(numbers) == 0:
        return [
            Problem(
                key,
                f"{weights} must be numbers >= 0, at least one of them > 0 (a weight scales "
                "the loss of its class).",
            )
        ]
    return []


def _check_focal_alpha(alpha: float, info: DatasetInfo, dataset: str) -> list[Problem]:
    if info.num_classes != 2:
        return [
            Problem(
                "loss.alpha",
                f"a single alpha ({alpha:g}) is the weight of class 1 in a binary task, but "
                f"dataset={dataset} has {info.num_classes} classes; give one weight per class "
                "(loss.alpha=[...]) or loss.alpha=balanced.",
            )
        ]
    if not 0.0 <= alpha <= 1.0:
        return [
            Problem(
                "loss.alpha",
                f"{alpha:g} is not allowed; expected a number in [0, 1]: alpha weighs class 1 "
                "and 1 - alpha class 0 (0.25 is RetinaNet's; 0.5 weighs both alike).",
            )
        ]
    return []


def _check_regularizers(cfg: DictConfig, info: DatasetInfo) -> list[Problem]:
    """Regularizers that cannot act on this task or model (droppath without residual blocks,
    label smoothing on a regression target, ...)."""
    if not cfg.regularizer:
        return []
    from trainlab.regularizers import RegularizerContext, regularizer_problems

    def make_model() -> object:
        from trainlab.models import build_model

        try:
            return build_model(cfg.model, info.input_shape, max(info.num_classes, 1))
        except Exception:  # a model that cannot be built is reported by its own checks
            return None

    found = regularizer_problems(cfg.regularizer, RegularizerContext.of(info), make_model)
    return [Problem(f"regularizer.{name}", message) for name, message in found]


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
            problems.append(
                Problem(
                    "trainer.precision",
                    "fp16 needs a CUDA device (its gradient scaler is CUDA-only); use "
                    "trainer.precision=bf16 on the CPU, or fp32.",
                )
            )
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


# Models that need examples of a particular shape; every other model flattens its input.
IMAGE_MODELS = ("cnn",)
SEQUENCE_MODELS = ("rnn", "lstm", "gru", "transformer")


def _check_model(model: DictConfig, dataset: str, info: DatasetInfo) -> list[Problem]:
    """Model options that cannot work: with this dataset's example shape, or together."""
    return [
        *_check_model_input(str(model.name), dataset, info.input_shape),
        *_check_attention_heads(model),
        *_check_alpha_dropout(model),
        *_check_group_norm(model),
    ]


def _check_model_input(name: str, dataset: str, shape: tuple[int, ...]) -> list[Problem]:
    if name in IMAGE_MODELS and len(shape) != 3:
        return [
            Problem(
                "model",
                f"model={name} convolves images shaped (channels, height, width), but "
                f"dataset={dataset} gives examples shaped {shape}; use dataset=digits "
                "dataset.shape=image (or dataset=npz with (samples, C, H, W) features), or a "
                "model that flattens its input (model=mlp).",
            )
        ]
    if name in SEQUENCE_MODELS and len(shape) != 2:
        return [
            Problem(
                "model",
                f"model={name} reads sequences shaped (time, features), but "
                f"dataset={dataset} gives examples shaped {shape}; use dataset=sine_sequences "
                "(or dataset=npz with (samples, T, F) features), or a model that flattens its "
                "input (model=mlp).",
            )
        ]
    return []


def _check_attention_heads(model: DictConfig) -> list[Problem]:
    if "heads" not in model or model.d_model % model.heads == 0:
        return []
    divisors = [h for h in range(1, min(model.d_model, 16) + 1) if model.d_model % h == 0]
    nearest = sorted(sorted(divisors, key=lambda h: (abs(h - model.heads), h))[:3])
    return [
        Problem(
            "model.heads",
            f"model.d_model={model.d_model} is not divisible by model.heads={model.heads}: "
            "attention splits d_model evenly between the heads; use model.heads="
            f"{' or '.join(map(str, nearest))}, or a d_model that is a multiple of "
            f"{model.heads}.",
        )
    ]


def _check_alpha_dropout(model: DictConfig) -> list[Problem]:
    # An error, not allowed-with-a-note: alpha dropout keeps the mean and variance that SELU
    # self-normalises to; after any other activation it only distorts the activations.
    if "dropout_type" not in model or model.dropout_type != "alpha" or model.activation == "selu":
        return []
    return [
        Problem(
            "model.dropout_type",
            f"alpha dropout is made for SELU (it preserves SELU's zero mean and unit "
            f"variance), not for activation={model.activation}; use model.activation=selu, "
            "or model.dropout_type=standard.",
        )
    ]


def _check_group_norm(model: DictConfig) -> list[Problem]:
    if "norm_groups" not in model or model.norm != "group":
        return []
    groups = int(model.norm_groups)
    uneven = [int(c) for c in model.channels if int(c) % groups]
    if not uneven:
        return []
    return [
        Problem(
            "model.norm_groups",
            f"norm=group splits each block's channels into {groups} groups, but "
            f"{', '.join(map(str, uneven))} channels cannot be split evenly; choose "
            "model.norm_groups dividing every entry of model.channels "
            f"({list(map(int, model.channels))}).",
        )
    ]


def _check_schedule(cfg: DictConfig) -> list[Problem]:
    """Scheduler settings that compose but cannot give the schedule that was asked for."""
    scheduler, epochs = cfg.scheduler, int(cfg.trainer.max_epochs)
    return [
        *_check_schedule_interval(scheduler, epochs),
        *_check_warmup(scheduler, epochs),
        *_check_milestones(scheduler, epochs),
        *(
            _check_cyclic_bounds(scheduler, float(cfg.optimizer.lr))
            if _is_number(cfg.optimizer.lr) and cfg.optimizer.lr > 0
            else []  # auto: the bounds are known once the range test has run
        ),
        *_check_cycle_momentum(scheduler, cfg.optimizer),
    ]


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _check_lr_find(cfg: DictConfig) -> list[Problem]:
    lr_find = cfg.lr_find
    if float(lr_find.start_lr) < float(lr_find.end_lr):
        return []
    return [
        Problem(
            "lr_find.end_lr",
            f"the range test sweeps from lr_find.start_lr={lr_find.start_lr:g} up to "
            f"lr_find.end_lr={lr_find.end_lr:g}, so end_lr must be the larger; the defaults "
            "1e-7 .. 10 cover most models.",
        )
    ]


def _check_batch_size_find(cfg: DictConfig) -> list[Problem]:
    finder = cfg.batch_size_find
    if finder.max_batch_size is None or int(finder.max_batch_size) >= int(finder.min_batch_size):
        return []
    return [
        Problem(
            "batch_size_find.max_batch_size",
            f"{finder.max_batch_size} is below batch_size_find.min_batch_size="
            f"{finder.min_batch_size}; raise it, or set it to null (up to the training rows).",
        )
    ]


def _check_schedule_interval(scheduler: DictConfig, epochs: int) -> list[Problem]:
    name, interval = str(scheduler.name), str(scheduler.interval)
    if name in ("onecycle", "cyclic") and interval == "epoch":
        return [
            Problem(
                "scheduler.interval",
                f"{name} is laid out in optimizer steps (it rises and falls within a share of "
                f"the run); stepped once per epoch it becomes a staircase of only "
                f"trainer.max_epochs={epochs} values. Use scheduler.interval=step.",
            )
        ]
    if name == "plateau" and interval == "step":
        return [
            Problem(
                "scheduler.interval",
                "plateau reacts to a validation metric, which is measured once per epoch, so it "
                "cannot step per batch. Use scheduler.interval=epoch (its warm-up, if any, still "
                "moves every step).",
            )
        ]
    return []


def _check_warmup(scheduler: DictConfig, epochs: int) -> list[Problem]:
    warmup = float(scheduler.warmup_epochs)
    if warmup <= 0:
        return []
    if warmup >= epochs:
        return [
            Problem(
                "scheduler.warmup_epochs",
                f"a warm-up of {warmup:g} epochs fills the whole run (trainer.max_epochs="
                f"{epochs}), so the {scheduler.name} schedule would never start. Use a warm-up "
                "of a few percent of the run, or raise trainer.max_epochs.",
            )
        ]
    if scheduler.interval == "epoch" and scheduler.name != "plateau" and not warmup.is_integer():
        return [
            Problem(
                "scheduler.warmup_epochs",
                f"{warmup:g} is not a whole number of epochs, but with scheduler.interval=epoch "
                "the rate moves once per epoch. Set scheduler.interval=step for a fractional "
                "warm-up, or use whole epochs.",
            )
        ]
    return []


def _check_milestones(scheduler: DictConfig, epochs: int) -> list[Problem]:
    if scheduler.name != "multistep":
        return []
    milestones = [int(m) for m in scheduler.milestones]
    if not milestones:
        return [
            Problem(
                "scheduler.milestones",
                "is empty, so the rate would never change; list the epochs at which to "
                "multiply it by gamma, e.g. scheduler.milestones=[10,15], or use scheduler=none.",
            )
        ]
    if milestones != sorted(set(milestones)):
        return [
            Problem(
                "scheduler.milestones",
                f"{milestones} must increase strictly (a repeated milestone applies gamma twice); "
                f"write them in order, e.g. {sorted(set(milestones))}.",
            )
        ]
    warmup = float(scheduler.warmup_epochs)
    last = milestones[-1]
    if warmup + last >= epochs:
        after = f" (epoch {warmup + last:g}: counted after the warm-up)" if warmup > 0 else ""
        return [
            Problem(
                "scheduler.milestones",
                f"milestone {last}{after} is at or past the end of the run (trainer.max_epochs="
                f"{epochs}), so the rate would never drop there. Use milestones below "
                f"{epochs - warmup:g} or raise trainer.max_epochs.",
            )
        ]
    return []


def _check_cyclic_bounds(scheduler: DictConfig, optimizer_lr: float) -> list[Problem]:
    if scheduler.name != "cyclic":
        return []
    from trainlab.config.schema.scheduler import cyclic_bounds

    base_lr, max_lr = cyclic_bounds(scheduler, optimizer_lr)
    if base_lr < max_lr:
        return []
    source = "optimizer.lr" if scheduler.max_lr is None else "scheduler.max_lr"
    return [
        Problem(
            "scheduler.base_lr",
            f"the cycle's bottom base_lr={base_lr:g} is not below its top max_lr={max_lr:g} "
            f"(from {source}), so it would run upside down. Lower scheduler.base_lr (a quarter "
            "of max_lr is usual; null picks that) or raise scheduler.max_lr.",
        )
    ]


def _check_cycle_momentum(scheduler: DictConfig, optimizer: DictConfig) -> list[Problem]:
    if scheduler.name not in ("onecycle", "cyclic") or not scheduler.get("cycle_momentum"):
        return []
    if "momentum" in optimizer or "betas" in optimizer:
        return []
    return [
        Problem(
            "scheduler.cycle_momentum",
            f"{scheduler.name} cycles the momentum against the learning rate, but "
            f"optimizer={optimizer.name} has neither momentum nor betas. Set "
            "scheduler.cycle_momentum=false, or use an optimizer with momentum (sgd, adamw).",
        )
    ]
