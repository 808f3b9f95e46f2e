"""Gaussian noise on the training inputs (Bishop, 1995: for small noise, akin to a penalty on
the model's sensitivity to its input). Features are normalised, so ``std`` is in units of each
feature's training standard deviation."""

from __future__ import annotations

import torch

from trainlab.regularizers.base import BatchTransform, Regularizer


class AddInputNoise:
    def __init__(self, std: float) -> None:
        self.std = std

    def __call__(
        self, features: torch.Tensor, targets: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        return features + self.std * torch.randn_like(features), targets


class InputNoise(Regularizer):
    name = "input_noise"

    def batch_transform(self) -> BatchTransform | None:
        return AddInputNoise(float(self.options.std)) if self.options.std > 0 else None
