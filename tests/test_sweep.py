"""Sweeps (``trainlab train -m``) through the real CLI: one parent run, one child per job,
complete metric histories; sequentially and with the joblib launcher (parallel processes
writing to one sqlite store)."""

from __future__ import annotations

import itertools
import os
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from helpers import (
    all_runs,
    client_for,
    digits_steps_per_epoch,
    explain,
    metric_steps,
    run_cli,
    sqlite_uri,
)
from trainlab.tracking.sweep_callback import SWEEP_TAG

if TYPE_CHECKING:
    from mlflow import MlflowClient

OPTIMIZERS = ("sgd", "adam")
LEARNING_RATES = ("0.01", "0.001")
EPOCHS = 2

LAUNCHERS = [
    pytest.param([], id="basic"),
    pytest.param(["hydra/launcher=joblib", "hydra.launcher.n_jobs=2"], id="joblib"),
]

# What a store under concurrent writers shows when it breaks.
STORE_ERRORS = (
    "Traceback",
    "database is locked",
    "could not send metrics",
    "OperationalError",
    "IntegrityError",
)


@pytest.mark.slow
@pytest.mark.parametrize("launcher", LAUNCHERS)
def test_sweep_has_a_parent_and_one_finished_child_per_job(
    launcher: list[str], tmp_path: Path
) -> None:
    uri = sqlite_uri(tmp_path)
    done = run_cli(
        "train",
        "-m",
        f"optimizer={','.join(OPTIMIZERS)}",
        f"optimizer.lr={','.join(LEARNING_RATES)}",
        f"trainer.max_epochs={EPOCHS}",
        f"tracking.uri={uri}",
        *launcher,
        cwd=tmp_path,
    )
    assert done.returncode == 0, explain(done)
    for error in STORE_ERRORS:
        assert error not in done.stderr, explain(done)

    runs = all_runs(uri)
    parents = [r for r in runs if r.data.tags.get("trainlab.role") == "sweep"]
    assert len(parents) == 1, [r.data.tags for r in runs]
    parent = parents[0]
    assert parent.info.status == "FINISHED"
    assert "mlflow.parentRunId" not in parent.data.tags

    children = [r for r in runs if r is not parent]
    assert len(children) == 4
    assert {c.data.tags.get("mlflow.parentRunId") for c in children} == {parent.info.run_id}
    assert {c.info.status for c in children} == {"FINISHED"}

    grid = {(o, lr) for o, lr in itertools.product(OPTIMIZERS, LEARNING_RATES)}
    seen = {(c.data.params["optimizer.name"], c.data.params["optimizer.lr"]) for c in children}
    assert seen == grid, "each job ran with its own overrides"
    for child in children:  # named by what the sweep varies, nothing else
        optimizer, lr = child.data.params["optimizer.name"], child.data.params["optimizer.lr"]
        assert child.info.run_name == f"optimizer={optimizer} optimizer.lr={lr}"
        assert child.data.tags[SWEEP_TAG] == parent.info.run_name
    assert parent.data.tags["trainlab.swept"] == "optimizer optimizer.lr"

    client = client_for(uri)
    for child in children:
        assert_complete_history(client, child.info.run_id, EPOCHS)


def assert_complete_history(client: MlflowClient, run_id: str, epochs: int) -> None:
    """Every step's and every epoch's points are in the store, once; checkpoints too."""
    per_epoch = digits_steps_per_epoch(64)
    for key in ("train/loss", "train/lr", "train/grad_norm"):
        assert metric_steps(client, run_id, key) == list(range(1, epochs * per_epoch + 1))
    for key in ("val/loss", "val/acc", "epoch"):
        assert metric_steps(client, run_id, key) == [per_epoch * (e + 1) for e in range(epochs)]
    artifacts = {a.path for a in client.list_artifacts(run_id, "checkpoints")}
    assert {"checkpoints/last.pt", "checkpoints/best.pt"} <= artifacts
    assert "tracking_errors.txt" not in {a.path for a in client.list_artifacts(run_id)}


@pytest.mark.slow
def test_eight_parallel_jobs_on_a_fresh_store(tmp_path: Path) -> None:
    """The parallel preset with four jobs at once on a store that does not exist yet: the
    callback creates it before any worker starts, and concurrent writers lose nothing."""
    learning_rates = ["0.0005", "0.001", "0.002", "0.003", "0.005", "0.01", "0.02", "0.03"]
    uri = sqlite_uri(tmp_path)
    done = run_cli(
        "train",
        "-m",
        "hydra/launcher=parallel",
        "hydra.launcher.n_jobs=4",
        f"optimizer.lr={','.join(learning_rates)}",
        f"trainer.max_epochs={EPOCHS}",
        f"tracking.uri={uri}",
        cwd=tmp_path,
    )
    assert done.returncode == 0, explain(done)
    for error in STORE_ERRORS:
        assert error not in done.stderr, explain(done)
    assert "4 at once (n_jobs=4" in done.stdout + done.stderr, "the parallel launcher ran them"

    runs = all_runs(uri)
    parents = [r for r in runs if r.data.tags.get("trainlab.role") == "sweep"]
    assert len(parents) == 1
    parent = parents[0]
    children = [r for r in runs if r is not parent]
    assert parent.info.status == "FINISHED"
    assert len(children) == 8
    assert {c.data.tags.get("mlflow.parentRunId") for c in children} == {parent.info.run_id}
    assert {c.info.status for c in children} == {"FINISHED"}
    assert sorted(c.info.run_name for c in children) == sorted(
        f"optimizer.lr={lr}" for lr in learning_rates
    )
    cores = os.cpu_count() or 1
    # Four jobs share the cores: each gets cores // 4 torch threads (at least one).
    assert {c.data.params["torch.num_threads"] for c in children} == {str(max(1, cores // 4))}
    client = client_for(uri)
    for child in children:
        assert_complete_history(client, child.info.run_id, EPOCHS)


def test_the_parallel_preset_is_trainlabs_launcher_with_one_job_per_core(tmp_path: Path) -> None:
    done = run_cli(
        "train", "hydra/launcher=parallel", "--cfg", "hydra", "--package", "hydra.launcher",
        cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 0, explain(done)
    assert "trainlab_plugins.parallel_launcher" in done.stdout, done.stdout
    assert "n_jobs: -1" in done.stdout, done.stdout


def test_grid_sweeps_use_trainlabs_basic_sweeper_unless_a_preset_picks_another(
    tmp_path: Path,
) -> None:
    for overrides, expected in (
        ([], "TrainlabBasicSweeper"),
        (["hparams_search=lr_wd"], "TrainlabOptunaSweeper"),
        (["hydra/sweeper=basic"], "core_plugins.basic_sweeper.BasicSweeper"),
    ):
        done = run_cli(
            "train", *overrides, "--cfg", "hydra", "--package", "hydra.sweeper", cwd=tmp_path
        )  # fmt: skip
        assert done.returncode == 0, explain(done)
        assert expected in done.stdout, (overrides, done.stdout)
