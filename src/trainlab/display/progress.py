"""Progress while training: a rich bar on a terminal, one plain line per epoch otherwise.

Updated only when the loop publishes (every ``log_every_n_steps`` and at epoch end), so the
display costs nothing per step.
"""

from __future__ import annotations

import sys
from typing import Any

from trainlab.train.loop import EpochListener, Progress

SHOWN_METRICS = ("val/loss", "val/acc", "val/f1", "val/auroc", "val/mse", "val/r2")


def format_metrics(metrics: dict[str, float]) -> str:
    return "  ".join(f"{k} {metrics[k]:.4g}" for k in SHOWN_METRICS if k in metrics)


class PlainProgress(EpochListener):
    """One line per epoch, for logs, pipes and CI."""

    def __init__(self, max_epochs: int, label: str = "") -> None:
        self.max_epochs = max_epochs
        self.label = f"[{label}] " if label else ""

    def start(self) -> None:
        pass

    def on_epoch_end(self, progress: Progress, metrics: dict[str, float], improved: bool) -> None:
        mark = " *" if improved else ""
        print(
            f"{self.label}epoch {progress.epoch}/{self.max_epochs}  step {progress.step}  "
            f"train/loss {metrics['train/epoch_loss']:.4g}  {format_metrics(metrics)}{mark}",
            flush=True,
        )

    def stop(self) -> None:
        pass


class SilentProgress(EpochListener):
    """Prints nothing (``trainer.progress=none``)."""

    def start(self) -> None:
        pass

    def stop(self) -> None:
        pass


class RichProgress(EpochListener):
    """A live bar: epoch, step, loss, learning rate and the last validation metrics."""

    def __init__(self, max_epochs: int, steps_per_epoch: int) -> None:
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )
        from rich.progress import Progress as Bar

        self.max_epochs = max_epochs
        self.bar = Bar(
            TextColumn("[bold]epoch {task.fields[epoch]}/{task.fields[max_epochs]}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("loss {task.fields[loss]}  lr {task.fields[lr]}"),
            TextColumn("{task.fields[val]}"),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            transient=False,
        )
        self.task = self.bar.add_task(
            "train",
            total=max_epochs * steps_per_epoch,
            epoch=1,
            max_epochs=max_epochs,
            loss="-",
            lr="-",
            val="",
        )

    def start(self) -> None:
        self.bar.start()

    def on_steps(self, step: int, loss: float, lr: float) -> None:
        self.bar.update(self.task, completed=step, loss=f"{loss:.4g}", lr=f"{lr:.3g}")

    def on_epoch_end(self, progress: Progress, metrics: dict[str, float], improved: bool) -> None:
        self.bar.update(
            self.task,
            completed=progress.step,
            epoch=min(progress.epoch + 1, self.max_epochs),
            val=format_metrics(metrics),
        )

    def stop(self) -> None:
        self.bar.stop()


def make_progress(mode: str, max_epochs: int, steps_per_epoch: int, label: str = "") -> Any:
    """``auto``: rich on a terminal, plain otherwise; ``none``: silent."""
    if mode == "auto":
        mode = "rich" if sys.stdout.isatty() else "plain"
    if mode == "rich":
        return RichProgress(max_epochs, steps_per_epoch)
    if mode == "plain":
        return PlainProgress(max_epochs, label)
    return SilentProgress()
