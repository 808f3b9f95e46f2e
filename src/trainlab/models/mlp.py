"""The multi-layer perceptron."""

from __future__ import annotations

import math
from typing import Any

from torch import nn

from trainlab.models.layers import activation, dropout, feature_norm, has_shift


def build_mlp(cfg: Any, input_shape: tuple[int, ...], num_outputs: int) -> nn.Module:
    """Linear -> norm -> activation -> dropout for each hidden size, then a linear head.
    Examples with more than one dimension (images, sequences) are flattened first."""
    layers: list[nn.Module | None] = [nn.Flatten()] if len(input_shape) > 1 else []
    width = math.prod(input_shape)
    for hidden in map(int, cfg.hidden_sizes):
        layers += [
            nn.Linear(width, hidden, bias=not has_shift(cfg.norm)),
            feature_norm(cfg.norm, hidden),
            activation(cfg.activation),
            dropout(cfg.dropout_type, cfg.dropout),
        ]
        width = hidden
    layers.append(nn.Linear(width, num_outputs))
    return nn.Sequential(*(layer for layer in layers if layer is not None))
