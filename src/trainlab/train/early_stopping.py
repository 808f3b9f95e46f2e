"""Early stopping: one job, as a listener of the loop."""

from __future__ import annotations

import copy
import math
from typing import Any

from torch import nn

from trainlab.metrics import mode_for
from trainlab.train.loop import EpochListener, Progress


class EarlyStopping(EpochListener):
    """Asks the loop to stop after ``patience`` epochs in a row without an improvement larger than
    ``min_delta``; keeps the best weights to restore at the end if asked."""

    def __init__(
        self,
        model: nn.Module,
        monitor: str,
        mode: str,
        patience: int,
        min_delta: float,
        restore_best: bool,
    ) -> None:
        self.model = model
        self.monitor = monitor
        self.mode = mode_for(monitor, mode)
        self.patience = patience
        self.min_delta = min_delta
        self.restore_best = restore_best
        self.best: float | None = None
        self.best_epoch: int | None = None
        self.bad_epochs = 0
        self.best_weights: dict[str, Any] | None = None
        self.stopped_epoch: int | None = None

    def improved(self, value: float) -> bool:
        if math.isnan(value):
            return False
        if self.best is None:
            return True
        if self.mode == "min":
            return value < self.best - self.min_delta
        return value > self.best + self.min_delta

    def on_epoch_end(self, progress: Progress, metrics: dict[str, float], improved: bool) -> None:
        value = metrics[self.monitor]
        if self.improved(value):
            self.best, self.best_epoch, self.bad_epochs = value, progress.epoch, 0
            if self.restore_best:
                self.best_weights = copy.deepcopy(self.model.state_dict())
            return
        self.bad_epochs += 1
        if self.bad_epochs >= self.patience:
            self.stopped_epoch = progress.epoch
            progress.stop_requested = True

    def on_train_end(self, progress: Progress) -> None:
        if self.restore_best and self.best_weights is not None:
            self.model.load_state_dict(self.best_weights)

    def state_dict(self) -> dict[str, Any]:
        return {
            "best": self.best,
            "best_epoch": self.best_epoch,
            "bad_epochs": self.bad_epochs,
            "stopped_epoch": self.stopped_epoch,
            "best_weights": self.best_weights,  # so restore_best still works after a resume
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.best, self.best_epoch = state["best"], state["best_epoch"]
        self.bad_epochs, self.stopped_epoch = state["bad_epochs"], state["stopped_epoch"]
        self.best_weights = state.get("best_weights")
