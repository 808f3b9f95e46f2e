"""Schemas of the ``regularizer`` group. Several combine: ``regularizer=[l2,dropout,mixup]``.

Each option lives under its own key (``regularizer.l1.weight``), so combined options never
collide. What each one touches: the loss (l1, l2, elastic_net add a penalty), the model
(dropout, dropconnect, droppath, spectral_norm change it once, before the optimizer is built),
the training batch (label_smoothing, input_noise, feature_dropout, mixup) or the step
(max_norm, after each optimizer step).
"""

from __future__ import annotations

from dataclasses import dataclass

from trainlab.config.constraints import at_least, fraction, non_negative, positive


@dataclass
class L1Config:
    """L1 penalty (lasso): weight * sum |w|; pushes weights to exactly zero."""

    weight: float = non_negative(1e-5)
    include_bias_and_norm: bool = False  # penalise biases and norm parameters too


@dataclass
class L2Config:
    """L2 penalty (ridge): weight * sum w^2 added to the loss (coupled, unlike AdamW's decay)."""

    weight: float = non_negative(1e-4)
    include_bias_and_norm: bool = False


@dataclass
class ElasticNetConfig:
    """Elastic net, as scikit-learn writes it:
    alpha * (l1_ratio * sum |w| + (1 - l1_ratio) / 2 * sum w^2)."""

    alpha: float = non_negative(1e-4)  # overall strength
    l1_ratio: float = fraction(0.5, closed_high=True)  # 1: pure L1 (sparse), 0: pure L2
    include_bias_and_norm: bool = False


@dataclass
class DropoutConfig:
    """Dropout after every hidden activation; overrides the model's own dropout rate."""

    p: float = fraction(0.1)  # probability of zeroing a hidden unit while training


@dataclass
class DropConnectConfig:
    """DropConnect: zero individual weights of every Linear layer while training."""

    p: float = fraction(0.1)  # probability of dropping a weight for one training step


@dataclass
class DropPathConfig:
    """Stochastic depth: skip whole residual branches while training (residual models only)."""

    p: float = fraction(0.1)  # drop rate of the deepest block; shallower blocks drop less


@dataclass
class SpectralNormConfig:
    """Spectral normalisation of every Linear/Conv weight (largest singular value 1)."""

    n_power_iterations: int = at_least(1, 1)  # per training step; more is exact but slower


@dataclass
class MaxNormConfig:
    """Max-norm constraint: after each step, every unit's incoming weights have norm <= limit."""

    limit: float = positive(3.0)  # smaller constrains more; 3-4 is usual with dropout


@dataclass
class LabelSmoothingConfig:
    """Label smoothing of the training targets (classification)."""

    smoothing: float = fraction(0.1)  # share of the target moved evenly onto all classes


@dataclass
class InputNoiseConfig:
    """Gaussian noise added to the training inputs."""

    std: float = non_negative(0.1)  # in units of the normalised features


@dataclass
class FeatureDropoutConfig:
    """Whole input features set to 0 (the training mean) on training batches."""

    p: float = fraction(0.1)  # probability of dropping one feature of one example


@dataclass
class MixupConfig:
    """Mixup: train on convex mixtures of example pairs and of their (soft) targets."""

    alpha: float = positive(0.2)  # Beta(alpha, alpha) mixing; larger mixes more evenly


REGULARIZER_SCHEMAS: dict[str, type] = {
    "l1": L1Config,
    "l2": L2Config,
    "elastic_net": ElasticNetConfig,
    "dropout": DropoutConfig,
    "dropconnect": DropConnectConfig,
    "droppath": DropPathConfig,
    "spectral_norm": SpectralNormConfig,
    "max_norm": MaxNormConfig,
    "label_smoothing": LabelSmoothingConfig,
    "input_noise": InputNoiseConfig,
    "feature_dropout": FeatureDropoutConfig,
    "mixup": MixupConfig,
}
