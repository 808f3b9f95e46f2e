"""A finished (or failed) run as the doctor reads it: metric series, params, the gradient
monitor's samples, status and error.

Built from the MLflow store (:meth:`RunHistory.from_store`, what ``trainlab diagnose`` and
the end of every run use) or from plain points (tests, the live monitor), so every detector
sees the same shapes whatever the source.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from mlflow import MlflowClient

GRADIENTS_ARTIFACT = "gradients/gradients.json"
STORED_INFINITY = 1.7e308  # MLflow clamps +-inf to +-sys.float_info.max (1.797e308)
# The series the detectors read; other metrics of a run are ignored.
SERIES = (
    "train/loss",
    "train/lr",
    "train/grad_norm",
    "train/epoch_loss",
    "val/loss",
    "val/acc",
    "val/f1",
    "val/recall",
    "val/precision",
    "val/auroc",
    "val/r2",
    "val/mse",
    "epoch",
)


@dataclass
class Series:
    """One metric: steps and values in step order (NaN where the run logged NaN)."""

    steps: np.ndarray
    values: np.ndarray

    def __len__(self) -> int:
        return len(self.values)

    @classmethod
    def of(cls, points: list[tuple[int, float]]) -> Series:
        ordered = sorted(points)
        return cls(
            np.array([p[0] for p in ordered], dtype=np.int64),
            np.array([p[1] for p in ordered], dtype=np.float64),
        )


@dataclass
class GradientHistory:
    """The gradient monitor's samples: layers x steps matrices (NaN for a missing value)."""

    steps: np.ndarray
    layers: list[str]
    grad_norm: np.ndarray  # (layers, samples)
    weight_norm: np.ndarray
    update_ratio: np.ndarray
    activations: list[str] = field(default_factory=list)
    dead_fraction: np.ndarray = field(default_factory=lambda: np.zeros((0, 0)))

    @classmethod
    def from_summary(cls, data: dict[str, Any]) -> GradientHistory:
        """From ``gradients.json`` (:meth:`GradientMonitor.summary`)."""

        def matrix(rows: list[list[float | None]], count: int) -> np.ndarray:
            if not rows:
                return np.full((count, 0), np.nan)
            return np.array(
                [[math.nan if v is None else float(v) for v in row] for row in rows], dtype=float
            )

        layers = list(data.get("layers", []))
        activations = list(data.get("activations", []))
        return cls(
            steps=np.array(data.get("steps", []), dtype=np.int64),
            layers=layers,
            grad_norm=matrix(data.get("grad_norm", []), len(layers)),
            weight_norm=matrix(data.get("weight_norm", []), len(layers)),
            update_ratio=matrix(data.get("update_ratio", []), len(layers)),
            activations=activations,
            dead_fraction=matrix(data.get("dead_fraction", []), len(activations)),
        )

    @property
    def samples(self) -> int:
        return len(self.steps)


@dataclass
class RunHistory:
    """Everything the detectors may read about one run."""

    series: dict[str, Series]
    params: dict[str, str]
    gradients: GradientHistory | None = None
    status: str = "FINISHED"
    error: str = ""
    run_id: str = ""

    def get(self, name: str) -> Series:
        """The series ``name``, empty if the run did not log it."""
        return self.series.get(name) or Series(np.zeros(0, np.int64), np.zeros(0))

    def param(self, name: str, default: float = math.nan) -> float:
        """A numeric param (``data.baseline_loss``), ``default`` if absent or not a number."""
        try:
            return float(self.params[name])
        except (KeyError, ValueError):
            return default

    def text(self, name: str, default: str = "") -> str:
        return str(self.params.get(name, default))

    def json_param(self, name: str) -> Any:
        try:
            return json.loads(self.params[name])
        except (KeyError, ValueError):
            return None

    @classmethod
    def from_points(
        cls,
        points: list[tuple[str, float, int]],
        params: dict[str, Any] | None = None,
        gradients: dict[str, Any] | None = None,
        status: str = "FINISHED",
        error: str = "",
        run_id: str = "",
    ) -> RunHistory:
        """From ``(name, value, step)`` points as the loop logs them (later duplicates of a
        step win, as a resumed run's would)."""
        by_name: dict[str, dict[int, float]] = {}
        for name, value, step in points:
            by_name.setdefault(name, {})[int(step)] = float(value)
        return cls(
            series={name: Series.of(list(steps.items())) for name, steps in by_name.items()},
            params={k: str(v) for k, v in (params or {}).items()},
            gradients=GradientHistory.from_summary(gradients) if gradients else None,
            status=status,
            error=error,
            run_id=run_id,
        )

    @classmethod
    def from_store(
        cls,
        client: MlflowClient,
        run_id: str,
        gradients: dict[str, Any] | None = None,
        status: str | None = None,
        error: str | None = None,
    ) -> RunHistory:
        """Read run ``run_id`` back from the store: its metric histories, params, the gradient
        monitor's artifact and ``error.txt`` of a failed run (``gradients``, ``status`` and
        ``error`` given: a run still open, diagnosed as it ends)."""
        run = client.get_run(run_id)
        series: dict[str, Series] = {}
        for name in SERIES:
            if name not in run.data.metrics:
                continue
            history = client.get_metric_history(run_id, name)
            latest: dict[int, float] = {}
            for point in sorted(history, key=lambda m: (m.step, m.timestamp)):
                latest[int(point.step)] = _from_store(float(point.value))
            series[name] = Series.of(list(latest.items()))
        artifacts = _artifact_names(client, run_id)
        if gradients is None and GRADIENTS_ARTIFACT in artifacts:
            gradients = _read_json_artifact(client, run_id, GRADIENTS_ARTIFACT)
        if error is None:
            error = (
                _read_text_artifact(client, run_id, "error.txt") if "error.txt" in artifacts else ""
            )
        return cls(
            series=series,
            params=dict(run.data.params),
            gradients=GradientHistory.from_summary(gradients) if gradients else None,
            status=status or run.info.status,
            error=error,
            run_id=run_id,
        )


def _from_store(value: float) -> float:
    """MLflow stores an infinite metric as the largest float; read it back as infinite."""
    return math.copysign(math.inf, value) if abs(value) >= STORED_INFINITY else value


def _artifact_names(client: MlflowClient, run_id: str) -> set[str]:
    names: set[str] = set()
    for entry in client.list_artifacts(run_id):
        if entry.is_dir and entry.path == "gradients":
            names.update(child.path for child in client.list_artifacts(run_id, entry.path))
        else:
            names.add(entry.path)
    return names


def _download(client: MlflowClient, run_id: str, path: str) -> Path:
    import tempfile

    folder = tempfile.mkdtemp(prefix="trainlab-doctor-")
    return Path(client.download_artifacts(run_id, path, folder))


def _read_json_artifact(client: MlflowClient, run_id: str, path: str) -> dict[str, Any] | None:
    try:
        data = json.loads(_download(client, run_id, path).read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _read_text_artifact(client: MlflowClient, run_id: str, path: str) -> str:
    try:
        return _download(client, run_id, path).read_text()
    except OSError:
        return ""
