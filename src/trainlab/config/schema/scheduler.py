"""Schemas of the ``scheduler`` group: how the learning rate changes over the run."""

from __future__ import annotations

from dataclasses import dataclass

from omegaconf import MISSING

from trainlab.config.constraints import at_least, constrained, non_negative, one_of


@dataclass
class SchedulerConfig:
    """Options every scheduler shares."""

    name: str = MISSING
    interval: str = one_of("epoch", "epoch", "step")  # when scheduler.step() is called


@dataclass
class ConstantConfig(SchedulerConfig):
    """No schedule: the optimizer's learning rate throughout."""

    name: str = "none"


@dataclass
class StepConfig(SchedulerConfig):
    """Multiply the learning rate by gamma every step_size epochs."""

    name: str = "step"
    step_size: int = at_least(1, 10)
    gamma: float = constrained(0.1, gt=0.0, le=1.0)


@dataclass
class CosineConfig(SchedulerConfig):
    """Cosine annealing from the initial learning rate down to eta_min over the run."""

    name: str = "cosine"
    eta_min: float = non_negative(0.0)


@dataclass
class WarmupCosineConfig(SchedulerConfig):
    """Linear warm-up for warmup_epochs, then cosine annealing to eta_min; stepped per batch."""

    name: str = "warmup_cosine"
    interval: str = one_of("step", "step")
    warmup_epochs: float = non_negative(1.0)  # may be fractional: 0.5 = half an epoch
    warmup_start_factor: float = constrained(0.01, gt=0.0, le=1.0)
    eta_min: float = non_negative(0.0)


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


SCHEDULER_SCHEMAS: dict[str, type[SchedulerConfig]] = {
    "none": ConstantConfig,
    "step": StepConfig,
    "cosine": CosineConfig,
    "warmup_cosine": WarmupCosineConfig,
    "plateau": PlateauConfig,
}
