"""Helpers shared by the tests: the real CLI in a subprocess, the real MLflow store, real data.

Nothing here is a mock: commands run ``python -m trainlab`` (the installed package, the
checkout's ``conf/``), and the store is a sqlite file that MLflow itself reads back.
"""

from __future__ import annotations

import math
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mlflow import MlflowClient
    from mlflow.entities import Run

# Environment variables that would point a run somewhere else than the test's own store.
LEAKY_ENV = ("MLFLOW_TRACKING_URI", "MLFLOW_EXPERIMENT_NAME", "MLFLOW_RUN_ID", "TRAINLAB_COMMAND")


def cli_env() -> dict[str, str]:
    """The test process's environment without anything that redirects tracking."""
    return {key: value for key, value in os.environ.items() if key not in LEAKY_ENV}


def cli_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "trainlab", *args]


def run_cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """``trainlab ARGS`` in a subprocess with ``cwd`` as working directory (so ``outputs/``
    lands there); stdout and stderr captured as text; never raises on a non-zero exit."""
    return subprocess.run(
        cli_command(*args),
        cwd=cwd,
        env=cli_env(),
        capture_output=True,
        text=True,
        check=False,
    )


def wait_for_step_checkpoints(
    process: subprocess.Popen[Any], folder: Path, step: int, count: int, what: str
) -> list[Path]:
    """Wait until ``count`` runs of the sweep in ``folder`` wrote their step-``step``
    checkpoint (a signal sent then lands mid-run); fail if the sweep ends first (before
    ``what``) or never gets there."""
    import pytest

    wanted = f"*/artifacts/checkpoints/step-{step:09d}.pt"
    for _ in range(6000):
        found = list((folder / "outputs" / "artifacts").glob(wanted))
        if len(found) >= count:
            return found
        if process.poll() is not None:
            pytest.fail(f"the sweep ended (exit {process.returncode}) {what}")
        time.sleep(0.05)
    pytest.fail(f"{count} run(s) never reached step {step}")


def sqlite_uri(folder: Path) -> str:
    """An absolute ``sqlite:///`` URI for ``folder/mlflow.db``."""
    return f"sqlite:///{folder.resolve() / 'mlflow.db'}"


def explain(done: subprocess.CompletedProcess[str]) -> str:
    """The end of a command's output, for assertion messages."""
    return (
        f"exit {done.returncode}\n--- stdout ---\n{done.stdout[-3000:]}\n"
        f"--- stderr ---\n{done.stderr[-3000:]}"
    )


def client_for(uri: str) -> MlflowClient:
    import mlflow

    return mlflow.MlflowClient(tracking_uri=uri)


def all_runs(uri: str) -> list[Run]:
    """Every run of every experiment (deleted ones too) in the store at ``uri``."""
    from mlflow.entities import ViewType

    client = client_for(uri)
    experiments = client.search_experiments(view_type=ViewType.ALL)
    ids = [experiment.experiment_id for experiment in experiments]
    if not ids:
        return []
    return list(client.search_runs(ids, run_view_type=ViewType.ALL, max_results=10_000))


def metric_steps(client: MlflowClient, run_id: str, key: str) -> list[int]:
    """The steps of every recorded point of ``key``, sorted (duplicates kept)."""
    return sorted(point.step for point in client.get_metric_history(run_id, key))


def metric_values(client: MlflowClient, run_id: str, key: str) -> list[float]:
    """The values of ``key`` in step order."""
    history = sorted(client.get_metric_history(run_id, key), key=lambda m: (m.step, m.timestamp))
    return [point.value for point in history]


def git_init(folder: Path) -> str:
    """Make ``folder`` a git repository with one commit; returns the commit id."""

    def git(*args: str) -> str:
        done = subprocess.run(
            [
                "git",
                "-c",
                "user.name=trainlab-tests",
                "-c",
                "user.email=tests@example.invalid",
                "-c",
                "init.defaultBranch=main",
                "-c",
                "commit.gpgsign=false",
                *args,
            ],
            cwd=folder,
            capture_output=True,
            text=True,
            check=True,
        )
        return done.stdout.strip()

    git("init", "-q")
    (folder / "README.md").write_text("a project trained with trainlab\n")
    git("add", "README.md")
    git("commit", "-q", "-m", "initial commit")
    return git("rev-parse", "HEAD")


def digits_steps_per_epoch(batch_size: int, val_fraction: float = 0.2) -> int:
    """Optimizer steps per epoch on scikit-learn's digits, computed independently of trainlab:
    train_test_split holds out ceil(fraction * n) rows; the rest is batched."""
    from sklearn.datasets import load_digits

    rows = len(load_digits().target)
    train_rows = rows - math.ceil(val_fraction * rows)
    return math.ceil(train_rows / batch_size)


def write_classification_csv(path: Path, rows: int = 80) -> Path:
    """Three numeric features and an integer ``label`` column (two classes)."""
    import numpy as np

    rng = np.random.default_rng(1)
    features = rng.normal(size=(rows, 3))
    labels = (features[:, 0] + 0.5 * features[:, 1] > 0).astype(int)
    lines = ["f1,f2,f3,label"]
    lines += [
        ",".join(f"{value:.5f}" for value in row) + f",{label}"
        for row, label in zip(features, labels, strict=True)
    ]
    path.write_text("\n".join(lines) + "\n")
    return path


def write_regression_csv(path: Path, rows: int = 80) -> Path:
    """Three numeric features and a real-valued ``y`` column (a noisy linear function)."""
    import numpy as np

    rng = np.random.default_rng(2)
    features = rng.normal(size=(rows, 3))
    targets = features @ np.array([1.5, -2.0, 0.5]) + 0.1 * rng.normal(size=rows)
    lines = ["x1,x2,x3,y"]
    lines += [
        ",".join(f"{value:.5f}" for value in row) + f",{target:.5f}"
        for row, target in zip(features, targets, strict=True)
    ]
    path.write_text("\n".join(lines) + "\n")
    return path


def config_groups() -> dict[str, list[str]]:
    """Every config group folder of the config tree trainlab uses (``conf/``) and its options
    (the YAML file stems)."""
    from trainlab.config.paths import config_dir

    groups: dict[str, list[str]] = {}
    for folder in sorted(p for p in config_dir().iterdir() if p.is_dir()):
        options = sorted(p.stem for p in folder.glob("*.yaml"))
        if options:
            groups[folder.name] = options
    return groups
