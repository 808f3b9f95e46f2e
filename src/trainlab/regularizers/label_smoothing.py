"""Label smoothing (Szegedy et al., 2016) of the *training* targets: a share ``smoothing`` of
each target is spread evenly over the classes (``(1 - s) * one_hot + s / C``; a binary target
``y`` becomes ``(1 - s) * y + s / 2``), so the model stops pushing its logits to infinity.

The validation split keeps its true labels, so ``val/loss`` stays comparable across runs.

With ``loss=cross_entropy loss.label_smoothing=b`` as well, the two compound: PyTorch smooths
the already smoothed targets again, for an effective ``1 - (1 - s) * (1 - b)`` on training
batches (about ``s + b``), while ``val/loss`` is smoothed by ``b`` alone. Use one of the two.
"""

from __future__ import annotations

import torch
from torch import nn

from trainlab.data.datasets import CLASSIFICATION
from trainlab.regularizers.base import BatchTransform, Regularizer, soft_targets


class SmoothTargets:
    """The batch transform: features unchanged, targets smoothed."""

    def __init__(self, smoothing: float, num_classes: int) -> None:
        self.smoothing = smoothing
        self.num_classes = num_classes

    def __call__(
        self, features: torch.Tensor, targets: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        targets = soft_targets(targets, self.num_classes)
        classes = 2 if targets.ndim == 1 else targets.shape[-1]  # one logit: a binary target
        return features, targets * (1 - self.smoothing) + self.smoothing / classes


class LabelSmoothing(Regularizer):
    name = "label_smoothing"

    def problem(self, model: nn.Module | None) -> str | None:
        if self.context.task == CLASSIFICATION:
            return None
        return (
            "label smoothing needs class labels, but this dataset is a regression task; use "
            "input_noise or mixup instead."
        )

    def batch_transform(self) -> BatchTransform | None:
        if self.options.smoothing == 0:
            return None
        return SmoothTargets(float(self.options.smoothing), self.context.num_classes)
