"""Mixup (Zhang et al., 2018): train on convex combinations of pairs of examples,
``lam * x_i + (1 - lam) * x_j``, with the same mixture of their targets, ``lam ~ Beta(alpha,
alpha)`` (one draw per batch, the pairs by a random permutation).

Targets become *soft*: class indices turn into probability rows ``(N, C)`` (which
``CrossEntropyLoss`` and the focal loss accept); binary and regression targets, already
floats, are mixed as they are. The validation split is never mixed.
"""

from __future__ import annotations

import torch

from trainlab.regularizers.base import BatchTransform, Regularizer, soft_targets


class MixBatch:
    def __init__(self, alpha: float, num_classes: int) -> None:
        self.alpha = alpha
        self.num_classes = num_classes
        self._beta: torch.distributions.Beta | None = None

    def mixing_weight(self, device: torch.device) -> torch.Tensor:
        """One draw of ``lam`` as a 0-d tensor on ``device`` (no host sync)."""
        if self._beta is None or self._beta.concentration0.device != device:
            concentration = torch.tensor(self.alpha, device=device)
            self._beta = torch.distributions.Beta(concentration, concentration, validate_args=False)
        return self._beta.sample()

    def __call__(
        self, features: torch.Tensor, targets: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        lam = self.mixing_weight(features.device)
        partner = torch.randperm(features.shape[0], device=features.device)
        targets = soft_targets(targets, self.num_classes)
        mixed_features = lam * features + (1 - lam) * features[partner]
        mixed_targets = lam * targets + (1 - lam) * targets[partner]
        return mixed_features.to(features.dtype), mixed_targets.to(targets.dtype)


class Mixup(Regularizer):
    name = "mixup"

    def batch_transform(self) -> BatchTransform | None:
        return MixBatch(float(self.options.alpha), self.context.num_classes)
