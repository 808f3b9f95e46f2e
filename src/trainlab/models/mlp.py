"""The multi-layer perceptron."""

from __future__ import annotations

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


def build_mlp(cfg: Any, in_features: int, out_features: int) -> nn.Module:
    """Linear -> activation (-> dropout) for each hidden size, then a linear head."""
    layers: list[nn.Module] = []
    width = in_features
    for hidden in cfg.hidden_sizes:
        layers += [nn.Linear(width, int(hidden)), ACTIVATION_LAYERS[cfg.activation]()]
        if cfg.dropout > 0:
            layers.append(nn.Dropout(cfg.dropout))
        width = int(hidden)
    layers.append(nn.Linear(width, out_features))
    return nn.Sequential(*layers)
