"""Train/validation split and normalisation fitted on the training split only."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from trainlab.data.datasets import CLASSIFICATION, Arrays, DatasetError, DatasetInfo


@dataclass
class Split:
    """Training and validation arrays, normalised, plus the statistics used to normalise."""

    train_features: np.ndarray
    train_targets: np.ndarray
    val_features: np.ndarray
    val_targets: np.ndarray
    info: DatasetInfo
    shift: np.ndarray  # subtracted from every feature
    scale: np.ndarray  # then divided by


def split_and_normalize(arrays: Arrays, cfg: Any, seed: int) -> Split:
    """Hold out ``cfg.val_fraction`` (stratified for classification), then normalise.

    The normalisation statistics come from the training rows alone, so nothing about the
    validation rows leaks into training.
    """
    from sklearn.model_selection import train_test_split

    stratify = arrays.targets if cfg.stratify and arrays.info.task == CLASSIFICATION else None
    indices = np.arange(len(arrays.targets))
    try:
        train_idx, val_idx = train_test_split(
            indices, test_size=cfg.val_fraction, random_state=seed, stratify=stratify
        )
    except ValueError as error:  # e.g. a class with a single member cannot be stratified
        raise DatasetError(
            "dataset.val_fraction",
            f"cannot split the data: {error}; set dataset.stratify=false or change the fraction",
        ) from None
    train_x, val_x = arrays.features[train_idx], arrays.features[val_idx]
    shift, scale = fit_normalizer(train_x, cfg.normalize)
    return Split(
        train_features=((train_x - shift) / scale).astype(np.float32),
        train_targets=arrays.targets[train_idx],
        val_features=((val_x - shift) / scale).astype(np.float32),
        val_targets=arrays.targets[val_idx],
        info=arrays.info,
        shift=shift,
        scale=scale,
    )


def fit_normalizer(train_features: np.ndarray, method: str) -> tuple[np.ndarray, np.ndarray]:
    """Per-feature shift and scale (over the first axis, for examples of any shape); constant
    features get scale 1 instead of a division by 0."""
    shape = train_features.shape[1:]
    if method == "none":
        return np.zeros(shape, np.float32), np.ones(shape, np.float32)
    if method == "zscore":
        shift, scale = train_features.mean(axis=0), train_features.std(axis=0)
    elif method == "minmax":
        shift = train_features.min(axis=0)
        scale = train_features.max(axis=0) - shift
    else:
        raise DatasetError("dataset.normalize", f"unknown normalisation {method!r}")
    scale = np.where(scale > 1e-12, scale, 1.0)
    return shift.astype(np.float32), scale.astype(np.float32)
