"""Schemas of the ``model`` group: the network architecture."""

from __future__ import annotations

from dataclasses import dataclass

from omegaconf import MISSING

from trainlab.config.constraints import constrained, fraction, one_of

ACTIVATIONS = ("relu", "leaky_relu", "gelu", "silu", "elu", "tanh", "sigmoid")


@dataclass
class ModelConfig:
    """Options every model shares."""

    name: str = MISSING


@dataclass
class MLPConfig(ModelConfig):
    """A multi-layer perceptron: Linear -> activation -> dropout, repeated."""

    name: str = "mlp"
    hidden_sizes: list[int] = constrained([128, 128], ge=1)  # width of each hidden layer
    activation: str = one_of("relu", *ACTIVATIONS)
    dropout: float = fraction(0.0)  # probability of zeroing a hidden unit while training


MODEL_SCHEMAS: dict[str, type[ModelConfig]] = {"mlp": MLPConfig}
