"""Learning-rate schedules by short name, built from torch.optim.lr_scheduler.

An :class:`LRSchedule` knows whether it steps per batch or per epoch, so the loop calls
``after_batch()`` and ``after_epoch(metrics)`` and never special-cases a scheduler.

Every schedule may start with a linear warm-up (``scheduler.warmup_epochs``): the learning
rate rises from ``warmup_start_factor`` x the schedule's first rate to that rate, then the
schedule proper starts, its clock at 0. Lengths taken from the run (cosine, polynomial,
onecycle) cover what is left of it; counts (``step_size``, ``milestones``, cycles) are
counted from the warm-up's end. Plateau, which steps on a validation metric, is warmed up
per optimizer step and starts watching the metric once the warm-up is over.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch.optim import lr_scheduler

from trainlab.config.schema.scheduler import cyclic_bounds
from trainlab.metrics import mode_for


@dataclass(frozen=True)
class RunLength:
    """What a schedule needs to know about the run's length."""

    steps_per_epoch: int  # optimizer steps, i.e. after gradient accumulation
    max_epochs: int

    @property
    def total_steps(self) -> int:
        return self.steps_per_epoch * self.max_epochs

    @classmethod
    def from_batches(
        cls, batches_per_epoch: int, max_epochs: int, accumulate_grad_batches: int = 1
    ) -> RunLength:
        """The run of ``max_epochs`` epochs of ``batches_per_epoch`` batches, with one optimizer
        step per ``accumulate_grad_batches`` batches (and one for an epoch's remainder)."""
        steps = math.ceil(batches_per_epoch / max(1, accumulate_grad_batches))
        return cls(max(1, steps), max_epochs)

    def units_per_epoch(self, interval: str) -> int:
        """How many times a schedule with this ``interval`` moves per epoch."""
        return self.steps_per_epoch if interval == "step" else 1


@dataclass(frozen=True)
class Span:
    """The stretch of the run a schedule covers, in its own units (epochs or steps)."""

    length: int  # units from the warm-up's end to the end of the run
    per_epoch: int  # units in one epoch: 1, or steps_per_epoch with interval=step

    def units(self, epochs: float) -> int:
        """``epochs`` in this span's units, at least one."""
        return max(1, round(epochs * self.per_epoch))


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


class WarmupThenPlateau(LRSchedule):
    """A per-step linear warm-up, then reduce-on-plateau at each epoch end.

    ReduceLROnPlateau cannot sit in a SequentialLR (its step needs the metric), so the two
    are stepped here: the warm-up after every optimizer step until it is over, the plateau
    at every epoch end after that (epochs inside the warm-up do not count as stalled).
    """

    def __init__(
        self,
        warmup: lr_scheduler.LinearLR,
        warmup_steps: int,
        plateau: lr_scheduler.ReduceLROnPlateau,
        monitor: str,
    ) -> None:
        super().__init__(plateau, "epoch", monitor)
        self.plateau = plateau
        self.warmup = warmup
        self.warmup_steps = warmup_steps
        self.steps = 0

    def after_batch(self) -> None:
        if self.steps < self.warmup_steps:
            self.warmup.step()
        self.steps += 1

    def after_epoch(self, metrics: dict[str, float]) -> None:
        if self.steps >= self.warmup_steps:
            super().after_epoch(metrics)

    def state_dict(self) -> dict[str, Any]:
        return {
            "warmup": self.warmup.state_dict(),
            "plateau": self.plateau.state_dict(),
            "steps": self.steps,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.warmup.load_state_dict(state["warmup"])
        self.plateau.load_state_dict(state["plateau"])
        self.steps = int(state["steps"])


Optimizer = torch.optim.Optimizer
# (optimizer, scheduler config, the span it covers, trainer config) -> torch scheduler or None
Factory = Callable[[Optimizer, Any, Span, Any], Any]


def _peak_lr(optimizer: Optimizer, configured: float | None) -> float:
    """A schedule's ``max_lr``: as configured, or the optimizer's learning rate."""
    return float(optimizer.defaults["lr"]) if configured is None else float(configured)


def _constant(optimizer: Optimizer, cfg: Any, span: Span, trainer: Any) -> Any:
    return None


def _step(optimizer: Optimizer, cfg: Any, span: Span, trainer: Any) -> Any:
    return lr_scheduler.StepLR(optimizer, step_size=span.units(cfg.step_size), gamma=cfg.gamma)


def _multistep(optimizer: Optimizer, cfg: Any, span: Span, trainer: Any) -> Any:
    milestones = [span.units(epoch) for epoch in cfg.milestones]
    return lr_scheduler.MultiStepLR(optimizer, milestones=milestones, gamma=cfg.gamma)


def _exponential(optimizer: Optimizer, cfg: Any, span: Span, trainer: Any) -> Any:
    # gamma is per epoch; per step it is spread evenly over the epoch's steps.
    return lr_scheduler.ExponentialLR(optimizer, gamma=cfg.gamma ** (1.0 / span.per_epoch))


def _cosine(optimizer: Optimizer, cfg: Any, span: Span, trainer: Any) -> Any:
    return lr_scheduler.CosineAnnealingLR(optimizer, T_max=span.length, eta_min=cfg.eta_min)


def _cosine_warm_restarts(optimizer: Optimizer, cfg: Any, span: Span, trainer: Any) -> Any:
    return lr_scheduler.CosineAnnealingWarmRestarts(
        optimizer,
        T_0=span.units(cfg.cycle_epochs),
        T_mult=cfg.cycle_multiplier,
        eta_min=cfg.eta_min,
    )


def _onecycle(optimizer: Optimizer, cfg: Any, span: Span, trainer: Any) -> Any:
    return lr_scheduler.OneCycleLR(
        optimizer,
        max_lr=_peak_lr(optimizer, cfg.max_lr),
        total_steps=span.length,
        pct_start=cfg.pct_start,
        anneal_strategy=cfg.anneal_strategy,
        div_factor=cfg.div_factor,
        final_div_factor=cfg.final_div_factor,
        three_phase=cfg.three_phase,
        cycle_momentum=cfg.cycle_momentum,
        base_momentum=cfg.base_momentum,
        max_momentum=cfg.max_momentum,
    )


def _cyclic(optimizer: Optimizer, cfg: Any, span: Span, trainer: Any) -> Any:
    base_lr, max_lr = cyclic_bounds(cfg, float(optimizer.defaults["lr"]))
    down = cfg.up_epochs if cfg.down_epochs is None else cfg.down_epochs
    return lr_scheduler.CyclicLR(
        optimizer,
        base_lr=base_lr,
        max_lr=max_lr,
        step_size_up=span.units(cfg.up_epochs),
        step_size_down=span.units(down),
        mode=cfg.mode,
        gamma=cfg.gamma ** (1.0 / span.per_epoch),  # per epoch, as for exponential
        cycle_momentum=cfg.cycle_momentum,
        base_momentum=cfg.base_momentum,
        max_momentum=cfg.max_momentum,
    )


def _polynomial(optimizer: Optimizer, cfg: Any, span: Span, trainer: Any) -> Any:
    return lr_scheduler.PolynomialLR(optimizer, total_iters=span.length, power=cfg.power)


def plateau_monitor(cfg: Any, trainer: Any) -> str:
    """The metric plateau watches: its own ``monitor``, else the trainer's."""
    return str(cfg.monitor or trainer.monitor)


def _plateau(optimizer: Optimizer, cfg: Any, span: Span, trainer: Any) -> Any:
    monitor = plateau_monitor(cfg, trainer)
    return lr_scheduler.ReduceLROnPlateau(
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


SCHEDULERS: dict[str, Factory] = {
    "constant": _constant,
    "none": _constant,
    "step": _step,
    "multistep": _multistep,
    "exponential": _exponential,
    "cosine": _cosine,
    "cosine_warm_restarts": _cosine_warm_restarts,
    "warmup_cosine": _cosine,  # cosine whose warm-up is on by default
    "onecycle": _onecycle,
    "plateau": _plateau,
    "cyclic": _cyclic,
    "polynomial": _polynomial,
}


def warmup_length(cfg: Any, run: RunLength, interval: str) -> int:
    """The warm-up in ``interval`` units, leaving at least one unit for the schedule."""
    if cfg.warmup_epochs <= 0:
        return 0
    per_epoch = run.units_per_epoch(interval)
    total = run.max_epochs * per_epoch
    return min(max(1, round(cfg.warmup_epochs * per_epoch)), max(0, total - 1))


def build_schedule(cfg: Any, optimizer: Optimizer, run: RunLength, trainer: Any) -> LRSchedule:
    """The schedule named by ``cfg.name`` for a run of the given length, warm-up included."""
    try:
        factory = SCHEDULERS[cfg.name]
    except KeyError:
        known = ", ".join(sorted(SCHEDULERS))
        raise ValueError(f"unknown scheduler {cfg.name!r}; known: {known}") from None
    if factory is _plateau:
        return _build_plateau(cfg, optimizer, run, trainer)
    interval = str(cfg.interval)
    per_epoch = run.units_per_epoch(interval)
    warmup = warmup_length(cfg, run, interval)
    # The main schedule is built first so that it sets the rate it starts from (cyclic:
    # base_lr, onecycle: max_lr / div_factor); the warm-up then rises to exactly that rate.
    main = factory(optimizer, cfg, Span(run.max_epochs * per_epoch - warmup, per_epoch), trainer)
    if warmup == 0:
        return LRSchedule(main, interval)
    ramp = lr_scheduler.LinearLR(
        optimizer, start_factor=cfg.warmup_start_factor, end_factor=1.0, total_iters=warmup
    )
    if main is None:  # constant: the warm-up, then the rate it reached
        return LRSchedule(ramp, interval)
    sequence = lr_scheduler.SequentialLR(optimizer, schedulers=[ramp, main], milestones=[warmup])
    return LRSchedule(sequence, interval)


def _build_plateau(cfg: Any, optimizer: Optimizer, run: RunLength, trainer: Any) -> LRSchedule:
    plateau = _plateau(optimizer, cfg, Span(run.max_epochs, 1), trainer)
    monitor = plateau_monitor(cfg, trainer)
    warmup = warmup_length(cfg, run, "step")
    if warmup == 0:
        return LRSchedule(plateau, "epoch", monitor=monitor)
    ramp = lr_scheduler.LinearLR(
        optimizer, start_factor=cfg.warmup_start_factor, end_factor=1.0, total_iters=warmup
    )
    return WarmupThenPlateau(ramp, warmup, plateau, monitor)
