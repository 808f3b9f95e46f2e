"""``trainlab plot-schedule``: the real CLI in a subprocess draws a PNG without training, and
bad input exits 2 with a message; in-process, the drawn rates are the ones training logs."""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path

import pytest
from omegaconf import DictConfig, open_dict

from helpers import explain
from trainlab.data.datasets import load
from trainlab.data.split import split_and_normalize
from trainlab.tools.schedule_plot import draw, lr_curve, run_length

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def test_a_sweep_of_schedulers_is_drawn_into_one_png(run_cli: Callable, tmp_path: Path) -> None:
    out = tmp_path / "plots" / "lr.png"
    done = run_cli(
        "plot-schedule",
        "-m",
        "scheduler=warmup_cosine,onecycle,step",
        "trainer.max_epochs=5",
        "--out",
        str(out),
        cwd=tmp_path,
    )
    assert done.returncode == 0, explain(done)
    assert out.read_bytes().startswith(PNG_SIGNATURE)
    assert out.stat().st_size > 10_000  # axes, three curves and a legend, not an empty canvas
    for name in ("warmup_cosine", "onecycle", "step"):
        assert f"scheduler={name}:" in done.stdout
    assert f"Saved {out}" in done.stdout
    assert not (tmp_path / "outputs").exists(), "plotting must not train or track anything"


@pytest.mark.parametrize(
    ("args", "words"),
    [
        pytest.param(["scheduler=cosin"], "Did you mean 'cosine'?", id="unknown-scheduler"),
        pytest.param(
            ["scheduler=onecycle", "scheduler.interval=epoch"],
            "scheduler.interval",
            id="impossible-combination",
        ),
        pytest.param(["--out", "lr.txt"], ".png", id="unknown-format"),
        pytest.param(["scheduler=step,cosine"], "add -m", id="sweep-without-m"),
        pytest.param(["--outfile", "lr.png"], "unknown option", id="unknown-flag"),
    ],
)
def test_bad_input_exits_2_with_a_message(
    run_cli: Callable, tmp_path: Path, args: list[str], words: str
) -> None:
    if "--out" not in args:
        args = [*args, "--out", str(tmp_path / "lr.png")]
    done = run_cli("plot-schedule", *args, cwd=tmp_path)
    assert done.returncode == 2, explain(done)
    assert words in done.stderr
    assert "Traceback" not in done.stderr
    assert not (tmp_path / "lr.png").exists()


def test_steps_per_epoch_come_from_the_dataset_size(make_cfg: Callable[..., DictConfig]) -> None:
    cfg = make_cfg("trainer.batch_size=100", "trainer.accumulate_grad_batches=2")
    with open_dict(cfg):
        cfg.trainer.max_epochs = 3
    examples = len(split_and_normalize(load(cfg.dataset), cfg.dataset, cfg.seed).train_targets)
    run = run_length(cfg)
    assert run.steps_per_epoch == math.ceil(math.ceil(examples / 100) / 2)
    assert run.max_epochs == 3


@pytest.mark.parametrize("scheduler", ["onecycle", "plateau", "exponential"])
def test_the_drawn_rates_are_the_rates_training_logs(
    scheduler: str, make_cfg: Callable[..., DictConfig], tmp_path: Path
) -> None:
    from trainlab.tracking.base import NullTracker
    from trainlab.train.loop import EpochListener
    from trainlab.train.recipe import JobContext, TrainingRecipe

    cfg = make_cfg(f"scheduler={scheduler}", "trainer.batch_size=256")
    with open_dict(cfg):
        cfg.trainer.max_epochs = 3
        cfg.scheduler.warmup_epochs = 1.0
        if scheduler == "plateau":
            cfg.scheduler.patience = 0
    curve = lr_curve(cfg, scheduler)

    recipe = TrainingRecipe(cfg, JobContext())
    recipe.setup()
    tracker = NullTracker(tmp_path / "checkpoints")
    recipe.train(tracker, EpochListener())
    logged = [
        value
        for name, value, _ in sorted(tracker.metrics, key=lambda m: m[2])
        if name == "train/lr"
    ]

    assert len(curve.lrs) == len(logged) == curve.run.total_steps
    if scheduler == "plateau":  # the plot assumes the worst case; training has a real metric
        warmup = curve.run.steps_per_epoch
        assert curve.lrs[: warmup + 1] == pytest.approx(logged[: warmup + 1], rel=1e-6)
        assert "if the metric stalls" in curve.label
    else:
        assert curve.lrs == pytest.approx(logged, rel=1e-6)


def test_curves_with_different_epoch_lengths_share_an_epoch_axis(
    make_cfg: Callable[..., DictConfig], tmp_path: Path
) -> None:
    curves = [
        lr_curve(make_cfg("scheduler=cosine", f"trainer.batch_size={size}"), f"batch {size}")
        for size in (64, 256)
    ]
    assert curves[0].run.steps_per_epoch != curves[1].run.steps_per_epoch
    out = draw(curves, tmp_path / "lr.svg", title="two batch sizes", log_y=True)
    text = out.read_text()
    assert "<svg" in text and "epoch" in text and "optimizer step" not in text
