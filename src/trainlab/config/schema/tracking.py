"""Schema of the ``tracking`` group: where MLflow records runs."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class TrackingConfig:
    """The MLflow store and experiment."""

    # A sqlite file needs no server; an http(s):// URI points at a tracking server.
    uri: str = "sqlite:///outputs/mlflow.db"
    experiment: str = "trainlab"
    run_name: str | None = None  # default: the overrides of the job
