"""Exact resume: a run killed with SIGKILL mid-epoch and resumed ends bit-identical to the same
run left alone, with a metric history that has no duplicated or missing steps; a corrupt
newest checkpoint falls back to the one before."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import pytest
import torch

from helpers import cli_command, cli_env, client_for, explain, run_cli, sqlite_uri

ARGS = (
    "trainer.max_epochs=3",
    "trainer.deterministic=true",
    "trainer.checkpoint_every_n_steps=5",
    "trainer.keep_last_checkpoints=100",
    "model.dropout=0.2",  # dropout draws random numbers: the RNG state must be restored too
    "model.hidden_sizes=[32]",
    "trainer.progress=plain",
)
STEPS_PER_EPOCH = 23  # digits: 1437 training rows / batch 64
CURRICULUM_KEY = "train/curriculum_fraction"
HISTORY_KEYS = (
    "train/loss",
    "train/lr",
    "train/grad_norm",
    "val/loss",
    "train/epoch_loss",
    "epoch",
)


def only_run(uri: str) -> tuple[str, str]:
    runs = client_for(uri).search_runs(["1"])
    assert len(runs) == 1, [r.info.run_name for r in runs]
    return runs[0].info.run_id, runs[0].info.status


def checkpoint_dir(folder: Path, run_id: str) -> Path:
    return folder / "outputs" / "artifacts" / run_id / "artifacts" / "checkpoints"


def final_weights(folder: Path, run_id: str) -> dict[str, torch.Tensor]:
    state = torch.load(checkpoint_dir(folder, run_id) / "last.pt", weights_only=True)
    return dict(state["model"])


def history(uri: str, run_id: str, key: str) -> list[tuple[int, float]]:
    return [(m.step, m.value) for m in client_for(uri).get_metric_history(run_id, key)]


def kill_mid_epoch(folder: Path, extra: tuple[str, ...] = ()) -> str:
    """Start the run, SIGKILL it right after a mid-epoch checkpoint of epoch 2 exists."""
    process = subprocess.Popen(
        cli_command("train", *ARGS, *extra),
        cwd=folder,
        env=cli_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    wanted = 35  # a multiple of checkpoint_every_n_steps, mid-way through the second epoch
    try:
        for _ in range(3000):
            pattern = f"*/artifacts/checkpoints/step-{wanted:09d}.pt"
            if list((folder / "outputs" / "artifacts").glob(pattern)):
                break
            if process.poll() is not None:
                pytest.fail(f"the run ended (exit {process.returncode}) before step {wanted}")
            time.sleep(0.05)
        else:
            pytest.fail("no mid-epoch checkpoint appeared")
    finally:
        process.kill()
        process.wait()
    run_id, status = only_run(sqlite_uri(folder / "outputs"))
    assert status == "RUNNING"  # SIGKILL leaves no chance to mark it
    return run_id


# With a curriculum the kill falls in its first epoch (the loss scores are computed at the
# start of epoch 2, after the warm-up epoch): they must come back from the checkpoint.
CURRICULUM = ("curriculum=loss", "curriculum.pace_epochs=2", "curriculum.start_fraction=0.3")


@pytest.mark.slow
@pytest.mark.parametrize("extra", [(), CURRICULUM], ids=["plain", "curriculum"])
def test_sigkill_mid_epoch_then_resume_is_bit_identical(
    tmp_path: Path, extra: tuple[str, ...]
) -> None:
    alone, killed = tmp_path / "alone", tmp_path / "killed"
    alone.mkdir()
    killed.mkdir()
    done = run_cli("train", *ARGS, *extra, cwd=alone)
    assert done.returncode == 0, explain(done)
    alone_uri = sqlite_uri(alone / "outputs")
    alone_id, _ = only_run(alone_uri)

    run_id = kill_mid_epoch(killed, extra)
    resumed = run_cli("resume", run_id, cwd=killed)
    assert resumed.returncode == 0, explain(resumed)
    assert "Resuming run" in resumed.stdout
    killed_uri = sqlite_uri(killed / "outputs")
    assert only_run(killed_uri) == (run_id, "FINISHED")  # the same run, not a new one

    expected, actual = final_weights(alone, alone_id), final_weights(killed, run_id)
    assert expected.keys() == actual.keys()
    for name in expected:
        assert torch.equal(expected[name], actual[name]), f"{name} differs after resume"

    for key in HISTORY_KEYS:
        steps = [step for step, _ in history(killed_uri, run_id, key)]
        assert len(steps) == len(set(steps)), f"duplicated steps in {key}"
        assert sorted(history(killed_uri, run_id, key)) == sorted(
            history(alone_uri, alone_id, key)
        ), f"{key} history differs from the uninterrupted run"
    assert len(history(killed_uri, run_id, "train/loss")) == 3 * STEPS_PER_EPOCH
    if extra:
        fractions = [value for _, value in sorted(history(killed_uri, run_id, CURRICULUM_KEY))]
        assert fractions == pytest.approx([1.0, 0.3, 0.65])  # warm-up, start, half-way
        scores = torch.load(checkpoint_dir(killed, run_id) / "last.pt", weights_only=True)
        assert scores["curriculum"]["scores"].shape == (1438,)  # one per training row


@pytest.mark.slow
def test_resume_falls_back_when_newest_checkpoint_is_corrupt(tmp_path: Path) -> None:
    run_id = kill_mid_epoch(tmp_path)
    folder = checkpoint_dir(tmp_path, run_id)
    newest, older = sorted(folder.glob("step-*.pt"))[-1], sorted(folder.glob("step-*.pt"))[-2]
    # last.pt is a hard link to a step file (the newest, or the one before if the kill fell
    # between publishing a step file and relinking last.pt): replace it, don't write through
    # it, or that step file is corrupted too and the fall-back goes one further back.
    (folder / "last.pt").unlink()
    (folder / "last.pt").write_bytes(b"not a checkpoint")
    newest.write_bytes(newest.read_bytes()[:100])  # truncated, as a crash mid-write would
    resumed = run_cli("resume", run_id, cwd=tmp_path)
    assert resumed.returncode == 0, explain(resumed)
    first_line = resumed.stdout.splitlines()[0]
    assert first_line.startswith("Resuming run") and older.name in first_line, first_line
    assert only_run(sqlite_uri(tmp_path / "outputs"))[1] == "FINISHED"


def test_resume_of_unknown_run_exits_2(tmp_path: Path) -> None:
    done = run_cli("resume", "0123456789abcdef", cwd=tmp_path)
    assert done.returncode == 2, explain(done)
    assert "Traceback" not in done.stderr
    assert "no run" in done.stderr
