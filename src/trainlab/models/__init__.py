"""Models by short name: ``build_model(cfg.model, input_shape, num_outputs)``.

A builder gets the shape of one example (``(features,)``, ``(channels, H, W)`` or
``(time, features)``) and the number of outputs the loss needs.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from torch import nn

from trainlab.models.mlp import build_mlp

MODEL_BUILDERS: dict[str, Callable[[Any, tuple[int, ...], int], nn.Module]] = {"mlp": build_mlp}


def build_model(cfg: Any, input_shape: tuple[int, ...], num_outputs: int) -> nn.Module:
    """The model named by ``cfg.name``, sized for the data."""
    try:
        builder = MODEL_BUILDERS[cfg.name]
    except KeyError:
        known = ", ".join(sorted(MODEL_BUILDERS))
        raise ValueError(f"unknown model {cfg.name!r}; known: {known}") from None
    return builder(cfg, input_shape, num_outputs)
