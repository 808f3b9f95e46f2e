"""Train / validation / test splits, k-fold cross-validation, training subsets, and
imputation and normalisation fitted on the training split only.

The order of operations is what keeps the evaluation honest:

1. the test rows are held out first (``test_fraction``), the same for every fold;
2. the rest is split into training and validation: by ``val_fraction``, or by fold
   ``fold`` of ``folds`` (stratified for classification, shuffled with a fixed seed);
3. ``train_subset`` keeps a share of the training rows (nested: a smaller share is a subset
   of a larger one, so a learning curve compares like with like);
4. missing values are filled and features normalised with statistics of those training rows
   alone, then the same transform is applied to validation and test rows.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from trainlab.data.base import CLASSIFICATION, Arrays, DatasetError, DatasetInfo, with_defaults


@dataclass
class Split:
    """Training, validation and test arrays, normalised, plus what was used to normalise.

    ``*_index`` are the rows of the loaded dataset in each part (to trace a prediction back).
    The test part is empty when ``dataset.test_fraction=0``.
    """

    train_features: np.ndarray
    train_targets: np.ndarray
    val_features: np.ndarray
    val_targets: np.ndarray
    test_features: np.ndarray
    test_targets: np.ndarray
    info: DatasetInfo
    shift: np.ndarray  # subtracted from every feature
    scale: np.ndarray  # then divided by
    train_index: np.ndarray
    val_index: np.ndarray
    test_index: np.ndarray
    target_shift: float = 0.0  # regression targets: (y - target_shift) / target_scale
    target_scale: float = 1.0
    train_difficulty: np.ndarray | None = None  # the dataset's difficulty of each training row


def split_and_normalize(arrays: Arrays, cfg: Any, seed: int) -> Split:
    """Split ``arrays`` as ``cfg`` (the dataset config) says, then impute and normalise with
    training statistics. ``seed`` is trainlab's seed, used unless ``cfg.split_seed`` is set."""
    cfg = with_defaults(cfg)
    split_seed = seed if cfg.split_seed is None else int(cfg.split_seed)
    labels = arrays.targets if cfg.stratify and arrays.info.task == CLASSIFICATION else None
    rows = np.arange(len(arrays.targets))

    rest, test_index = _hold_out(rows, labels, cfg.test_fraction, split_seed, "test_fraction")
    if cfg.folds >= 2:
        train_index, val_index = fold_indices(
            rest, None if labels is None else labels[rest], cfg.folds, cfg.fold, split_seed
        )
    else:
        # val_fraction is a share of all rows, so adding a test split leaves validation as is.
        val_count = max(1, round(cfg.val_fraction * len(rows)))
        train_index, val_index = _hold_out(
            rest, None if labels is None else labels[rest], val_count, split_seed, "val_fraction"
        )
    train_index = subset_indices(
        train_index, None if labels is None else labels[train_index], cfg.train_subset, split_seed
    )

    features = arrays.features
    train_x, val_x, test_x = features[train_index], features[val_index], features[test_index]
    if np.isnan(train_x).any() or np.isnan(val_x).any() or np.isnan(test_x).any():
        fill = fit_imputer(train_x, arrays.missing)
        train_x, val_x, test_x = (np.where(np.isnan(x), fill, x) for x in (train_x, val_x, test_x))
    shift, scale = fit_normalizer(train_x, cfg.normalize)

    targets = arrays.targets
    target_shift, target_scale = 0.0, 1.0
    if cfg.normalize_target and arrays.info.task != CLASSIFICATION:
        target_shift = float(targets[train_index].mean())
        target_scale = float(targets[train_index].std()) or 1.0

    def features_of(x: np.ndarray) -> np.ndarray:
        return ((x - shift) / scale).astype(np.float32)

    def targets_of(index: np.ndarray) -> np.ndarray:
        if arrays.info.task == CLASSIFICATION:
            return targets[index]
        return ((targets[index] - target_shift) / target_scale).astype(np.float32)

    return Split(
        train_features=features_of(train_x),
        train_targets=targets_of(train_index),
        val_features=features_of(val_x),
        val_targets=targets_of(val_index),
        test_features=features_of(test_x),
        test_targets=targets_of(test_index),
        info=arrays.info,
        shift=shift,
        scale=scale,
        train_index=train_index,
        val_index=val_index,
        test_index=test_index,
        target_shift=target_shift,
        target_scale=target_scale,
        train_difficulty=None if arrays.difficulty is None else arrays.difficulty[train_index],
    )


def _hold_out(
    rows: np.ndarray, labels: np.ndarray | None, size: float | int, seed: int, key: str
) -> tuple[np.ndarray, np.ndarray]:
    """``rows`` split into (kept, held out); ``size`` is a fraction or a count."""
    if size == 0:
        return rows, rows[:0]
    from sklearn.model_selection import train_test_split

    try:
        kept, held = train_test_split(rows, test_size=size, random_state=seed, stratify=labels)
    except ValueError as error:  # e.g. a class with a single member cannot be stratified
        raise DatasetError(
            f"dataset.{key}",
            f"cannot split the {len(rows)} rows: {error}; set dataset.stratify=false or change "
            f"dataset.{key}",
        ) from None
    return np.sort(kept), np.sort(held)


def fold_indices(
    rows: np.ndarray, labels: np.ndarray | None, folds: int, fold: int, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """(training rows, validation rows) of fold ``fold`` of ``folds``: stratified when
    ``labels`` are given; shuffled with ``seed``, so every job of a cross-validation sweep
    sees the same partition."""
    from sklearn.model_selection import KFold, StratifiedKFold

    if not 0 <= fold < folds:
        raise DatasetError(
            "dataset.fold", f"fold {fold} does not exist; use 0 .. {folds - 1} (dataset.folds)"
        )
    if folds > len(rows):
        raise DatasetError(
            "dataset.folds",
            f"{folds} folds need at least {folds} rows but there are {len(rows)}; use fewer folds",
        )
    if labels is not None:
        present = np.bincount(labels)
        smallest = int(present[present > 0].min())
        if smallest < folds:
            raise DatasetError(
                "dataset.folds",
                f"the smallest class has {smallest} row(s), fewer than the {folds} folds, so "
                "some folds would miss it; use fewer folds or dataset.stratify=false",
            )
        splitter: Any = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    else:
        splitter = KFold(n_splits=folds, shuffle=True, random_state=seed)
    train, val = list(splitter.split(rows, labels))[fold]
    return rows[train], rows[val]


def subset_indices(
    rows: np.ndarray, labels: np.ndarray | None, share: float, seed: int
) -> np.ndarray:
    """A share of ``rows``, at least one per class, stratified when ``labels`` are given.

    Nested: for the same seed, the rows kept at a smaller share are among those kept at a
    larger one (each class is shuffled once and cut at the share).
    """
    if share >= 1.0:
        return rows
    rng = np.random.default_rng(seed)
    groups = [rows] if labels is None else [rows[labels == c] for c in np.unique(labels)]
    kept = [rng.permutation(group)[: max(1, round(share * len(group)))] for group in groups]
    return np.sort(np.concatenate(kept))


def fit_imputer(train_features: np.ndarray, method: str) -> np.ndarray:
    """Per-feature fill values for NaN cells, from the training rows only."""
    if method == "reject":
        raise DatasetError(
            "dataset.missing",
            "the data has missing values and dataset.missing=reject; set dataset.missing="
            "impute_mean, impute_median or impute_most_frequent, or fill them in",
        )
    observed = np.ma.masked_invalid(train_features)
    if method == "impute_mean":
        fill = observed.mean(axis=0)
    elif method == "impute_median":
        fill = np.ma.median(observed, axis=0)
    elif method == "impute_most_frequent":
        fill = np.ma.masked_all(train_features.shape[1:])
        for position in np.ndindex(*train_features.shape[1:]):
            column = train_features[(slice(None), *position)]
            column = column[~np.isnan(column)]
            if len(column):
                values, counts = np.unique(column, return_counts=True)
                fill[position] = values[np.argmax(counts)]  # ties: the smallest value
    else:
        raise DatasetError("dataset.missing", f"unknown missing-value policy {method!r}")
    # A feature with no value in any training row is filled with 0.
    return np.ma.filled(np.ma.asarray(fill, dtype=np.float64), 0.0).astype(np.float32)


def fit_normalizer(train_features: np.ndarray, method: str) -> tuple[np.ndarray, np.ndarray]:
    """Per-feature shift and scale (over the first axis, for examples of any shape); constant
    features get scale 1 instead of a division by 0.

    ``robust`` uses the median and the interquartile range, so a few outliers do not decide
    the scale of everything else.
    """
    shape = train_features.shape[1:]
    if method == "none":
        return np.zeros(shape, np.float32), np.ones(shape, np.float32)
    values = train_features.astype(np.float64)
    if method == "zscore":
        shift, scale = values.mean(axis=0), values.std(axis=0)
    elif method == "minmax":
        shift = values.min(axis=0)
        scale = values.max(axis=0) - shift
    elif method == "robust":
        low, shift, high = np.percentile(values, [25, 50, 75], axis=0)
        scale = high - low
    else:
        raise DatasetError("dataset.normalize", f"unknown normalisation {method!r}")
    scale = np.where(scale > 1e-12, scale, 1.0)
    return shift.astype(np.float32), scale.astype(np.float32)
