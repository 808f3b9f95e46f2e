"""The multi-layer perceptron."""

from __future__ import annotations

import math
from typing import Any

from torch import nn

ACTIVATION_LAYERS: dict[str, type[nn.Module]] = {
    "relu": nn.ReLU,
    "leaky_relu": nn.LeakyReLU,
    "gelu": nn.GELU,
    "silu": nn.SiLU,
    "elu": nn.ELU,
    "tanh": nn.Tanh,
    "sigmoid": nn.Sigmoid,
}


def build_mlp(cfg: Any, input_shape: tuple[int, ...], num_outputs: int) -> nn.Module:
    """Linear -> activation (-> dropout) for each hidden size, then a linear head. Examples
    with more than one dimension (images, sequences) are flattened first."""
    layers: list[nn.Module] = [nn.Flatten()] if len(input_shape) > 1 else []
    width = math.prod(input_shape)
    for hidden in cfg.hidden_sizes:
        layers += [nn.Linear(width, int(hidden)), ACTIVATION_LAYERS[cfg.activation]()]
        if cfg.dropout > 0:
            layers.append(nn.Dropout(cfg.dropout))
        width = int(hidden)
    layers.append(nn.Linear(width, num_outputs))
    return nn.Sequential(*layers)
