"""What the training doctor needs to know about the data, measured once at setup.

The inputs' scale as the model sees them (after ``dataset.normalize``), the class balance of
the training labels, and the loss of the best *constant* prediction (the class priors, or the
mean target): the reference that says whether a loss of 0.6 is good (it is not when predicting
the priors already scores 0.69). Logged as the run's ``data.*`` params; a few numpy passes
over arrays already in memory, nothing in the training loop.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

# A feature whose spread is below this is constant (a blank pixel), not "small-scaled".
CONSTANT_FEATURE_STD = 1e-8


@dataclass
class DataProfile:
    """Scale, balance and baseline figures of the training split (and the validation one)."""

    train_rows: int
    features: int
    constant_features: int
    feature_rms_max: float  # the largest root-mean-square value of one feature
    feature_rms_median: float
    feature_std_ratio: float  # largest / smallest spread of the non-constant features
    feature_offset_max: float  # largest |mean| / std: how far a feature sits from 0
    class_counts: list[int] = field(default_factory=list)  # classification only
    majority_fraction: float = math.nan  # the largest class's share of the training rows
    val_majority_accuracy: float = math.nan  # accuracy of always predicting that class
    target_mean: float = math.nan  # regression only, as the model sees the target
    target_std: float = math.nan
    baseline_loss: float = math.nan  # the loss of the best constant prediction, training rows
    val_baseline_loss: float = math.nan  # the same prediction on the validation rows

    def as_params(self) -> dict[str, Any]:
        """The ``data.*`` params of a run (numbers rounded to 6 significant digits)."""
        params: dict[str, Any] = {}
        for name, value in self.__dict__.items():
            if isinstance(value, list):
                if value:
                    params[f"data.{name}"] = json.dumps(value)
            elif isinstance(value, float):
                if math.isfinite(value):
                    params[f"data.{name}"] = float(f"{value:.6g}")
            else:
                params[f"data.{name}"] = value
        return params


def feature_scale(features: np.ndarray) -> dict[str, Any]:
    """Per-feature scale figures of ``features`` (rows first, any example shape)."""
    flat = features.reshape(len(features), -1).astype(np.float64)
    if len(flat) == 0 or flat.shape[1] == 0:
        return {
            "features": int(flat.shape[1]),
            "constant_features": 0,
            "feature_rms_max": 0.0,
            "feature_rms_median": 0.0,
            "feature_std_ratio": 1.0,
            "feature_offset_max": 0.0,
        }
    mean = flat.mean(axis=0)
    std = flat.std(axis=0)
    rms = np.sqrt(mean**2 + std**2)
    varying = std > CONSTANT_FEATURE_STD
    spread = std[varying]
    return {
        "features": int(flat.shape[1]),
        "constant_features": int((~varying).sum()),
        "feature_rms_max": float(rms.max()),
        "feature_rms_median": float(np.median(rms)),
        "feature_std_ratio": float(spread.max() / spread.min()) if spread.size else 1.0,
        "feature_offset_max": float((np.abs(mean[varying]) / spread).max()) if spread.size else 0.0,
    }


def profile_split(split: Any, loss: Any) -> DataProfile:
    """The profile of a :class:`~trainlab.data.split.Split` for the run's loss."""
    info = split.info
    profile = DataProfile(
        train_rows=len(split.train_targets), **feature_scale(split.train_features)
    )
    if info.task == "classification":
        counts = np.bincount(split.train_targets.astype(np.int64), minlength=info.num_classes)
        profile.class_counts = [int(c) for c in counts]
        majority = int(counts.argmax())
        profile.majority_fraction = float(counts.max() / max(1, counts.sum()))
        if len(split.val_targets):
            profile.val_majority_accuracy = float((split.val_targets == majority).mean())
    else:
        profile.target_mean = float(np.mean(split.train_targets))
        profile.target_std = float(np.std(split.train_targets))
    profile.baseline_loss, profile.val_baseline_loss = baseline_losses(split, loss)
    return profile


def baseline_losses(split: Any, loss: Any) -> tuple[float, float]:
    """The run's loss of the best constant prediction on the training and validation rows:
    the class priors (as logits) for classification, the mean or median target (the lower
    loss) for regression. NaN if it cannot be computed for this loss."""
    import torch

    train = np.asarray(split.train_targets)
    candidates: list[np.ndarray] = []
    if split.info.task == "classification":
        counts = np.bincount(train.astype(np.int64), minlength=split.info.num_classes)
        prior = np.clip(counts / max(1, counts.sum()), 1e-6, 1.0)
        if loss.num_outputs == 1:  # one logit: log-odds of class 1
            candidates.append(np.array([math.log(prior[1] / prior[0])]))
        else:
            candidates.append(np.log(prior))
    else:
        candidates += [np.array([np.mean(train)]), np.array([np.median(train)])]

    def loss_of(constant: np.ndarray, targets: np.ndarray) -> float:
        if len(targets) == 0:
            return math.nan
        device = next(iter(loss.module.buffers()), torch.zeros(())).device
        outputs = torch.as_tensor(constant, dtype=torch.float32, device=device)
        outputs = outputs.expand(len(targets), len(constant))
        typed = torch.as_tensor(targets, dtype=loss.target_dtype, device=device)
        with torch.no_grad():
            return float(loss(outputs, typed))

    try:
        pairs = [(loss_of(c, train), loss_of(c, np.asarray(split.val_targets))) for c in candidates]
    except (RuntimeError, ValueError):  # a loss that does not take these shapes
        return math.nan, math.nan
    return min(pairs, key=lambda pair: pair[0])
