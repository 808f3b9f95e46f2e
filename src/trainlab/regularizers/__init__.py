"""Regularizers that add a penalty to the loss. Several combine (``regularizer=[l1,l2]``).

Biases and normalisation parameters (fewer than two dimensions) are left alone unless
``include_bias_and_norm`` is set: penalising them restricts the model without reducing
over-fitting.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import nn


class WeightPenalty:
    """``weight * sum(norm(p))`` over the chosen parameters, L1 (p=1) or squared L2 (p=2)."""

    def __init__(self, name: str, parameters: list[torch.Tensor], weight: float, power: int):
        self.name = name
        self.parameters = parameters
        self.weight = weight
        self.power = power

    def __call__(self) -> torch.Tensor:
        if self.power == 1:
            norms = torch._foreach_norm(self.parameters, 1)
            return self.weight * torch.stack(norms).sum()
        norms = torch._foreach_norm(self.parameters, 2)
        return self.weight * torch.stack(norms).square().sum()


def _selected(model: nn.Module, include_bias_and_norm: bool) -> list[torch.Tensor]:
    return [
        p for p in model.parameters() if p.requires_grad and (p.ndim >= 2 or include_bias_and_norm)
    ]


def _l1(model: nn.Module, cfg: Any) -> WeightPenalty:
    return WeightPenalty("l1", _selected(model, cfg.include_bias_and_norm), cfg.weight, 1)


def _l2(model: nn.Module, cfg: Any) -> WeightPenalty:
    return WeightPenalty("l2", _selected(model, cfg.include_bias_and_norm), cfg.weight, 2)


REGULARIZERS: dict[str, Callable[[nn.Module, Any], WeightPenalty]] = {"l1": _l1, "l2": _l2}


def build_penalties(cfg: Any, model: nn.Module) -> list[WeightPenalty]:
    """One penalty per configured regularizer (``cfg`` maps name -> options)."""
    penalties = []
    for name, options in cfg.items():
        try:
            penalties.append(REGULARIZERS[name](model, options))
        except KeyError:
            known = ", ".join(sorted(REGULARIZERS))
            raise ValueError(f"unknown regularizer {name!r}; known: {known}") from None
    return [p for p in penalties if p.weight > 0 and p.parameters]
