"""DropConnect (Wan et al., 2013): while training, zero individual *weights* of every Linear
layer (dropout zeroes units), scaling the kept ones by ``1 / (1 - p)``.

Implemented as a parametrization of ``weight`` (``torch.nn.utils.parametrize``), so the
optimizer and the checkpoints see the original weight, the forward pass sees a masked copy, and
``model.eval()`` turns it off. One mask per forward pass, shared by the batch (the per-example
masks of the paper cost a weight matrix per example).
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils import parametrize

from trainlab.regularizers.base import Regularizer, weight_layers


class DropConnectWeight(nn.Module):
    """The weight with a fresh random mask in training mode, unchanged in eval mode."""

    def __init__(self, p: float) -> None:
        super().__init__()
        self.p = p

    def forward(self, weight: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0:
            return weight
        keep = 1 - self.p
        return weight * weight.new_empty(weight.shape).bernoulli_(keep) / keep

    def extra_repr(self) -> str:
        return f"p={self.p}"


def _linear_layers(model: nn.Module) -> list[nn.Module]:
    return [layer for layer in weight_layers(model) if isinstance(layer, nn.Linear)]


class DropConnect(Regularizer):
    name = "dropconnect"
    needs_model = True

    def problem(self, model: nn.Module | None) -> str | None:
        if model is None or _linear_layers(model):
            return None
        return "the model has no Linear layers whose weights could be dropped; use dropout."

    def modify_model(self, model: nn.Module) -> None:
        for layer in _linear_layers(model):
            parametrize.register_parametrization(
                layer, "weight", DropConnectWeight(float(self.options.p))
            )
