"""Per-class weights for the classification losses: none, given, or balanced from the data."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

BALANCED = "balanced"


def balanced_class_weights(train_targets: np.ndarray, num_classes: int) -> torch.Tensor:
    """``n / (num_classes * count_c)`` for each class, as scikit-learn's ``"balanced"``: every
    class then carries the same total weight. A class absent from the training split counts
    as one example (its weight cannot matter to hard targets, and must stay finite)."""
    labels = np.asarray(train_targets, dtype=np.int64).reshape(-1)
    counts = np.bincount(labels, minlength=num_classes)[:num_classes].astype(np.float64)
    weights = len(labels) / (num_classes * np.maximum(counts, 1.0))
    return torch.as_tensor(weights, dtype=torch.float32)


def class_weights(
    value: Any, num_classes: int, train_targets: np.ndarray | None
) -> torch.Tensor | None:
    """The weight tensor (one per class) for a configured ``value``: None, "balanced" or a list.

    "balanced" needs the training targets: weights come from the training split only, like
    the normalisation statistics."""
    if value is None:
        return None
    if isinstance(value, str):
        if value != BALANCED:
            raise ValueError(f"class weights {value!r}: use null, {BALANCED!r} or a list")
        if train_targets is None:
            raise ValueError("balanced class weights need the training targets")
        return balanced_class_weights(train_targets, num_classes)
    weights = [float(w) for w in value] if isinstance(value, Sequence) else list(value)
    if len(weights) != num_classes:
        raise ValueError(f"{len(weights)} class weights for {num_classes} classes")
    return torch.tensor(weights, dtype=torch.float32)
