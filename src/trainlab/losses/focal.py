"""Focal loss (Lin et al., 2017): cross-entropy scaled by ``(1 - p_true) ** gamma``, so the
many easy, well-classified examples count less than the hard ones."""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F


class FocalLoss(nn.Module):
    """Binary (one logit, float targets in [0, 1]) or multi-class (one logit per class, class
    indices or probability rows as targets).

    ``class_weights`` holds one weight per class (binary: ``[1 - alpha, alpha]``). The mean is
    over examples, as in RetinaNet; so with weights it differs from ``CrossEntropyLoss``, which
    divides by the sum of the weights. With ``gamma=0`` and no weights it *is* cross-entropy
    (binary: BCE with logits).
    """

    def __init__(
        self, gamma: float, binary: bool, class_weights: torch.Tensor | None = None
    ) -> None:
        super().__init__()
        self.gamma = gamma
        self.binary = binary
        self.class_weights: torch.Tensor | None
        self.register_buffer("class_weights", class_weights)

    def forward(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        if self.binary:
            return self._binary(logits, targets)
        return self._multiclass(logits, targets)

    def _binary(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        targets = targets.to(logits.dtype)
        cross_entropy = F.binary_cross_entropy_with_logits(logits, targets, reduction="none")
        probability = logits.sigmoid()
        p_true = probability * targets + (1 - probability) * (1 - targets)
        terms = cross_entropy * (1 - p_true).pow(self.gamma)
        if self.class_weights is not None:
            negative, positive = self.class_weights[0], self.class_weights[1]
            terms = terms * (positive * targets + negative * (1 - targets))
        return terms.mean()

    def _multiclass(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        log_probabilities = logits.log_softmax(-1)
        if targets.dtype in (torch.int64, torch.int32):  # class indices -> one-hot rows
            targets = F.one_hot(targets, logits.shape[-1]).to(logits.dtype)
        # 0 ** 0 is 1 in torch, so gamma=0 leaves plain cross-entropy even where p = 1.
        focus = (1 - log_probabilities.exp()).pow(self.gamma)
        terms = -targets * focus * log_probabilities
        if self.class_weights is not None:
            terms = terms * self.class_weights
        return terms.sum(-1).mean()
