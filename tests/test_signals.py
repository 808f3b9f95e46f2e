"""Stopping a run: SIGTERM exits 143 and SIGINT exits 130, and either way the MLflow run is
marked KILLED (not left RUNNING)."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
import uuid
from pathlib import Path

import pytest
import torch

from helpers import all_runs, cli_command, cli_env, client_for, sqlite_uri

# Only a guard against a hang if the signal is ignored; not a statement about speed.
HANG_GUARD_SECONDS = 600


def _wait_for_running_run(process: subprocess.Popen[bytes], uri: str) -> str:
    """Poll the store until the run is RUNNING; fails if the process ends first."""
    while process.poll() is None:
        running = [run for run in all_runs(uri) if run.info.status == "RUNNING"]
        if running:
            return running[0].info.run_id
        time.sleep(0.5)
    raise AssertionError(f"trainlab exited with {process.returncode} before a run appeared")


@pytest.mark.slow
@pytest.mark.parametrize(
    ("signum", "exit_code"),
    [(signal.SIGTERM, 143), (signal.SIGINT, 130)],
    ids=["SIGTERM", "SIGINT"],
)
def test_signal_stops_the_run_and_marks_it_killed(
    signum: signal.Signals, exit_code: int, tmp_path: Path
) -> None:
    uri = sqlite_uri(tmp_path)
    # Create the store's tables first: two processes initialising one sqlite file at once
    # (this test polling, trainlab creating) is not something MLflow supports.
    client_for(uri).search_experiments()
    stdout, stderr = tmp_path / "stdout.txt", tmp_path / "stderr.txt"
    with stdout.open("wb") as out, stderr.open("wb") as err:
        process = subprocess.Popen(
            cli_command("train", "trainer.max_epochs=100000", f"tracking.uri={uri}"),
            cwd=tmp_path,
            env=cli_env(),
            stdout=out,
            stderr=err,
        )
        try:
            run_id = _wait_for_running_run(process, uri)
            process.send_signal(signum)
            code = process.wait(timeout=HANG_GUARD_SECONDS)
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()
    errors = stderr.read_text()
    assert code == exit_code, f"exit {code}\n{errors[-3000:]}"
    assert "Traceback" not in errors
    assert f"run {run_id} marked KILLED" in errors

    runs = all_runs(uri)
    assert [(r.info.run_id, r.info.status) for r in runs] == [(run_id, "KILLED")]
    assert runs[0].info.end_time is not None
    # The run stopped between two steps and left a checkpoint that loads safely.
    client = client_for(uri)
    names = {a.path for a in client.list_artifacts(run_id, "checkpoints")}
    assert "checkpoints/last.pt" in names, names
    local = client.download_artifacts(run_id, "checkpoints/last.pt", str(tmp_path))
    state = torch.load(local, map_location="cpu", weights_only=True)
    assert state["run_id"] == run_id and state["step"] >= 1


def _processes_with_marker(marker: str) -> list[int]:
    """Live processes (not zombies) whose environment has TRAINLAB_TEST_MARKER=marker."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            environ = (entry / "environ").read_bytes()
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if f"TRAINLAB_TEST_MARKER={marker}".encode() in environ and state != "Z":
            found.append(int(entry.name))
    return found


def _stop_processes(pids: list[int]) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGKILL)


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/environ").exists(), reason="needs Linux /proc")
@pytest.mark.parametrize(
    ("launcher", "jobs"),
    [
        ([], 1),
        (["hydra/launcher=joblib", "hydra.launcher.n_jobs=2"], 2),
        (["hydra/launcher=parallel", "hydra.launcher.n_jobs=2"], 2),
    ],
    ids=["basic", "joblib", "parallel"],
)
def test_sigterm_stops_a_sweep_and_marks_every_run_killed(
    launcher: list[str], jobs: int, tmp_path: Path
) -> None:
    """`kill PID` of a sweep (as a scheduler does): exit 143, the parent and every started
    child KILLED, none left RUNNING, and no worker process left training."""
    uri = sqlite_uri(tmp_path)
    client_for(uri).search_experiments()
    marker = uuid.uuid4().hex  # inherited by every process the sweep starts
    env = {**cli_env(), "TRAINLAB_TEST_MARKER": marker}
    command = cli_command(
        "train",
        "-m",
        "optimizer=sgd,adam",
        "trainer.max_epochs=100000",
        f"tracking.uri={uri}",
        *launcher,
    )
    with (tmp_path / "stderr.txt").open("wb") as err:
        process = subprocess.Popen(
            command, cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=err
        )
        try:
            while process.poll() is None:
                runs = all_runs(uri)
                children = [r for r in runs if "mlflow.parentRunId" in r.data.tags]
                if len([r for r in children if r.info.status == "RUNNING"]) >= jobs:
                    break
                time.sleep(0.5)
            process.send_signal(signal.SIGTERM)
            code = process.wait(timeout=HANG_GUARD_SECONDS)
            leftovers = _processes_with_marker(marker)
            for _ in range(20):  # let the system reap workers that are already dying
                if not leftovers:
                    break
                time.sleep(0.5)
                leftovers = _processes_with_marker(marker)
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()
            _stop_processes(_processes_with_marker(marker))
    errors = (tmp_path / "stderr.txt").read_text()
    assert code == 143, f"exit {code}\n{errors[-3000:]}"

    runs = all_runs(uri)
    statuses = {(r.data.tags.get("trainlab.role", "child"), r.info.status) for r in runs}
    assert ("sweep", "KILLED") in statuses, statuses
    assert not [r for r in runs if r.info.status == "RUNNING"], statuses
    assert len([r for r in runs if "mlflow.parentRunId" in r.data.tags]) >= jobs
    assert not leftovers, "worker processes still running after the sweep was stopped"
