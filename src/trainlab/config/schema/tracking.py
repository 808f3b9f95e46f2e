"""Schema of the ``tracking`` group: where MLflow records runs."""

from __future__ import annotations

from dataclasses import dataclass

from trainlab.config.constraints import positive


@dataclass
class TrackingConfig:
    """The MLflow store and experiment."""

    # A sqlite file needs no server; an http(s):// URI points at a tracking server.
    uri: str = "sqlite:///outputs/mlflow.db"
    experiment: str = "trainlab"
    run_name: str | None = None  # default: the overrides of the job
    # Metrics reach the store at most this many seconds after they are logged (checkpoints,
    # interrupts and the end of the run send at once). Larger costs the store less work.
    flush_every_s: float = positive(1.0)
