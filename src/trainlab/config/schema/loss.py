"""Schemas of the ``loss`` group. ``auto`` picks the loss from the dataset's task."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from omegaconf import MISSING

from trainlab.config.constraints import constrained, fraction, non_negative, positive

# Which task each loss is for (validation reads these; ``auto`` fits every task).
CLASSIFICATION_LOSSES = ("cross_entropy", "bce", "bce_with_logits", "focal")
BINARY_LOSSES = ("bce", "bce_with_logits")  # one logit: exactly two classes
REGRESSION_LOSSES = ("mse", "mae", "huber", "smooth_l1", "quantile")


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
    # None, "balanced" (n / (classes * count), from the training split) or one weight per class.
    class_weights: Any = None


@dataclass
class BCEConfig(LossConfig):
    """Binary cross-entropy on one logit (BCEWithLogitsLoss)."""

    name: str = "bce"
    pos_weight: float | None = positive(None, optional=True)  # >1 favours recall of class 1


@dataclass
class BCEWithLogitsConfig(BCEConfig):
    """The same loss as ``bce``, under PyTorch's name."""

    name: str = "bce_with_logits"


@dataclass
class FocalConfig(LossConfig):
    """Focal loss (Lin et al.): cross-entropy scaled by (1 - p_true)^gamma."""

    name: str = "focal"
    gamma: float = non_negative(2.0)  # 0 is plain cross-entropy; higher ignores easy examples
    # None; binary: a number in [0, 1], the weight of class 1 (class 0 gets 1 - alpha);
    # any task: "balanced" or one weight per class.
    alpha: Any = None


@dataclass
class MSEConfig(LossConfig):
    """Mean squared error, for regression."""

    name: str = "mse"


@dataclass
class MAEConfig(LossConfig):
    """Mean absolute error (L1), for regression: robust to outliers, predicts the median."""

    name: str = "mae"


@dataclass
class HuberConfig(LossConfig):
    """Huber loss: squared error below delta, absolute error above."""

    name: str = "huber"
    delta: float = positive(1.0)  # errors above this count linearly (robust to outliers)


@dataclass
class SmoothL1Config(LossConfig):
    """Smooth L1 (Huber divided by beta): absolute error with a quadratic zone below beta."""

    name: str = "smooth_l1"
    beta: float = non_negative(1.0)  # 0 is plain L1; larger is closer to MSE near 0


@dataclass
class QuantileConfig(LossConfig):
    """Quantile (pinball) loss: the model predicts the given quantile of the target."""

    name: str = "quantile"
    quantile: float = constrained(0.5, gt=0.0, lt=1.0)  # 0.5: the median; 0.9: a high estimate


LOSS_SCHEMAS: dict[str, type[LossConfig]] = {
    "auto": AutoLossConfig,
    "cross_entropy": CrossEntropyConfig,
    "bce": BCEConfig,
    "bce_with_logits": BCEWithLogitsConfig,
    "focal": FocalConfig,
    "mse": MSEConfig,
    "mae": MAEConfig,
    "huber": HuberConfig,
    "smooth_l1": SmoothL1Config,
    "quantile": QuantileConfig,
}
