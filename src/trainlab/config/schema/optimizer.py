"""Schemas of the ``optimizer`` group."""

from __future__ import annotations

from dataclasses import dataclass

from omegaconf import MISSING

from trainlab.config.constraints import constrained, fraction, non_negative, positive


@dataclass
class OptimizerConfig:
    """Options every optimizer shares."""

    name: str = MISSING
    lr: float = positive(1e-3)
    weight_decay: float = non_negative(0.0)
    # Weight decay on biases and normalisation parameters usually hurts; off unless asked.
    decay_bias_and_norm: bool = False


@dataclass
class SGDConfig(OptimizerConfig):
    """SGD with (optionally Nesterov) momentum; weight decay is coupled L2."""

    name: str = "sgd"
    lr: float = positive(0.1)
    momentum: float = fraction(0.9)
    nesterov: bool = False  # needs momentum > 0
    dampening: float = fraction(0.0)


@dataclass
class AdamConfig(OptimizerConfig):
    """Adam: per-parameter step sizes from running moments; weight decay is coupled L2."""

    name: str = "adam"
    betas: list[float] = constrained([0.9, 0.999], ge=0.0, lt=1.0)
    eps: float = positive(1e-8)
    amsgrad: bool = False


@dataclass
class AdamWConfig(AdamConfig):
    """AdamW: Adam with decoupled weight decay (Loshchilov & Hutter)."""

    name: str = "adamw"
    weight_decay: float = non_negative(0.01)


OPTIMIZER_SCHEMAS: dict[str, type[OptimizerConfig]] = {
    "sgd": SGDConfig,
    "adam": AdamConfig,
    "adamw": AdamWConfig,
}
