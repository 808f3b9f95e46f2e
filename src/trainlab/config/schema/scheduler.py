"""Schemas of the ``scheduler`` group: how the learning rate changes over the run.

Durations are in epochs everywhere (``step_size``, ``milestones``, ``warmup_epochs``, ...);
with ``interval=step`` the schedule moves every optimizer step and an epoch counts as
``steps_per_epoch`` steps, so a value means the same length of training either way.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from omegaconf import MISSING

from trainlab.config.constraints import (
    at_least,
    constrained,
    fraction,
    non_negative,
    one_of,
    positive,
)


@dataclass
class SchedulerConfig:
    """Options every scheduler shares, including a linear warm-up that composes with any."""

    name: str = MISSING
    # When the schedule moves: once per epoch, or after every optimizer step (smoother).
    interval: str = one_of("epoch", "epoch", "step")
    # Linear warm-up first: from (the schedule's first lr) x warmup_start_factor up to it over
    # warmup_epochs; the schedule proper starts when the warm-up ends. 0 = no warm-up. It moves
    # at the schedule's interval (per epoch: one level per epoch; interval=step is smooth),
    # except for plateau, whose warm-up always moves per step.
    warmup_epochs: float = non_negative(0.0)
    warmup_start_factor: float = constrained(0.01, gt=0.0, le=1.0)


@dataclass
class ConstantConfig(SchedulerConfig):
    """No schedule: the optimizer's learning rate throughout (after the warm-up, if any)."""

    name: str = "constant"


@dataclass
class NoneConfig(ConstantConfig):
    """``none``: another name of ``constant``, the default of ``conf/train.yaml``."""

    name: str = "none"


@dataclass
class StepConfig(SchedulerConfig):
    """Multiply the learning rate by gamma every step_size epochs."""

    name: str = "step"
    step_size: int = at_least(1, 10)
    gamma: float = constrained(0.1, gt=0.0, le=1.0)


@dataclass
class MultiStepConfig(SchedulerConfig):
    """Multiply the learning rate by gamma at each milestone epoch."""

    name: str = "multistep"
    milestones: list[int] = constrained([10, 15], ge=1)  # epochs after the warm-up, increasing
    gamma: float = constrained(0.1, gt=0.0, le=1.0)


@dataclass
class ExponentialConfig(SchedulerConfig):
    """Multiply the learning rate by gamma every epoch (spread over its steps per step)."""

    name: str = "exponential"
    gamma: float = constrained(0.9, gt=0.0, le=1.0)


@dataclass
class CosineConfig(SchedulerConfig):
    """Cosine annealing from the initial learning rate down to eta_min over the run."""

    name: str = "cosine"
    eta_min: float = non_negative(0.0)


@dataclass
class CosineWarmRestartsConfig(SchedulerConfig):
    """SGDR: cosine annealing to eta_min, restarted at the initial rate after each cycle."""

    name: str = "cosine_warm_restarts"
    interval: str = one_of("step", "epoch", "step")
    cycle_epochs: int = at_least(1, 5)  # T_0: the first cycle's length
    cycle_multiplier: int = at_least(1, 2)  # T_mult: each cycle this many times the last
    eta_min: float = non_negative(0.0)


@dataclass
class WarmupCosineConfig(CosineConfig):
    """Linear warm-up for warmup_epochs, then cosine annealing to eta_min; stepped per batch."""

    name: str = "warmup_cosine"
    interval: str = one_of("step", "epoch", "step")
    warmup_epochs: float = non_negative(1.0)


@dataclass
class OneCycleConfig(SchedulerConfig):
    """1cycle (Smith & Topin): up to max_lr, then down far below the start; per step."""

    name: str = "onecycle"
    interval: str = one_of("step", "epoch", "step")
    max_lr: float | None = positive(None, optional=True)  # the peak; None: optimizer.lr
    pct_start: float = constrained(0.3, gt=0.0, lt=1.0)  # share of the run spent rising
    anneal_strategy: str = one_of("cos", "cos", "linear")
    div_factor: float = at_least(1.0, 25.0)  # starts at max_lr / div_factor
    final_div_factor: float = at_least(1.0, 1e4)  # ends at start / final_div_factor
    three_phase: bool = False
    cycle_momentum: bool = True  # momentum (or beta1) moves opposite to the learning rate
    base_momentum: float = fraction(0.85)
    max_momentum: float = fraction(0.95)


@dataclass
class PlateauConfig(SchedulerConfig):
    """Reduce the learning rate by factor when the monitored metric stops improving."""

    name: str = "plateau"
    factor: float = constrained(0.1, gt=0.0, lt=1.0)
    patience: int = non_negative(5)  # epochs without improvement before reducing
    threshold: float = non_negative(1e-4)
    min_lr: float = non_negative(0.0)
    cooldown: int = non_negative(0)
    monitor: str | None = None  # default: trainer.monitor
    mode: str = one_of("auto", "auto", "min", "max")


@dataclass
class CyclicConfig(SchedulerConfig):
    """Cyclical learning rates (Smith): back and forth between base_lr and max_lr; per step."""

    name: str = "cyclic"
    interval: str = one_of("step", "epoch", "step")
    max_lr: float | None = positive(None, optional=True)  # top of the cycle; None: optimizer.lr
    base_lr: float | None = positive(None, optional=True)  # bottom; None: max_lr / 4
    up_epochs: float = positive(2.0)  # half a cycle: base_lr -> max_lr
    down_epochs: float | None = positive(None, optional=True)  # None: same as up_epochs
    mode: str = one_of("triangular", "triangular", "triangular2", "exp_range")
    gamma: float = constrained(0.9, gt=0.0, le=1.0)  # exp_range: amplitude x gamma per epoch
    cycle_momentum: bool = True  # momentum (or beta1) moves opposite to the learning rate
    base_momentum: float = fraction(0.8)
    max_momentum: float = fraction(0.9)


def cyclic_bounds(cfg: Any, optimizer_lr: float) -> tuple[float, float]:
    """(base_lr, max_lr) of a cyclic schedule: max_lr defaults to the optimizer's rate, base_lr
    to a quarter of max_lr (Smith: a quarter to a third of the range test's peak)."""
    max_lr = float(optimizer_lr if cfg.max_lr is None else cfg.max_lr)
    base_lr = max_lr / 4 if cfg.base_lr is None else float(cfg.base_lr)
    return base_lr, max_lr


@dataclass
class PolynomialConfig(SchedulerConfig):
    """Polynomial decay to 0 at the end of the run: lr x (1 - t/T) ** power."""

    name: str = "polynomial"
    power: float = positive(1.0)  # 1 = linear decay; >1 drops early, <1 drops late


SCHEDULER_SCHEMAS: dict[str, type[SchedulerConfig]] = {
    "constant": ConstantConfig,
    "none": NoneConfig,
    "step": StepConfig,
    "multistep": MultiStepConfig,
    "exponential": ExponentialConfig,
    "cosine": CosineConfig,
    "cosine_warm_restarts": CosineWarmRestartsConfig,
    "warmup_cosine": WarmupCosineConfig,
    "onecycle": OneCycleConfig,
    "plateau": PlateauConfig,
    "cyclic": CyclicConfig,
    "polynomial": PolynomialConfig,
}
