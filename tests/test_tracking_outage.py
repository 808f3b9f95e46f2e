"""The tracking server goes away mid-run: training goes on, the metrics are kept and retried,
what is still unsent at the end is saved with the command that sends it, and after
``trainlab sync`` the run is complete: every step once, its checkpoints, FINISHED.

A real ``mlflow server`` (sqlite backend, served artifacts) and the real CLI."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import pytest

from helpers import (
    cli_command,
    cli_env,
    client_for,
    digits_steps_per_epoch,
    explain,
    metric_steps,
    run_cli,
)
from mlflow_server import MlflowServer

pytestmark = pytest.mark.slow

EPOCHS = 300
BATCH = 64


def _wait_for_metrics(uri: str, at_least: int, process: subprocess.Popen[str]) -> str:
    """The run's id once the server holds ``at_least`` train/loss points."""
    client = client_for(uri)
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:
        assert process.poll() is None, "the run ended before the server was stopped"
        runs = [
            run
            for experiment in client.search_experiments()
            for run in client.search_runs([experiment.experiment_id])
        ]
        if runs and len(client.get_metric_history(runs[0].info.run_id, "train/loss")) >= at_least:
            return str(runs[0].info.run_id)
        time.sleep(0.5)
    pytest.fail("no metrics reached the server")


def test_a_server_outage_loses_nothing(tmp_path: Path) -> None:
    server = MlflowServer(f"sqlite:///{tmp_path / 'server.db'}", tmp_path / "served").start()
    try:
        training = subprocess.Popen(
            cli_command(
                "train",
                f"tracking.uri={server.uri}",
                "tracking.experiment=outage",
                f"trainer.max_epochs={EPOCHS}",
                f"trainer.batch_size={BATCH}",
                "model.hidden_sizes=[32]",
                "trainer.progress=plain",
                "trainer.threads=1",
            ),
            cwd=tmp_path,
            env=cli_env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        run_id = _wait_for_metrics(server.uri, at_least=50, process=training)
        server.stop(at_once=True)  # mid-run: the store is gone
        stdout, stderr = training.communicate(timeout=1800)
    finally:
        server.stop()
    done = subprocess.CompletedProcess(training.args, training.returncode, stdout, stderr)
    assert training.returncode == 0, explain(done)
    output = stdout + stderr
    assert "cannot send metrics to the tracking store" in output, explain(done)
    assert "deliver them with: trainlab sync" in output, explain(done)
    replays = sorted((tmp_path / "outputs" / "unsent").glob(f"{run_id}-*.jsonl"))
    assert len(replays) == 1, explain(done)

    # The server comes back (same store, same port); the saved part is delivered.
    server.start()
    try:
        synced = run_cli("sync", cwd=tmp_path)
        assert synced.returncode == 0, explain(synced)
        assert "points sent" in synced.stdout, explain(synced)
        client = client_for(server.uri)
        run = client.get_run(run_id)
        assert run.info.status == "FINISHED"
        steps = EPOCHS * digits_steps_per_epoch(BATCH)
        for key in ("train/loss", "train/lr", "train/grad_norm"):
            assert metric_steps(client, run_id, key) == list(range(1, steps + 1)), key
        assert len(metric_steps(client, run_id, "val/loss")) == EPOCHS
        artifacts = {a.path for a in client.list_artifacts(run_id, "checkpoints")}
        assert {"checkpoints/last.pt", "checkpoints/best.pt"} <= artifacts
        gradients = {a.path for a in client.list_artifacts(run_id, "gradients")}
        assert "gradients/gradient_heatmap.png" in gradients
        assert not replays[0].exists(), "a delivered file is renamed to .synced"
    finally:
        server.stop()
