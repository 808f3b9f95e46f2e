"""Quantile (pinball) loss: minimised by the ``quantile``-th quantile of the target, so a
model trained with it predicts that quantile (0.5: the median; 0.9: an upper estimate)."""

from __future__ import annotations

import torch
from torch import nn


class QuantileLoss(nn.Module):
    """``mean(max(q * (y - f), (q - 1) * (y - f)))``: under-predictions cost ``q`` per unit,
    over-predictions ``1 - q``."""

    def __init__(self, quantile: float) -> None:
        super().__init__()
        self.quantile = quantile

    def forward(self, predictions: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        error = targets - predictions
        return torch.maximum(self.quantile * error, (self.quantile - 1) * error).mean()
