"""The MLflow store: resolve its URI, create it and the experiment once, find artifacts."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlparse

if TYPE_CHECKING:
    from mlflow import MlflowClient

# What the first MlflowClient on a SQL store imports (~0.45 s): preloaded by the fork servers
# whose children make one (a sweep's workers; the metric senders, for their fall-backs).
SQL_STORE_MODULES = (
    "mlflow.store.tracking.sqlalchemy_store",
    "alembic.runtime.migration",
    "alembic.script",
)
# Lets MLflow classify the experiment as model training rather than GenAI.
EXPERIMENT_KIND_TAG = ("mlflow.experimentKind", "custom_model_development")


def sqlite_path(uri: str) -> Path | None:
    """The database file of a ``sqlite:///`` URI (relative to the working directory)."""
    if not uri.startswith("sqlite:///"):
        return None
    return Path(uri[len("sqlite:///") :])


def default_artifact_location(uri: str) -> str | None:
    """Artifacts of a local sqlite store go beside the database, in ``artifacts/``."""
    database = sqlite_path(uri)
    if database is None:
        return None
    return (database.resolve().parent / "artifacts").as_uri()


def make_client(uri: str) -> MlflowClient:
    """A client on ``uri``; a sqlite file's folder is created first."""
    import mlflow

    database = sqlite_path(uri)
    if database is not None:
        database.resolve().parent.mkdir(parents=True, exist_ok=True)
    return mlflow.MlflowClient(tracking_uri=uri)


def ensure_experiment(client: MlflowClient, uri: str, name: str) -> str:
    """The id of experiment ``name``, created (with the store's tables) if it is new.

    Safe when several processes race: the loser of a create finds the winner's experiment.
    """
    from mlflow.exceptions import MlflowException

    experiment = client.get_experiment_by_name(name)
    if experiment is not None:
        if experiment.lifecycle_stage == "deleted":
            client.restore_experiment(experiment.experiment_id)
        return str(experiment.experiment_id)
    try:
        return str(
            client.create_experiment(
                name,
                artifact_location=default_artifact_location(uri),
                tags=dict([EXPERIMENT_KIND_TAG]),
            )
        )
    except MlflowException:
        experiment = client.get_experiment_by_name(name)
        if experiment is None:
            raise
        return str(experiment.experiment_id)


def local_artifact_dir(artifact_uri: str) -> Path | None:
    """The folder behind a ``file://`` (or plain path) artifact URI; None for remote stores."""
    parsed = urlparse(artifact_uri)
    if parsed.scheme == "file":
        return Path(parsed.path)
    if parsed.scheme == "" and artifact_uri:
        return Path(artifact_uri)
    return None


def runs_url(base: str, experiment_id: str) -> str:
    """The MLflow UI page of the experiment's training-runs table."""
    return f"{base.rstrip('/')}/#/experiments/{experiment_id}/runs"


def checkpoint_folder(artifact_uri: str, run_id: str) -> Path:
    """Where a run's checkpoints are: its local artifact folder, else the local staging
    folder used for remote stores."""
    local = local_artifact_dir(artifact_uri)
    if local is not None:
        return local / "checkpoints"
    return Path("outputs") / "checkpoints" / run_id / "checkpoints"
