"""Data-parallel training (``trainer.strategy=ddp``): the launch checks, the sharded batcher,
and the real ``torchrun --nproc_per_node=2 -m trainlab train`` on the CPU (gloo) against a
single-process run of the same global batch.

Tolerance: the two runs take the same steps on the same global batches; they differ only in
the order floating-point sums are taken (each rank's half-batch mean, then DDP's average).
Measured on digits (val_fraction 0.1, 3 epochs, 78 Adam steps, every last batch split 9 + 8):
the largest weight difference is 4.5e-8 and val/loss agrees exactly. The test allows 1e-5
absolute on every weight and 1e-5 relative on val/loss (the test prints both figures).
"""

from __future__ import annotations

import math
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch
from omegaconf import DictConfig, OmegaConf

from helpers import cli_env, client_for, explain, run_cli, sqlite_uri
from trainlab.data.batcher import InMemoryBatcher
from trainlab.tracking.base import NullTracker
from trainlab.train.distributed import (
    SINGLE_PROCESS,
    Collective,
    Launch,
    launch_problems,
    resolve_launch,
    shard_sizes,
)
from trainlab.train.loop import EpochListener
from trainlab.train.recipe import JobContext, TrainingRecipe

WEIGHT_TOLERANCE = 1e-5  # absolute, every weight
VAL_LOSS_TOLERANCE = 1e-5  # relative
TORCHRUN_ENV = {
    "RANK": "0",
    "WORLD_SIZE": "2",
    "LOCAL_RANK": "0",
    "MASTER_ADDR": "127.0.0.1",
    "MASTER_PORT": "29500",
}


def _cfg(strategy: str, batch_size: int = 64, lr: object = 0.001) -> object:
    return OmegaConf.create(
        {
            "trainer": {"strategy": strategy, "batch_size": batch_size, "device": "cpu"},
            "optimizer": {"lr": lr},
        }
    )


def test_ddp_outside_torchrun_is_one_paragraph_naming_torchrun() -> None:
    problems = launch_problems(_cfg("ddp"), env={})
    assert len(problems) == 1
    assert problems[0].key == "trainer.strategy"
    message = problems[0].message
    assert "torchrun --standalone --nproc_per_node=2 -m trainlab train" in message
    assert "RANK" in message and "trainer.strategy=auto" in message
    assert "\n" not in message


def test_launch_checks_under_torchrun() -> None:
    assert launch_problems(_cfg("ddp"), env=TORCHRUN_ENV) == []
    assert launch_problems(_cfg("auto"), env=TORCHRUN_ENV) == []
    # single under torchrun would train (and record) the run twice
    assert [p.key for p in launch_problems(_cfg("single"), env=TORCHRUN_ENV)] == [
        "trainer.strategy"
    ]
    odd = launch_problems(_cfg("ddp", batch_size=63, lr="auto"), env=TORCHRUN_ENV)
    assert [p.key for p in odd] == ["trainer.batch_size", "optimizer.lr"]
    assert "trainer.batch_size=62 or 64" in odd[0].message


def test_auto_is_ddp_under_torchrun_and_single_otherwise() -> None:
    assert not resolve_launch(_cfg("auto"), env={}).distributed
    launch = resolve_launch(_cfg("auto"), env={**TORCHRUN_ENV, "RANK": "1", "LOCAL_RANK": "1"})
    assert launch.distributed and launch.rank == 1 and launch.world_size == 2
    assert not launch.is_main


def test_ddp_without_torchrun_exits_2_without_traceback(tmp_path: Path) -> None:
    done = run_cli("train", "trainer.strategy=ddp", cwd=tmp_path)
    assert done.returncode == 2, explain(done)
    assert "Traceback" not in done.stderr
    assert "trainer.strategy: ddp trains in several processes started by torchrun" in done.stderr
    assert not (tmp_path / "outputs" / "mlflow.db").exists()  # nothing was recorded


@pytest.mark.parametrize("rows", [1437, 130, 129, 64, 10])
@pytest.mark.parametrize("world_size", [2, 3])
def test_the_shards_of_a_global_batch_are_the_single_process_batch(
    rows: int, world_size: int
) -> None:
    features = torch.arange(rows, dtype=torch.float32)[:, None]
    targets = torch.arange(rows)
    single = InMemoryBatcher(features, targets, 64, shuffle=True, seed=3, world_size=1)
    ranks = [
        InMemoryBatcher(features, targets, 64, shuffle=True, seed=3, rank=r, world_size=world_size)
        for r in range(world_size)
    ]
    if world_size == 2:  # the batch boundaries are those of one process
        assert len(ranks[0]) == len(single)
    shards = [list(batcher.epoch(1)) for batcher in ranks]
    global_batches = [
        torch.cat([shards[r][b][1] for r in range(world_size)]) for b in range(len(ranks[0]))
    ]
    every_row = torch.cat(global_batches)
    assert torch.equal(every_row, single.order(1))  # the same rows in the same order
    for number, batch in enumerate(global_batches):
        values = batch.float()
        sizes = shard_sizes(len(batch), world_size)
        assert min(sizes) >= 1, "a rank got an empty shard"
        # DDP averages the ranks' gradients; each rank's loss is scaled by its share, so the
        # average is the global batch's mean.
        scaled = [
            ranks[r].loss_scale(number) * shards[r][number][1].float().mean()
            for r in range(world_size)
        ]
        assert float(sum(scaled) / world_size) == pytest.approx(float(values.mean()), rel=1e-6)


def _torchrun(*args: str) -> list[str]:
    torchrun = Path(sys.executable).with_name("torchrun")
    return [str(torchrun), "--standalone", "--nproc_per_node=2", "-m", "trainlab", *args]


def _run(command: list[str], cwd: Path, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        command,
        cwd=cwd,
        env=cli_env(),
        capture_output=True,
        text=True,
        check=False,
        timeout=timeout,
    )


COMMON = (
    "trainer.max_epochs=3",
    # 1617 training rows: 25 batches of 64 and a last one of 17 that splits 9 + 8, so the
    # shares' loss weighting is exercised too.
    "dataset.val_fraction=0.1",
    "trainer.deterministic=true",
    "trainer.progress=plain",
    "trainer.checkpoint_min_interval_s=0",
    "model.hidden_sizes=[32]",
)


def _only_run(uri: str) -> tuple[str, str]:
    runs = client_for(uri).search_runs(["1"])
    assert len(runs) == 1, [run.info.run_name for run in runs]
    return runs[0].info.run_id, runs[0].info.status


def _last_checkpoint(folder: Path, run_id: str) -> dict[str, torch.Tensor]:
    path = folder / "outputs" / "artifacts" / run_id / "artifacts" / "checkpoints" / "last.pt"
    state: dict[str, torch.Tensor] = torch.load(path, weights_only=True)["model"]
    return state


@pytest.mark.slow
def test_torchrun_two_processes_match_one_process(tmp_path: Path) -> None:
    ddp_dir, single_dir = tmp_path / "ddp", tmp_path / "single"
    ddp_dir.mkdir()
    single_dir.mkdir()
    done = _run(_torchrun("train", "trainer.strategy=ddp", *COMMON), ddp_dir)
    assert done.returncode == 0, explain(done)
    alone = run_cli("train", "trainer.strategy=single", *COMMON, cwd=single_dir)
    assert alone.returncode == 0, explain(alone)

    ddp_uri, single_uri = sqlite_uri(ddp_dir / "outputs"), sqlite_uri(single_dir / "outputs")
    ddp_id, status = _only_run(ddp_uri)  # rank 1 recorded nothing
    assert status == "FINISHED"
    single_id, _ = _only_run(single_uri)
    client = client_for(ddp_uri)
    run = client.get_run(ddp_id)
    assert run.data.params["distributed.world_size"] == "2"
    assert run.data.params["distributed.backend"] == "gloo"
    assert run.data.params["distributed.per_rank_batch_size"] == "32"
    steps_per_epoch = 26
    assert len(client.get_metric_history(ddp_id, "train/loss")) == 3 * steps_per_epoch
    for key in ("train/grad_norm", "train/lr", "val/acc", "epoch"):
        assert client.get_metric_history(ddp_id, key), f"{key} missing"

    expected, actual = _last_checkpoint(single_dir, single_id), _last_checkpoint(ddp_dir, ddp_id)
    assert expected.keys() == actual.keys()  # the plain module's keys, no "module." prefix
    differences = {name: (expected[name] - actual[name]).abs().max().item() for name in expected}
    print(f"largest weight difference, ddp vs one process: {max(differences.values()):.3g}")
    for name, difference in differences.items():
        assert difference <= WEIGHT_TOLERANCE, f"{name} differs by {difference:.3g}"
    val_ddp = [m.value for m in client.get_metric_history(ddp_id, "val/loss")]
    val_single = [m.value for m in client_for(single_uri).get_metric_history(single_id, "val/loss")]
    worst = max(abs(a - b) / abs(b) for a, b in zip(val_ddp, val_single, strict=True))
    print(f"largest relative val/loss difference: {worst:.3g}")
    assert val_ddp == pytest.approx(val_single, rel=VAL_LOSS_TOLERANCE)
    losses = [m.value for m in client.get_metric_history(ddp_id, "train/loss")]
    single_losses = [
        m.value for m in client_for(single_uri).get_metric_history(single_id, "train/loss")
    ]
    # the per-step loss is the global batch's (reduced over the ranks), not rank 0's half
    assert losses == pytest.approx(single_losses, rel=1e-4)


@pytest.mark.slow
def test_torchrun_with_an_uneven_batch_exits_2_on_every_rank(tmp_path: Path) -> None:
    done = _run(_torchrun("train", "trainer.strategy=ddp", "trainer.batch_size=63"), tmp_path)
    assert done.returncode != 0
    assert done.stderr.count("trainer.batch_size: 63 is the global batch") == 1, explain(done)
    assert "exitcode  : 2" in done.stderr  # torchrun's report of its failed workers
    assert "Traceback" not in done.stderr.split("trainer.batch_size: 63")[0]
    assert not (tmp_path / "outputs" / "mlflow.db").exists()


@pytest.mark.slow
def test_sigterm_under_torchrun_checkpoints_and_resumes(tmp_path: Path) -> None:
    args = (
        "trainer.strategy=ddp",
        "trainer.max_epochs=15",
        "trainer.log_every_n_steps=5",
        "trainer.checkpoint_every_n_steps=10",
        "trainer.progress=plain",
    )
    process = subprocess.Popen(
        _torchrun("train", *args),
        cwd=tmp_path,
        env=cli_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        for _ in range(1200):
            if list((tmp_path / "outputs" / "artifacts").glob("*/artifacts/checkpoints/*.pt")):
                break
            assert process.poll() is None, process.communicate()
            time.sleep(0.1)
        else:
            pytest.fail("no checkpoint appeared")
        os.kill(process.pid, signal.SIGTERM)  # as a scheduler stops a job: torchrun first
        _, stderr = process.communicate(timeout=120)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
    # torchrun itself exits 1 with its SignalException (torch's doing); the workers stopped
    # cleanly: rank 0 wrote the checkpoint and closed the run.
    assert process.returncode != 0
    assert "marked KILLED" in stderr, stderr[-3000:]
    assert stderr.count("SIGTERM: stopping after this step") == 2  # both ranks got it
    uri = sqlite_uri(tmp_path / "outputs")
    run_id, status = _only_run(uri)
    assert status == "KILLED", stderr[-3000:]
    stopped_at = torch.load(
        tmp_path / "outputs" / "artifacts" / run_id / "artifacts" / "checkpoints" / "last.pt",
        weights_only=True,
    )["step"]
    assert 0 < stopped_at < 15 * 23

    resumed = _run(_torchrun("resume", run_id), tmp_path)  # the same run, two processes again
    assert resumed.returncode == 0, explain(resumed)
    assert _only_run(uri) == (run_id, "FINISHED")
    steps = [m.step for m in client_for(uri).get_metric_history(run_id, "train/loss")]
    assert len(steps) == len(set(steps)) == 15 * 23  # no gap, no duplicate


def test_ranks_talk_at_flushes_only_never_per_step(
    make_cfg: Callable[..., DictConfig], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A one-process gloo group runs the whole data-parallel path in this process: the
    collectives are counted, and the result equals the plain single-process run."""
    import torch.distributed as dist
    from torch.nn.parallel import DistributedDataParallel

    calls: Counter[str] = Counter()
    for name in ("mean", "stop_signal", "all_finite", "gather_rows", "broadcast"):
        original = getattr(Collective, name)

        def counted(
            self: Collective, *args: Any, _original: Any = original, _name: str = name
        ) -> Any:
            calls[_name] += 1
            return _original(self, *args)

        monkeypatch.setattr(Collective, name, counted)

    def trained(launch: Launch) -> TrainingRecipe:
        cfg = make_cfg("trainer.log_every_n_steps=10")
        cfg.trainer.max_epochs = 2
        recipe = TrainingRecipe(cfg, JobContext(launch=launch))
        recipe.setup()
        recipe.train(NullTracker(), EpochListener())
        return recipe

    store = dist.FileStore(str(tmp_path / "store"), 1)
    dist.init_process_group("gloo", store=store, rank=0, world_size=1)
    try:
        parallel = trained(Launch(rank=0, world_size=1, local_rank=0, distributed=True))
    finally:
        dist.destroy_process_group()
    assert isinstance(parallel.parts.training_model, DistributedDataParallel)
    steps_per_epoch = len(parallel.parts.batcher)
    assert parallel.progress.step == 2 * steps_per_epoch == 46
    flushes = 2 * math.ceil(steps_per_epoch / 10)  # steps 10, 20 and the epoch end, twice
    assert calls["mean"] == calls["stop_signal"] == flushes
    assert calls["gather_rows"] == 2  # one validation per epoch
    assert calls["all_finite"] == 0  # only on_nonfinite=skip checks every step

    single = trained(SINGLE_PROCESS)
    for name, value in single.parts.model.state_dict().items():
        assert torch.allclose(value, parallel.parts.model.state_dict()[name], atol=1e-7), name
