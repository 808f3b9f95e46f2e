"""Resumable sweeps through the real CLI: a named sweep (``sweep.name=NAME``) whose second job
is stopped mid-run is run again; the FINISHED job is skipped (same run, untouched), the
stopped one resumes from its checkpoint into the same run and FINISHES, the job that never
started runs, and everything stays under the one parent run."""

from __future__ import annotations

import signal
import subprocess
from pathlib import Path

import pytest

from helpers import (
    all_runs,
    cli_command,
    cli_env,
    client_for,
    explain,
    metric_steps,
    run_cli,
    wait_for_step_checkpoints,
)

EPOCHS = 20  # long enough that a job is still training when the test stops it
STEPS_PER_EPOCH = 23  # digits: 1437 training rows / batch 64
ARGS = (
    "-m",
    "seed=0,1,2",
    "sweep.name=resumable",
    f"trainer.max_epochs={EPOCHS}",
    "trainer.checkpoint_every_n_steps=5",
    "trainer.keep_last_checkpoints=100",
    "trainer.progress=none",
    "model.hidden_sizes=[32]",
)


def _runs_by_seed(uri: str) -> tuple[object, dict[str, object]]:
    runs = all_runs(uri)
    parents = [r for r in runs if r.data.tags.get("trainlab.role") == "sweep"]
    assert len(parents) == 1, [r.info.run_name for r in parents]
    children = {r.data.params.get("seed"): r for r in runs if r is not parents[0]}
    return parents[0], children


def _stop_during_second_job(folder: Path) -> None:
    """Start the sweep; SIGTERM it once the second job (seed=1) wrote its first mid-epoch
    checkpoint (the first job has FINISHED by then)."""
    process = subprocess.Popen(
        cli_command("train", *ARGS),
        cwd=folder,
        env=cli_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for_step_checkpoints(process, folder, 10, 2, "before job 1 ran")
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=120) == 143
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


@pytest.mark.slow
def test_a_named_sweep_run_again_skips_finished_jobs_and_resumes_the_stopped_one(
    tmp_path: Path,
) -> None:
    uri = f"sqlite:///{tmp_path / 'outputs' / 'mlflow.db'}"
    _stop_during_second_job(tmp_path)
    parent, before = _runs_by_seed(uri)
    assert parent.info.status == "KILLED"
    assert set(before) == {"0", "1"}, "the third job never started"
    assert before["0"].info.status == "FINISHED"
    assert before["1"].info.status == "KILLED"

    done = run_cli("train", *ARGS, cwd=tmp_path)
    assert done.returncode == 0, explain(done)
    assert "Traceback" not in done.stderr, explain(done)

    parent_after, after = _runs_by_seed(uri)
    assert parent_after.info.run_id == parent.info.run_id, "the same parent run"
    assert parent_after.info.status == "FINISHED"
    assert set(after) == {"0", "1", "2"}
    assert len(all_runs(uri)) == 4, "no new run for the finished or the resumed job"
    # The finished job is untouched: same run, same end time, nothing logged again.
    assert after["0"].info.run_id == before["0"].info.run_id
    assert after["0"].info.end_time == before["0"].info.end_time
    assert "trainlab.resumed_from" not in after["0"].data.tags
    # The stopped job went on in its own run, from its checkpoint.
    resumed = after["1"]
    assert resumed.info.run_id == before["1"].info.run_id
    assert resumed.info.status == "FINISHED"
    assert resumed.data.tags["trainlab.resumed_from"].startswith("step ")
    assert after["2"].info.status == "FINISHED"
    assert {r.data.tags["mlflow.parentRunId"] for r in after.values()} == {parent.info.run_id}

    client = client_for(uri)
    total = EPOCHS * STEPS_PER_EPOCH
    for run in after.values():  # complete histories, no duplicated step
        run_id = run.info.run_id
        assert metric_steps(client, run_id, "train/loss") == list(range(1, total + 1))
        epochs = [STEPS_PER_EPOCH * (e + 1) for e in range(EPOCHS)]
        assert metric_steps(client, run_id, "val/loss") == epochs
    assert "FINISHED earlier" in done.stdout and "resuming run" in done.stdout
