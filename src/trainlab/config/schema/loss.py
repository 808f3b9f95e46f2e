"""Schemas of the ``loss`` group. ``auto`` picks the loss from the dataset's task."""

from __future__ import annotations

from dataclasses import dataclass

from omegaconf import MISSING

from trainlab.config.constraints import fraction, positive


@dataclass
class LossConfig:
    """Options every loss shares."""

    name: str = MISSING


@dataclass
class AutoLossConfig(LossConfig):
    """Chosen from the task: cross_entropy (multi-class), bce (binary), mse (regression)."""

    name: str = "auto"


@dataclass
class CrossEntropyConfig(LossConfig):
    """Softmax cross-entropy over one logit per class."""

    name: str = "cross_entropy"
    label_smoothing: float = fraction(0.0)


@dataclass
class BCEConfig(LossConfig):
    """Binary cross-entropy on one logit (BCEWithLogitsLoss)."""

    name: str = "bce"
    pos_weight: float | None = positive(None, optional=True)  # >1 favours recall of class 1


@dataclass
class MSEConfig(LossConfig):
    """Mean squared error, for regression."""

    name: str = "mse"


LOSS_SCHEMAS: dict[str, type[LossConfig]] = {
    "auto": AutoLossConfig,
    "cross_entropy": CrossEntropyConfig,
    "bce": BCEConfig,
    "mse": MSEConfig,
}
