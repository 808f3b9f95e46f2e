"""The linear baseline: logistic regression for classes, linear regression for numbers."""

from __future__ import annotations

import math
from typing import Any

from torch import nn


def build_linear(cfg: Any, input_shape: tuple[int, ...], num_outputs: int) -> nn.Module:
    """One linear layer from the (flattened) example to the outputs. With cross-entropy or
    BCE this is (multinomial) logistic regression; with MSE, least-squares regression."""
    layers: list[nn.Module] = [nn.Flatten()] if len(input_shape) > 1 else []
    layers.append(nn.Linear(math.prod(input_shape), num_outputs))
    return nn.Sequential(*layers)
