"""Schemas of the ``curriculum`` group: train on the easy examples first.

Each epoch keeps its length (the same number of batches) and draws its rows from the easiest
``fraction`` of the training set, which grows from ``start_fraction`` to 1.0 over
``pace_epochs`` epochs along the ``pace`` function (Hacohen & Weinshall, 2019: "On the power
of curriculum learning"). Keeping the epoch length fixed keeps the schedules, progress and
checkpoints' positions what they are without a curriculum.
"""

from __future__ import annotations

from dataclasses import dataclass

from omegaconf import MISSING

from trainlab.config.constraints import at_least, constrained, non_negative, one_of

PACES = ("linear", "root", "step", "exponential")


@dataclass
class CurriculumConfig:
    """Options every curriculum shares."""

    name: str = MISSING
    start_fraction: float = constrained(0.25, gt=0.0, le=1.0)  # share of the easiest rows first
    pace: str = one_of("linear", *PACES)  # how the share grows to 1.0
    pace_epochs: int = at_least(1, 5)  # epochs from start_fraction to the whole training set
    pace_steps: int = at_least(1, 4)  # pace=step: the number of equal jumps
    # Epochs on the whole training set before the curriculum starts (loss: the model that
    # scores the examples trains this long first).
    warmup_epochs: int = non_negative(0)


@dataclass
class NoneCurriculumConfig(CurriculumConfig):
    """No curriculum: every epoch shuffles the whole training set (the default)."""

    name: str = "none"


@dataclass
class LossCurriculumConfig(CurriculumConfig):
    """Difficulty = each example's loss under the model after ``warmup_epochs`` epochs."""

    name: str = "loss"
    warmup_epochs: int = at_least(1, 1)


@dataclass
class ScoreCurriculumConfig(CurriculumConfig):
    """Difficulty = a score the dataset provides (distance to the true boundary for the
    synthetic sets, ``dataset.difficulty_column`` for a CSV); higher is harder."""

    name: str = "score"


CURRICULUM_SCHEMAS: dict[str, type[CurriculumConfig]] = {
    "none": NoneCurriculumConfig,
    "loss": LossCurriculumConfig,
    "score": ScoreCurriculumConfig,
}
