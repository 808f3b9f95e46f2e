"""The cluster launchers (``hydra/launcher=slurm|slurm_gpu|slurm_local``): the presets compose,
and with submitit's local executor a job that is preempted (SIGUSR2, what SLURM sends before a
time limit or a preemption) checkpoints, is requeued by submitit and resumes into the same
MLflow run, which ends FINISHED with a metric history without gap or duplicate."""

from __future__ import annotations

import os
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
    wait_for_step_checkpoints,
)

EPOCHS = 20  # long enough that the job is still training when the test signals it
STEPS_PER_EPOCH = 23  # digits: 1437 training rows / batch 64
PREEMPT_AT = 35  # a checkpoint mid-way through the second epoch


def _submitit_task(folder: Path) -> int | None:
    """The pid of the process submitit's local executor runs the job in."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            command = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if "submitit.core._submit" in command and str(folder) in command:
            return int(entry.name)
    return None


@pytest.mark.parametrize("preset", ["slurm", "slurm_gpu", "slurm_local"])
def test_the_launcher_presets_compose_with_the_requeueing_launcher(preset: str) -> None:
    from hydra import compose

    from trainlab.config.compose import hydra_context

    with hydra_context():
        cfg = compose("train", [f"hydra/launcher={preset}"], return_hydra_config=True)
    launcher = cfg.hydra.launcher
    assert launcher._target_.startswith("hydra_plugins.trainlab_plugins.submitit_launcher.")
    assert launcher.timeout_min > 0
    if preset != "slurm_local":
        assert {"partition", "cpus_per_task", "gpus_per_node", "mem_gb", "max_num_timeout"} <= set(
            launcher
        )
    assert (launcher.gpus_per_node == 1) == (preset == "slurm_gpu")


@pytest.mark.slow
def test_a_preempted_job_is_requeued_and_resumes_into_the_same_run(tmp_path: Path) -> None:
    folder = tmp_path.resolve()
    process = subprocess.Popen(
        cli_command(
            "train",
            "-m",
            "hydra/launcher=slurm_local",
            "seed=0",
            f"trainer.max_epochs={EPOCHS}",
            "trainer.checkpoint_every_n_steps=5",
            "trainer.keep_last_checkpoints=100",
            "trainer.progress=plain",
            "model.hidden_sizes=[32]",
        ),
        cwd=folder,
        env=cli_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        found = wait_for_step_checkpoints(process, folder, PREEMPT_AT, 1, "before the signal")
        run_id = found[0].relative_to(folder / "outputs" / "artifacts").parts[0]
        task = _submitit_task(folder)
        assert task is not None, "no submitit job process"
        os.kill(task, signal.SIGUSR2)
        stdout, stderr = process.communicate(timeout=600)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    done = subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr)
    assert done.returncode == 0, explain(done)

    uri = f"sqlite:///{folder / 'outputs' / 'mlflow.db'}"
    runs = all_runs(uri)
    (parent,) = [r for r in runs if r.data.tags.get("trainlab.role") == "sweep"]
    (child,) = [r for r in runs if r is not parent]
    assert child.info.run_id == run_id, "the requeued job went on in the same run"
    assert child.info.status == "FINISHED"
    assert parent.info.status == "FINISHED"
    resumed_at = int(child.data.tags["trainlab.resumed_from"].split()[1])
    assert resumed_at >= PREEMPT_AT, child.data.tags["trainlab.resumed_from"]

    logs = "".join(p.read_text() for p in folder.glob("outputs/sweeps/*/*/.submitit/*/*_log.*"))
    assert "Requeued job" in logs, logs[-3000:]
    assert "SIGUSR2: preempted" in logs

    client = client_for(uri)
    total = EPOCHS * STEPS_PER_EPOCH
    assert metric_steps(client, run_id, "train/loss") == list(range(1, total + 1))
    assert metric_steps(client, run_id, "val/loss") == [
        STEPS_PER_EPOCH * (e + 1) for e in range(EPOCHS)
    ]
