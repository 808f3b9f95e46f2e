"""Optimizers and learning-rate schedulers by short name."""

from trainlab.optim.optimizers import OPTIMIZERS, build_optimizer, parameter_groups
from trainlab.optim.schedulers import SCHEDULERS, LRSchedule, build_schedule

__all__ = [
    "OPTIMIZERS",
    "SCHEDULERS",
    "LRSchedule",
    "build_optimizer",
    "build_schedule",
    "parameter_groups",
]
