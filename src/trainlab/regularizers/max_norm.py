"""Max-norm constraint (Srivastava et al., 2014): after every optimizer step, each unit's
incoming weight vector (a row of a Linear weight, an output channel's filter of a Conv) is
scaled back to L2 norm ``limit`` if it grew beyond it. Unlike a penalty it never pulls small
weights down, so it pairs well with dropout and large learning rates."""

from __future__ import annotations

import torch
from torch import nn

from trainlab.regularizers.base import AfterStep, Regularizer, base_weight, weight_layers


class MaxNormConstraint:
    """Renormalises the rows (dim 0) of each weight in place; no host sync."""

    def __init__(self, weights: list[torch.Tensor], limit: float) -> None:
        self.weights = weights
        self.limit = limit

    @torch.no_grad()
    def __call__(self) -> None:
        for weight in self.weights:
            weight.copy_(torch.renorm(weight, p=2, dim=0, maxnorm=self.limit))


class MaxNorm(Regularizer):
    name = "max_norm"
    needs_model = True

    def problem(self, model: nn.Module | None) -> str | None:
        if model is None or any(True for _ in weight_layers(model)):
            return None
        return "the model has no Linear or Conv layers to constrain."

    def after_step(self, model: nn.Module) -> AfterStep | None:
        weights = [base_weight(layer) for layer in weight_layers(model)]
        return MaxNormConstraint(weights, float(self.options.limit)) if weights else None
