"""Learning-rate schedules by short name, built from torch.optim.lr_scheduler.

An :class:`LRSchedule` knows whether it steps per batch or per epoch, so the loop calls
``after_batch()`` and ``after_epoch(metrics)`` and never special-cases a scheduler.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch.optim import lr_scheduler

from trainlab.metrics import mode_for


@dataclass(frozen=True)
class RunLength:
    """What a schedule needs to know about the run's length."""

    steps_per_epoch: int
    max_epochs: int

    @property
    def total_steps(self) -> int:
        return self.steps_per_epoch * self.max_epochs


class LRSchedule:
    """A torch scheduler plus when to step it, and the metric it watches (plateau)."""

    def __init__(
        self,
        scheduler: Any | None,
        interval: str,
        monitor: str | None = None,
    ) -> None:
        self.scheduler = scheduler
        self.interval = interval
        self.monitor = monitor

    def after_batch(self) -> None:
        if self.scheduler is not None and self.interval == "step":
            self.scheduler.step()

    def after_epoch(self, metrics: dict[str, float]) -> None:
        if self.scheduler is None or self.interval != "epoch":
            return
        if self.monitor is not None:
            self.scheduler.step(metrics[self.monitor])
        else:
            self.scheduler.step()

    def state_dict(self) -> dict[str, Any]:
        return {} if self.scheduler is None else dict(self.scheduler.state_dict())

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if self.scheduler is not None:
            self.scheduler.load_state_dict(state)


Factory = Callable[[torch.optim.Optimizer, Any, RunLength, Any], LRSchedule]


def _constant(optimizer: torch.optim.Optimizer, cfg: Any, run: RunLength, _: Any) -> LRSchedule:
    return LRSchedule(None, "epoch")


def _step(optimizer: torch.optim.Optimizer, cfg: Any, run: RunLength, _: Any) -> LRSchedule:
    steps = cfg.step_size * (run.steps_per_epoch if cfg.interval == "step" else 1)
    return LRSchedule(
        lr_scheduler.StepLR(optimizer, step_size=steps, gamma=cfg.gamma), cfg.interval
    )


def _cosine(optimizer: torch.optim.Optimizer, cfg: Any, run: RunLength, _: Any) -> LRSchedule:
    length = run.total_steps if cfg.interval == "step" else run.max_epochs
    scheduler = lr_scheduler.CosineAnnealingLR(optimizer, T_max=length, eta_min=cfg.eta_min)
    return LRSchedule(scheduler, cfg.interval)


def _warmup_cosine(
    optimizer: torch.optim.Optimizer, cfg: Any, run: RunLength, _: Any
) -> LRSchedule:
    per_step = cfg.interval == "step"
    unit = run.steps_per_epoch if per_step else 1
    length = run.total_steps if per_step else run.max_epochs
    warmup = min(max(1, round(cfg.warmup_epochs * unit)), max(1, length - 1))
    scheduler = lr_scheduler.SequentialLR(
        optimizer,
        schedulers=[
            lr_scheduler.LinearLR(
                optimizer, start_factor=cfg.warmup_start_factor, end_factor=1.0, total_iters=warmup
            ),
            lr_scheduler.CosineAnnealingLR(
                optimizer, T_max=max(1, length - warmup), eta_min=cfg.eta_min
            ),
        ],
        milestones=[warmup],
    )
    return LRSchedule(scheduler, cfg.interval)


def _plateau(
    optimizer: torch.optim.Optimizer, cfg: Any, run: RunLength, trainer: Any
) -> LRSchedule:
    monitor = cfg.monitor or trainer.monitor
    scheduler = lr_scheduler.ReduceLROnPlateau(
        optimizer,
        mode="min"
        if mode_for(monitor, cfg.mode if cfg.mode != "auto" else trainer.mode) == "min"
        else "max",
        factor=cfg.factor,
        patience=cfg.patience,
        threshold=cfg.threshold,
        cooldown=cfg.cooldown,
        min_lr=cfg.min_lr,
    )
    return LRSchedule(scheduler, "epoch", monitor=monitor)


SCHEDULERS: dict[str, Factory] = {
    "none": _constant,
    "step": _step,
    "cosine": _cosine,
    "warmup_cosine": _warmup_cosine,
    "plateau": _plateau,
}


def build_schedule(
    cfg: Any, optimizer: torch.optim.Optimizer, run: RunLength, trainer: Any
) -> LRSchedule:
    """The schedule named by ``cfg.name`` for a run of the given length."""
    try:
        factory = SCHEDULERS[cfg.name]
    except KeyError:
        known = ", ".join(sorted(SCHEDULERS))
        raise ValueError(f"unknown scheduler {cfg.name!r}; known: {known}") from None
    return factory(optimizer, cfg, run, trainer)
