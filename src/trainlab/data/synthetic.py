"""Generated datasets. Each is a function of its own config alone, ``random_state`` included,
so the data stays fixed while trainlab's ``seed`` varies the split and the initialisation.

Each also scores how hard every example is (``Arrays.difficulty``, for ``curriculum=score``;
higher is harder), from what the generator knows and a model does not: for classification,
how far the point lies on the wrong side of the true boundary (distance to its own class's
clean curve or centre minus the distance to the nearest other one); for regression, the size
of the noise added to the target."""

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


def _with_difficulty(arrays: Arrays, difficulty: np.ndarray) -> Arrays:
    arrays.difficulty = np.asarray(difficulty, dtype=np.float64)
    return arrays


def _curve_margin(
    features: np.ndarray, targets: np.ndarray, curves: list[np.ndarray]
) -> np.ndarray:
    """Distance of each point to its own class's curve (dense points) minus the distance to
    the nearest other class's curve: negative on the right side, positive past the boundary."""
    distances = np.stack(
        [np.min(np.linalg.norm(features[:, None, :] - c[None], axis=2), axis=1) for c in curves],
        axis=1,
    )
    own = distances[np.arange(len(targets)), targets]
    distances[np.arange(len(targets)), targets] = np.inf
    return np.asarray(own - distances.min(axis=1))


def _xor(cfg: Any) -> Arrays:
    rng = np.random.default_rng(cfg.random_state)
    corners = np.array([[-1.0, -1.0], [1.0, 1.0], [-1.0, 1.0], [1.0, -1.0]])
    corner = rng.permutation(np.arange(cfg.n_samples) % 4)  # balanced: every corner is used
    features = corners[corner] * 0.5 + rng.normal(scale=cfg.noise, size=(cfg.n_samples, 2))
    targets = (corner >= 2).astype(np.int64)
    # The true boundary is the two axes: the margin is the distance to the nearer axis,
    # negative for a point the noise pushed into the other class's quadrant.
    right_side = (features[:, 0] * features[:, 1] < 0) == (targets == 1)
    margin = np.abs(features).min(axis=1) * np.where(right_side, 1.0, -1.0)
    return _with_difficulty(classification(features, targets, 2), -margin)


def _moons(cfg: Any) -> Arrays:
    from sklearn.datasets import make_moons

    features, targets = make_moons(
        n_samples=cfg.n_samples, noise=cfg.noise, random_state=cfg.random_state
    )
    angle = np.linspace(0.0, math.pi, 400)
    outer = np.column_stack([np.cos(angle), np.sin(angle)])
    inner = np.column_stack([1.0 - np.cos(angle), 0.5 - np.sin(angle)])
    difficulty = _curve_margin(features, targets, [outer, inner])
    return _with_difficulty(classification(features, targets, 2), difficulty)


def _circles(cfg: Any) -> Arrays:
    from sklearn.datasets import make_circles

    features, targets = make_circles(
        n_samples=cfg.n_samples,
        noise=cfg.noise,
        factor=cfg.factor,
        random_state=cfg.random_state,
    )
    # Outer circle (class 0) of radius 1, inner (class 1) of radius factor: the boundary is
    # the circle half-way between.
    radius = np.linalg.norm(features, axis=1)
    boundary = (1.0 + cfg.factor) / 2
    margin = np.where(targets == 0, radius - boundary, boundary - radius)
    return _with_difficulty(classification(features, targets, 2), -margin)


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
    points, labels = np.concatenate(features), np.concatenate(targets)
    dense = np.linspace(0.05, 1.0, 400)
    arms = [
        np.column_stack([dense * np.sin(a), dense * np.cos(a)])
        for a in (
            2 * math.pi * label / cfg.num_classes + 2 * math.pi * cfg.turns * dense
            for label in range(cfg.num_classes)
        )
    ]
    difficulty = _curve_margin(points, labels, arms)
    return _with_difficulty(classification(points, labels, cfg.num_classes), difficulty)


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

    features, targets, centers = make_blobs(
        n_samples=blob_counts(cfg.n_samples, cfg.num_classes, cfg.ratio),
        n_features=cfg.n_features,
        cluster_std=cfg.cluster_std,
        center_box=(-5.0, 5.0),
        random_state=cfg.random_state,
        return_centers=True,
    )
    difficulty = _curve_margin(features, targets, [center[None] for center in centers])
    return _with_difficulty(classification(features, targets, cfg.num_classes), difficulty)


def _regression_outliers(cfg: Any) -> Arrays:
    rng = np.random.default_rng(cfg.random_state)
    features = rng.normal(size=(cfg.n_samples, cfg.n_features))
    weights = rng.normal(size=cfg.n_features)
    clean = features @ weights
    targets = clean + rng.normal(scale=cfg.noise, size=cfg.n_samples)
    outliers = rng.random(cfg.n_samples) < cfg.outlier_fraction
    # Gross errors of either sign, several target standard deviations away.
    spread = cfg.outlier_scale * max(float(targets.std()), 1e-6)
    targets[outliers] += rng.choice([-1.0, 1.0], size=int(outliers.sum())) * spread
    return _with_difficulty(regression(features, targets), np.abs(targets - clean))


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
    noise = np.sqrt(np.mean((observed - clean[:, :-1]) ** 2, axis=1))
    return _with_difficulty(regression(observed[:, :, None], clean[:, -1]), noise)


def _always(cfg: Any) -> bool:
    return True


SPECS = [
    DatasetSpec("xor", lambda cfg: DatasetInfo(CLASSIFICATION, 2, (2,)), _xor, _always),
    DatasetSpec("moons", lambda cfg: DatasetInfo(CLASSIFICATION, 2, (2,)), _moons, _always),
    DatasetSpec("circles", lambda cfg: DatasetInfo(CLASSIFICATION, 2, (2,)), _circles, _always),
    DatasetSpec("spirals", _describe_spirals, _spirals, _always),
    DatasetSpec("blobs_imbalanced", _describe_blobs, _blobs_imbalanced, _always),
    DatasetSpec(
        "regression_outliers",
        lambda cfg: DatasetInfo(REGRESSION, 0, (cfg.n_features,)),
        _regression_outliers,
        _always,
    ),
    DatasetSpec("sine_sequences", _describe_sine, _sine_sequences, _always),
]
