"""Schemas of the ``optimizer`` group.

Weight decay is explicit per optimizer: *coupled L2* adds ``weight_decay * w`` to the gradient
(so adaptive optimizers rescale it), *decoupled* shrinks the weights directly by
``lr * weight_decay * w`` (AdamW-style). Each schema's docstring says which one it uses, and
``trainlab.optim.OPTIMIZERS[name].decoupled_decay`` records it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from omegaconf import MISSING

from trainlab.config.constraints import (
    constrained,
    fraction,
    non_negative,
    one_of,
    positive,
    positive_or,
)


def _betas(first: float, second: float) -> list[float]:
    """Two moment decay rates, each in [0, 1)."""
    return constrained([first, second], ge=0.0, lt=1.0, length=2)


# How torch runs the update (torch.optim's ``fused`` / ``foreach`` switches): ``auto`` takes
# the fused kernel (one vectorised kernel per parameter, the fastest on CPU and CUDA) where
# torch has one for the parameters' device and dtype, else torch's own default.
IMPLEMENTATIONS = ("auto", "fused", "foreach", "for_loop")


def implementation() -> Any:
    """``optimizer.implementation``: auto, fused, foreach or for_loop."""
    return one_of("auto", *IMPLEMENTATIONS)


AUTO_LR = "auto"  # optimizer.lr=auto: run the learning-rate range test first, train with its pick


def learning_rate(default: float) -> Any:
    """``lr``: a number > 0, or ``auto``. Typed ``Any`` because structured configs have no
    float-or-string union; the constraint keeps the range check (``lr > 0``)."""
    return positive_or(default, AUTO_LR)


@dataclass
class OptimizerConfig:
    """Options every optimizer shares."""

    name: str = MISSING
    lr: Any = learning_rate(1e-3)
    weight_decay: float = non_negative(0.0)
    # Weight decay on biases and normalisation parameters usually hurts; off unless asked.
    decay_bias_and_norm: bool = False


@dataclass
class SGDConfig(OptimizerConfig):
    """SGD with (optionally Nesterov) momentum; weight decay is coupled L2."""

    name: str = "sgd"
    lr: Any = learning_rate(0.1)
    momentum: float = fraction(0.9)
    nesterov: bool = False  # needs momentum > 0
    dampening: float = fraction(0.0)
    implementation: str = implementation()


@dataclass
class AdamConfig(OptimizerConfig):
    """Adam: per-parameter step sizes from running moments; weight decay is coupled L2."""

    name: str = "adam"
    betas: list[float] = _betas(0.9, 0.999)
    eps: float = positive(1e-8)
    amsgrad: bool = False
    implementation: str = implementation()


@dataclass
class AdamWConfig(AdamConfig):
    """AdamW: Adam with decoupled weight decay (Loshchilov & Hutter)."""

    name: str = "adamw"
    weight_decay: float = non_negative(0.01)


@dataclass
class NAdamConfig(OptimizerConfig):
    """NAdam: Adam with Nesterov momentum (Dozat); weight decay is coupled L2."""

    name: str = "nadam"
    lr: Any = learning_rate(2e-3)
    betas: list[float] = _betas(0.9, 0.999)
    eps: float = positive(1e-8)
    momentum_decay: float = non_negative(4e-3)  # psi: how fast the momentum schedule warms up


@dataclass
class RAdamConfig(OptimizerConfig):
    """RAdam: Adam with a rectified (variance-aware) warm-up of the adaptive step; coupled L2."""

    name: str = "radam"
    betas: list[float] = _betas(0.9, 0.999)
    eps: float = positive(1e-8)


@dataclass
class RMSpropConfig(OptimizerConfig):
    """RMSprop: steps scaled by a running RMS of the gradient; weight decay is coupled L2."""

    name: str = "rmsprop"
    alpha: float = fraction(0.99)  # smoothing of the squared-gradient average
    eps: float = positive(1e-8)
    momentum: float = fraction(0.0)
    centered: bool = False  # divide by the gradient's variance, not its second moment


@dataclass
class AdagradConfig(OptimizerConfig):
    """Adagrad: per-parameter steps shrink with the sum of squared gradients; coupled L2."""

    name: str = "adagrad"
    lr: Any = learning_rate(1e-2)
    lr_decay: float = non_negative(0.0)
    initial_accumulator_value: float = non_negative(0.0)
    eps: float = positive(1e-10)
    implementation: str = implementation()


@dataclass
class AdadeltaConfig(OptimizerConfig):
    """Adadelta: Adagrad with running averages instead of sums; weight decay is coupled L2."""

    name: str = "adadelta"
    lr: Any = learning_rate(1.0)
    rho: float = fraction(0.9)  # smoothing of the running averages
    eps: float = positive(1e-6)


@dataclass
class LambConfig(OptimizerConfig):
    """LAMB: Adam with a layer-wise trust ratio, for large batches; decoupled weight decay."""

    name: str = "lamb"
    betas: list[float] = _betas(0.9, 0.999)
    eps: float = positive(1e-6)
    weight_decay: float = non_negative(0.01)


@dataclass
class LionConfig(OptimizerConfig):
    """Lion: the sign of an interpolated momentum (Chen et al.); decoupled weight decay."""

    name: str = "lion"
    lr: Any = learning_rate(1e-4)
    betas: list[float] = _betas(0.9, 0.99)
    weight_decay: float = non_negative(0.1)


@dataclass
class AdaBoundConfig(OptimizerConfig):
    """AdaBound: Adam whose step is clipped to bounds that converge to SGD; coupled L2."""

    name: str = "adabound"
    final_lr: float = positive(0.1)  # the SGD learning rate the bounds converge to
    gamma: float = positive(1e-3)  # how fast the bounds tighten
    betas: list[float] = _betas(0.9, 0.999)
    eps: float = positive(1e-8)
    amsbound: bool = False


OPTIMIZER_SCHEMAS: dict[str, type[OptimizerConfig]] = {
    "sgd": SGDConfig,
    "adam": AdamConfig,
    "adamw": AdamWConfig,
    "nadam": NAdamConfig,
    "radam": RAdamConfig,
    "rmsprop": RMSpropConfig,
    "adagrad": AdagradConfig,
    "adadelta": AdadeltaConfig,
    "lamb": LambConfig,
    "lion": LionConfig,
    "adabound": AdaBoundConfig,
}
