"""Models by short name: ``build_model(cfg.model, in_features, out_features)``."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from torch import nn

from trainlab.models.mlp import build_mlp

MODEL_BUILDERS: dict[str, Callable[[Any, int, int], nn.Module]] = {"mlp": build_mlp}


def build_model(cfg: Any, in_features: int, out_features: int) -> nn.Module:
    """The model named by ``cfg.name``, sized for the data."""
    try:
        builder = MODEL_BUILDERS[cfg.name]
    except KeyError:
        known = ", ".join(sorted(MODEL_BUILDERS))
        raise ValueError(f"unknown model {cfg.name!r}; known: {known}") from None
    return builder(cfg, in_features, out_features)
