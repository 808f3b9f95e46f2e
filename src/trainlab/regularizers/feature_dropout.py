"""Feature dropout on the training inputs: each example loses each input feature with
probability ``p``, so the model cannot lean on any single feature.

A dropped feature is set to 0, which after normalisation is the feature's training mean: the
value reads as "missing" rather than as an extreme. Kept features are *not* rescaled (unlike
``nn.Dropout``), so training and validation inputs keep the same scale.

A "feature" is a whole input feature: a column of tabular data, a channel of an image (all its
pixels), a feature of a sequence (all its time steps).
"""

from __future__ import annotations

import torch

from trainlab.regularizers.base import BatchTransform, Regularizer


def mask_shape(batch_shape: torch.Size, input_shape: tuple[int, ...]) -> tuple[int, ...]:
    """The shape of the keep-mask: one draw per example and feature, broadcast over the rest.
    ``(features,)`` -> ``(N, F)``; ``(time, features)`` -> ``(N, 1, F)``;
    ``(channels, H, W)`` -> ``(N, C, 1, 1)``."""
    rows = batch_shape[0]
    if len(input_shape) == 2:  # a sequence: drop a feature at every time step
        return (rows, 1, input_shape[1])
    if len(input_shape) == 3:  # an image: drop a channel at every pixel
        return (rows, input_shape[0], 1, 1)
    return (rows, *input_shape)


class DropInputFeatures:
    def __init__(self, p: float, input_shape: tuple[int, ...]) -> None:
        self.p = p
        self.input_shape = input_shape

    def __call__(
        self, features: torch.Tensor, targets: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        shape = mask_shape(features.shape, self.input_shape)
        keep = features.new_empty(shape).bernoulli_(1 - self.p)
        return features * keep, targets


class FeatureDropout(Regularizer):
    name = "feature_dropout"

    def batch_transform(self) -> BatchTransform | None:
        if self.options.p == 0:
            return None
        return DropInputFeatures(float(self.options.p), tuple(self.context.input_shape))
