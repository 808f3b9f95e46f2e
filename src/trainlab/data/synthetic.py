"""Generated datasets. Each is a function of its own config alone, ``random_state`` included,
so the data stays fixed while trainlab's ``seed`` varies the split and the initialisation."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from trainlab.data.base import (
    CLASSIFICATION,
    REGRESSION,
    Arrays,
    DatasetError,
    DatasetInfo,
    DatasetSpec,
    classification,
    regression,
)


def _even_counts(total: int, parts: int) -> list[int]:
    """``total`` split into ``parts`` counts that differ by at most one."""
    return [total // parts + (1 if index < total % parts else 0) for index in range(parts)]


def _xor(cfg: Any) -> Arrays:
    rng = np.random.default_rng(cfg.random_state)
    corners = np.array([[-1.0, -1.0], [1.0, 1.0], [-1.0, 1.0], [1.0, -1.0]])
    corner = rng.permutation(np.arange(cfg.n_samples) % 4)  # balanced: every corner is used
    features = corners[corner] * 0.5 + rng.normal(scale=cfg.noise, size=(cfg.n_samples, 2))
    return classification(features, (corner >= 2).astype(np.int64), 2)


def _moons(cfg: Any) -> Arrays:
    from sklearn.datasets import make_moons

    features, targets = make_moons(
        n_samples=cfg.n_samples, noise=cfg.noise, random_state=cfg.random_state
    )
    return classification(features, targets, 2)


def _circles(cfg: Any) -> Arrays:
    from sklearn.datasets import make_circles

    features, targets = make_circles(
        n_samples=cfg.n_samples,
        noise=cfg.noise,
        factor=cfg.factor,
        random_state=cfg.random_state,
    )
    return classification(features, targets, 2)


def _describe_spirals(cfg: Any) -> DatasetInfo:
    if cfg.n_samples < 2 * cfg.num_classes:
        raise DatasetError(
            "dataset.num_classes",
            f"{cfg.num_classes} arms from n_samples={cfg.n_samples} leave fewer than 2 points "
            "per arm, too few for training and validation; raise dataset.n_samples to at least "
            f"{2 * cfg.num_classes} or lower dataset.num_classes",
        )
    return DatasetInfo(CLASSIFICATION, cfg.num_classes, (2,))


def _spirals(cfg: Any) -> Arrays:
    rng = np.random.default_rng(cfg.random_state)
    features, targets = [], []
    for label, count in enumerate(_even_counts(cfg.n_samples, cfg.num_classes)):
        radius = np.linspace(0.05, 1.0, count)
        angle = (
            2 * math.pi * label / cfg.num_classes
            + 2 * math.pi * cfg.turns * radius
            + rng.normal(scale=cfg.noise, size=count)
        )
        features.append(np.column_stack([radius * np.sin(angle), radius * np.cos(angle)]))
        targets.append(np.full(count, label))
    return classification(np.concatenate(features), np.concatenate(targets), cfg.num_classes)


def blob_counts(n_samples: int, num_classes: int, ratio: float) -> list[int]:
    """Class sizes falling geometrically so that largest / smallest is about ``ratio``."""
    weights = np.asarray(ratio, float) ** (-np.arange(num_classes) / max(num_classes - 1, 1))
    counts = np.floor(n_samples * weights / weights.sum()).astype(int)
    counts[0] += n_samples - counts.sum()  # the rounding remainder goes to the largest class
    return [int(count) for count in counts]


def _describe_blobs(cfg: Any) -> DatasetInfo:
    smallest = min(blob_counts(cfg.n_samples, cfg.num_classes, cfg.ratio))
    if smallest < 2:
        raise DatasetError(
            "dataset.ratio",
            f"with n_samples={cfg.n_samples}, num_classes={cfg.num_classes} and "
            f"ratio={cfg.ratio:g} the smallest class gets {smallest} sample(s); a class needs "
            "at least 2 to appear in training and validation: raise dataset.n_samples or "
            "lower dataset.ratio",
        )
    return DatasetInfo(CLASSIFICATION, cfg.num_classes, (cfg.n_features,))


def _blobs_imbalanced(cfg: Any) -> Arrays:
    from sklearn.datasets import make_blobs

    features, targets = make_blobs(
        n_samples=blob_counts(cfg.n_samples, cfg.num_classes, cfg.ratio),
        n_features=cfg.n_features,
        cluster_std=cfg.cluster_std,
        center_box=(-5.0, 5.0),
        random_state=cfg.random_state,
    )
    return classification(features, targets, cfg.num_classes)


def _regression_outliers(cfg: Any) -> Arrays:
    rng = np.random.default_rng(cfg.random_state)
    features = rng.normal(size=(cfg.n_samples, cfg.n_features))
    weights = rng.normal(size=cfg.n_features)
    targets = features @ weights + rng.normal(scale=cfg.noise, size=cfg.n_samples)
    outliers = rng.random(cfg.n_samples) < cfg.outlier_fraction
    # Gross errors of either sign, several target standard deviations away.
    spread = cfg.outlier_scale * max(float(targets.std()), 1e-6)
    targets[outliers] += rng.choice([-1.0, 1.0], size=int(outliers.sum())) * spread
    return regression(features, targets)


def _describe_sine(cfg: Any) -> DatasetInfo:
    if cfg.min_period > cfg.max_period:
        raise DatasetError(
            "dataset.min_period",
            f"min_period={cfg.min_period:g} is larger than max_period={cfg.max_period:g}; "
            "swap them or make them equal",
        )
    return DatasetInfo(REGRESSION, 0, (cfg.sequence_length, 1))


def _sine_sequences(cfg: Any) -> Arrays:
    _describe_sine(cfg)
    rng = np.random.default_rng(cfg.random_state)
    period = rng.uniform(cfg.min_period, cfg.max_period, size=(cfg.n_samples, 1))
    phase = rng.uniform(0.0, 2 * math.pi, size=(cfg.n_samples, 1))
    steps = np.arange(cfg.sequence_length + 1)
    clean = np.sin(2 * math.pi * steps / period + phase)
    observed = clean[:, :-1] + rng.normal(
        scale=cfg.noise, size=(cfg.n_samples, cfg.sequence_length)
    )
    # The target is the clean next value: the noise is not predictable, the wave is.
    return regression(observed[:, :, None], clean[:, -1])


SPECS = [
    DatasetSpec("xor", lambda cfg: DatasetInfo(CLASSIFICATION, 2, (2,)), _xor),
    DatasetSpec("moons", lambda cfg: DatasetInfo(CLASSIFICATION, 2, (2,)), _moons),
    DatasetSpec("circles", lambda cfg: DatasetInfo(CLASSIFICATION, 2, (2,)), _circles),
    DatasetSpec("spirals", _describe_spirals, _spirals),
    DatasetSpec("blobs_imbalanced", _describe_blobs, _blobs_imbalanced),
    DatasetSpec(
        "regression_outliers",
        lambda cfg: DatasetInfo(REGRESSION, 0, (cfg.n_features,)),
        _regression_outliers,
    ),
    DatasetSpec("sine_sequences", _describe_sine, _sine_sequences),
]
