"""The learning rate over a whole run, without training: the configured optimizer on one
dummy parameter, the real schedule from :func:`~trainlab.optim.build_schedule`, stepped
exactly as the training loop steps it (``after_batch`` after every optimizer step,
``after_epoch`` at each epoch end).

The run's length comes from the data: steps per epoch = training examples / batch size (after
the validation split, and gradient accumulation), times ``trainer.max_epochs``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from trainlab.optim.schedulers import RunLength

# Plateau needs a validation metric that a plot does not have: the plot assumes the metric
# never improves after the first epoch, i.e. the fastest decay plateau can produce.
PLATEAU_NOTE = "if the metric stalls"

FORMATS = (".png", ".svg", ".pdf")


@dataclass
class LRCurve:
    """The learning rate of each optimizer step 1..N of one configured run."""

    label: str
    lrs: list[float]  # lrs[k - 1]: the rate step k uses (what the loop logs as train/lr)
    run: RunLength

    def summary(self) -> str:
        """One line: the run's length and the rate at its start, peak and end."""
        peak = max(range(len(self.lrs)), key=self.lrs.__getitem__)
        return (
            f"{self.label}: {len(self.lrs)} steps ({self.run.max_epochs} epochs x "
            f"{self.run.steps_per_epoch} steps), lr {self.lrs[0]:.3g} -> peak "
            f"{self.lrs[peak]:.3g} at step {peak + 1} -> last {self.lrs[-1]:.3g}"
        )


def run_length(cfg: Any) -> RunLength:
    """The run's length from the dataset's size: load it and split it (cheap for in-memory
    data), never train."""
    from trainlab.data.prepared import split_for

    split = split_for(cfg.dataset, cfg.seed)
    batches = math.ceil(len(split.train_targets) / int(cfg.trainer.batch_size))
    return RunLength.from_batches(
        batches, int(cfg.trainer.max_epochs), int(cfg.trainer.accumulate_grad_batches)
    )


def simulate(cfg: Any, run: RunLength) -> list[float]:
    """The learning rate of every optimizer step of ``run`` under ``cfg``'s optimizer and
    scheduler, in order."""
    import torch

    from trainlab.optim import build_optimizer, build_schedule

    dummy = torch.nn.Linear(1, 1, bias=False)  # one weight: the optimizer needs parameters
    optimizer = build_optimizer(cfg.optimizer, dummy)
    schedule = build_schedule(cfg.scheduler, optimizer, run, cfg.trainer)
    stalled = {schedule.monitor: 1.0} if schedule.monitor is not None else {}
    lrs: list[float] = []
    for _ in range(run.max_epochs):
        for _ in range(run.steps_per_epoch):
            lrs.append(float(optimizer.param_groups[0]["lr"]))
            optimizer.step()  # no gradients: nothing moves, but torch sees the usual order
            schedule.after_batch()
        schedule.after_epoch(stalled)
    return lrs


def lr_curve(cfg: Any, label: str, run: RunLength | None = None) -> LRCurve:
    """The curve of one composed config (``run`` computed from its dataset unless given)."""
    if cfg.scheduler.name == "plateau":
        label = f"{label} ({PLATEAU_NOTE})"
    run = run_length(cfg) if run is None else run
    return LRCurve(label, simulate(cfg, run), run)


def draw(curves: list[LRCurve], out: Path, title: str = "", log_y: bool = False) -> Path:
    """Plot ``curves`` into ``out`` (PNG, SVG or PDF by its suffix): x = optimizer step with
    epochs on the top axis (x = epoch when the curves' epochs differ in length)."""
    import numpy as np
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    spe = {curve.run.steps_per_epoch for curve in curves}
    per_step = len(spe) == 1
    figure = Figure(figsize=(10, 5), dpi=120, layout="constrained")
    axes = figure.add_subplot()
    for curve in curves:
        steps = range(1, len(curve.lrs) + 1)
        xs = list(steps) if per_step else [k / curve.run.steps_per_epoch for k in steps]
        axes.plot(xs, curve.lrs, label=curve.label, linewidth=1.8)
    axes.set_ylabel("learning rate")
    axes.grid(True, alpha=0.3)
    if log_y:
        axes.set_yscale("log")
    if per_step:
        steps_per_epoch = spe.pop()
        axes.set_xlabel("optimizer step")
        epochs = max(curve.run.max_epochs for curve in curves)
        if epochs <= 60:  # a faint line where each epoch ends
            for epoch in range(1, epochs):
                axes.axvline(epoch * steps_per_epoch, color="0.85", linewidth=0.7, zorder=0)

        def to_epoch(step: Any) -> Any:
            return np.asarray(step) / steps_per_epoch

        def to_step(epoch: Any) -> Any:
            return np.asarray(epoch) * steps_per_epoch

        top = axes.secondary_xaxis("top", functions=(to_epoch, to_step))
        top.set_xlabel("epoch")
        top.xaxis.set_major_locator(MaxNLocator(integer=True))
    else:
        axes.set_xlabel("epoch")
    axes.set_xlim(left=0)
    axes.legend(loc="best", fontsize="small")
    if title:
        axes.set_title(title)
    out.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(out)
    return out
