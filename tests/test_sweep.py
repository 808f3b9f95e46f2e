"""Sweeps (``trainlab train -m``) through the real CLI: one parent run, one child per job,
complete metric histories; sequentially and with the joblib launcher (parallel processes
writing to one sqlite store)."""

from __future__ import annotations

import itertools
from pathlib import Path

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
    for child in children:
        name = child.info.run_name
        optimizer, lr = child.data.params["optimizer.name"], child.data.params["optimizer.lr"]
        parts = name.split(",")
        assert f"optimizer={optimizer}" in parts, name
        assert f"optimizer.lr={lr}" in parts, name
        assert f"trainer.max_epochs={EPOCHS}" in parts, name
    assert len({c.info.run_name for c in children}) == 4

    client = client_for(uri)
    per_epoch = digits_steps_per_epoch(64)
    for child in children:
        run_id = child.info.run_id
        for key in ("train/loss", "train/lr", "train/grad_norm"):
            assert metric_steps(client, run_id, key) == list(range(1, EPOCHS * per_epoch + 1))
        for key in ("val/loss", "val/acc", "epoch"):
            assert metric_steps(client, run_id, key) == [per_epoch * (e + 1) for e in range(EPOCHS)]
        artifacts = {a.path for a in client.list_artifacts(run_id, "checkpoints")}
        assert {"checkpoints/last.pt", "checkpoints/best.pt"} <= artifacts
        assert "tracking_errors.txt" not in {a.path for a in client.list_artifacts(run_id)}
