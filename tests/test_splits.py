"""Splits: normalisation and imputation fitted on the training rows alone, held-out test rows,
k-fold cross-validation, stratification, training subsets and the split seed.

Properties are checked against references computed here with plain numpy, and by changing
rows that must not matter and showing that nothing that depends on training changes.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
from omegaconf import DictConfig

from trainlab.data.datasets import (
    CLASSIFICATION,
    REGRESSION,
    Arrays,
    DatasetError,
    DatasetInfo,
    list_datasets,
    load,
)
from trainlab.data.split import Split, split_and_normalize

SIZE = 240


def dataset(task: str = CLASSIFICATION, classes: tuple[int, ...] = (120, 80, 40)) -> Arrays:
    """Rows whose columns differ strongly in scale and location, so statistics over
    different rows differ; classes of unequal size, so stratification shows."""
    rng = np.random.default_rng(0)
    features = rng.normal(size=(SIZE, 3)) * [1.0, 10.0, 0.1] + [0.0, 50.0, -3.0]
    features[:, 2] += np.linspace(0, 30, SIZE)  # a trend: a biased split would move the mean
    if task == CLASSIFICATION:
        targets = np.repeat(np.arange(len(classes)), classes).astype(np.int64)
        info = DatasetInfo(CLASSIFICATION, len(classes), (3,))
    else:
        targets = (features @ [1.0, 0.1, 0.5] + rng.normal(size=SIZE)).astype(np.float32)
        info = DatasetInfo(REGRESSION, 0, (3,))
    return Arrays(features.astype(np.float32), targets, info)


def options(**values: Any) -> SimpleNamespace:
    """A dataset config: the given values, every other key from the schema's defaults."""
    return SimpleNamespace(**values)


def raw(split: Split, part: str) -> np.ndarray:
    """The features of a part before normalisation (undoing it)."""
    return getattr(split, f"{part}_features") * split.scale + split.shift


# --- normalisation and imputation see the training rows only --------------------------------


def reference_statistics(train: np.ndarray, method: str) -> tuple[np.ndarray, np.ndarray]:
    if method == "zscore":
        return train.mean(axis=0), train.std(axis=0)
    if method == "minmax":
        return train.min(axis=0), train.max(axis=0) - train.min(axis=0)
    low, median, high = np.percentile(train, [25, 50, 75], axis=0)
    return median, high - low


@pytest.mark.parametrize("method", ["zscore", "minmax", "robust"])
@pytest.mark.parametrize("task", [CLASSIFICATION, REGRESSION])
def test_normalisation_statistics_come_from_the_training_rows_only(method: str, task: str) -> None:
    arrays = dataset(task)
    cfg = options(normalize=method, test_fraction=0.2)
    split = split_and_normalize(arrays, cfg, seed=0)
    train = arrays.features[split.train_index].astype(np.float64)
    shift, scale = reference_statistics(train, method)
    np.testing.assert_allclose(split.shift, shift, rtol=1e-5)
    np.testing.assert_allclose(split.scale, scale, rtol=1e-5)

    # Change every validation and test row beyond recognition and split again.
    changed = Arrays(arrays.features.copy(), arrays.targets, arrays.info)
    held_out = np.concatenate([split.val_index, split.test_index])
    changed.features[held_out] = changed.features[held_out] * 100.0 + 1e4
    again = split_and_normalize(changed, cfg, seed=0)

    np.testing.assert_array_equal(again.train_index, split.train_index)
    np.testing.assert_array_equal(again.shift, split.shift)
    np.testing.assert_array_equal(again.scale, split.scale)
    np.testing.assert_array_equal(again.train_features, split.train_features)
    # ... and the held-out rows are transformed with the training statistics, not their own.
    for part, index in (("val", again.val_index), ("test", again.test_index)):
        expected = (changed.features[index] - split.shift) / split.scale
        np.testing.assert_allclose(getattr(again, f"{part}_features"), expected, rtol=1e-5)
    assert np.abs(again.val_features).mean() > 100, "the changed rows really are far off"


@pytest.mark.parametrize("policy", ["impute_mean", "impute_median", "impute_most_frequent"])
def test_imputation_values_come_from_the_training_rows_only(policy: str) -> None:
    arrays = dataset()
    arrays.features[:, 1] = np.round(arrays.features[:, 1])  # repeated values for the mode
    arrays.features[::7, 1] = np.nan  # holes in training, validation and test rows
    arrays.missing = policy
    cfg = options(normalize="none", test_fraction=0.2)
    split = split_and_normalize(arrays, cfg, seed=0)

    train = arrays.features[split.train_index, 1]
    observed = train[~np.isnan(train)]
    if policy == "impute_mean":
        expected = observed.mean()
    elif policy == "impute_median":
        expected = np.median(observed)
    else:
        values, counts = np.unique(observed, return_counts=True)
        expected = values[np.argmax(counts)]
    for part in ("train", "val", "test"):
        index = getattr(split, f"{part}_index")
        holes = np.isnan(arrays.features[index, 1])
        assert holes.any(), f"the {part} part has holes to fill"
        np.testing.assert_allclose(getattr(split, f"{part}_features")[holes, 1], expected)

    # Other values in held-out rows do not change what is filled in.
    changed = Arrays(arrays.features.copy(), arrays.targets, arrays.info, policy)
    changed.features[split.val_index, 1] += 1000.0
    again = split_and_normalize(changed, cfg, seed=0)
    holes = np.isnan(arrays.features[split.val_index, 1])
    np.testing.assert_allclose(again.val_features[holes, 1], expected)


def test_missing_values_under_reject_fail_in_the_split_too() -> None:
    arrays = dataset()
    arrays.features[3, 0] = np.nan
    with pytest.raises(DatasetError) as raised:
        split_and_normalize(arrays, options(), seed=0)
    assert raised.value.key == "dataset.missing"


def test_regression_targets_are_standardised_with_training_statistics() -> None:
    arrays = dataset(REGRESSION)
    split = split_and_normalize(arrays, options(normalize_target=True), seed=0)
    train = arrays.targets[split.train_index].astype(np.float64)
    assert split.target_shift == pytest.approx(train.mean(), rel=1e-5)
    assert split.target_scale == pytest.approx(train.std(), rel=1e-5)
    np.testing.assert_allclose(split.train_targets.mean(), 0.0, atol=1e-5)
    expected = (arrays.targets[split.val_index] - split.target_shift) / split.target_scale
    np.testing.assert_allclose(split.val_targets, expected, rtol=1e-5)
    plain = split_and_normalize(arrays, options(), seed=0)
    np.testing.assert_array_equal(plain.val_targets, arrays.targets[plain.val_index])


# --- the parts: sizes, disjointness, the test rows ------------------------------------------


def parts(split: Split) -> tuple[set[int], set[int], set[int]]:
    return (
        set(split.train_index.tolist()),
        set(split.val_index.tolist()),
        set(split.test_index.tolist()),
    )


@pytest.mark.parametrize(("val", "test"), [(0.2, 0.0), (0.25, 0.1), (0.1, 0.5)])
def test_train_val_test_partition_the_rows(val: float, test: float) -> None:
    arrays = dataset()
    split = split_and_normalize(arrays, options(val_fraction=val, test_fraction=test), seed=3)
    train, validation, held = parts(split)
    assert train | validation | held == set(range(SIZE))
    assert not (train & validation or train & held or validation & held)
    assert len(validation) == round(val * SIZE)
    assert len(held) == round(test * SIZE)
    np.testing.assert_array_equal(split.test_targets, arrays.targets[split.test_index])
    assert split.test_features.shape == (len(held), 3)


def test_without_a_test_fraction_the_test_part_is_empty_but_shaped() -> None:
    split = split_and_normalize(dataset(), options(), seed=0)
    assert split.test_features.shape == (0, 3) and split.test_targets.shape == (0,)


def test_split_seed_fixes_the_split_while_the_seed_varies() -> None:
    arrays = dataset()
    by_seed = [split_and_normalize(arrays, options(), seed=s).val_index for s in (0, 1)]
    assert not np.array_equal(*by_seed), "by default the seed moves the split"
    fixed = [split_and_normalize(arrays, options(split_seed=7), seed=s).val_index for s in (0, 1)]
    np.testing.assert_array_equal(*fixed)


# --- k-fold cross-validation ----------------------------------------------------------------


@pytest.mark.parametrize("folds", [2, 5])
@pytest.mark.parametrize("task", [CLASSIFICATION, REGRESSION])
def test_every_row_validates_exactly_once_across_the_folds(folds: int, task: str) -> None:
    arrays = dataset(task)
    cfg = {"folds": folds, "test_fraction": 0.1}
    splits = [split_and_normalize(arrays, options(fold=k, **cfg), seed=4) for k in range(folds)]
    test_rows = set(splits[0].test_index.tolist())
    validated: list[int] = []
    for split in splits:
        train, validation, held = parts(split)
        assert held == test_rows, "the test rows are the same for every fold"
        assert not train & validation and not (train | validation) & held
        assert train | validation | held == set(range(SIZE))
        validated += sorted(validation)
    assert sorted(validated) == sorted(set(range(SIZE)) - test_rows)
    sizes = [len(split.val_index) for split in splits]
    assert max(sizes) - min(sizes) <= (
        len(np.unique(arrays.targets)) if task == CLASSIFICATION else 1
    )


def test_folds_are_the_same_partition_in_every_job() -> None:
    arrays = dataset()
    first = split_and_normalize(arrays, options(folds=4, fold=2), seed=0)
    second = split_and_normalize(arrays, options(folds=4, fold=2), seed=0)
    np.testing.assert_array_equal(first.val_index, second.val_index)


def test_folds_need_every_class_in_every_fold() -> None:
    arrays = dataset(classes=(200, 37, 3))
    with pytest.raises(DatasetError) as raised:
        split_and_normalize(arrays, options(folds=5), seed=0)
    assert raised.value.key == "dataset.folds"
    assert "smallest class has 3" in str(raised.value)
    split_and_normalize(arrays, options(folds=5, stratify=False), seed=0)


# --- stratification -------------------------------------------------------------------------


def class_shares(labels: np.ndarray, classes: int = 3) -> np.ndarray:
    return np.bincount(labels, minlength=classes) / len(labels)


@pytest.mark.parametrize(
    "extra", [{}, {"test_fraction": 0.25}, {"folds": 4, "fold": 1}, {"folds": 4, "fold": 3}]
)
def test_stratification_keeps_the_class_ratios(extra: dict[str, Any]) -> None:
    arrays = dataset(classes=(160, 60, 20))
    overall = class_shares(arrays.targets)
    split = split_and_normalize(arrays, options(**extra), seed=5)
    for part in ("train", "val", "test"):
        labels = getattr(split, f"{part}_targets")
        if len(labels):
            # Within one row per class of the exact share.
            tolerance = 1.0 / len(labels) + 1e-9
            np.testing.assert_allclose(class_shares(labels), overall, atol=tolerance)


def test_without_stratification_the_ratios_drift() -> None:
    arrays = dataset(classes=(160, 60, 20))
    overall = class_shares(arrays.targets)
    drifts = [
        np.abs(
            class_shares(split_and_normalize(arrays, options(stratify=False), seed=s).val_targets)
            - overall
        ).max()
        for s in range(10)
    ]
    assert max(drifts) > 1.0 / 48, "an unstratified split does not keep the ratios exactly"


# --- training subsets -----------------------------------------------------------------------


@pytest.mark.parametrize("share", [0.05, 0.25, 0.5])
def test_train_subset_keeps_a_stratified_share_of_the_training_rows(share: float) -> None:
    arrays = dataset(classes=(160, 60, 20))
    full = split_and_normalize(arrays, options(test_fraction=0.1), seed=2)
    part = split_and_normalize(arrays, options(test_fraction=0.1, train_subset=share), seed=2)
    assert set(part.train_index) < set(full.train_index)
    assert len(part.train_index) == pytest.approx(share * len(full.train_index), abs=3)
    # Validation and test rows do not change: only training shrinks.
    np.testing.assert_array_equal(part.val_index, full.val_index)
    np.testing.assert_array_equal(part.test_index, full.test_index)
    counts = np.bincount(part.train_targets, minlength=3)
    assert counts.min() >= 1, "every class keeps at least one row"
    expected = np.bincount(full.train_targets) * share
    np.testing.assert_allclose(counts, np.maximum(1, np.round(expected)), atol=1)
    # Statistics are those of the rows actually trained on.
    np.testing.assert_allclose(
        part.shift, arrays.features[part.train_index].mean(axis=0), rtol=1e-5
    )


def test_train_subsets_are_nested() -> None:
    arrays = dataset(REGRESSION)
    shares = [0.1, 0.3, 0.6, 1.0]
    rows = [
        set(split_and_normalize(arrays, options(train_subset=s), seed=0).train_index.tolist())
        for s in shares
    ]
    assert all(small <= large for small, large in itertools.pairwise(rows))
    assert [len(r) for r in rows] == [round(s * 192) for s in shares]


# --- every registered dataset splits ----------------------------------------------------------


@pytest.mark.parametrize("name", list_datasets())
def test_every_dataset_splits_into_folds_with_a_test_part(
    name: str, make_cfg: Callable[..., DictConfig], tmp_path: Path
) -> None:
    from test_datasets_catalog import dataset_overrides

    cfg = make_cfg(
        f"dataset={name}",
        *dataset_overrides(name, tmp_path),
        "dataset.folds=3",
        "dataset.fold=2",
        "dataset.test_fraction=0.1",
        "dataset.train_subset=0.5",
        "dataset.normalize=robust",
    ).dataset
    arrays = load(cfg)
    split = split_and_normalize(arrays, cfg, seed=0)
    total = len(split.train_index) + len(split.val_index) + len(split.test_index)
    assert total < len(arrays.targets), "half the training rows are left out"
    for part in ("train", "val", "test"):
        features = getattr(split, f"{part}_features")
        assert features.dtype == np.float32
        assert features.shape[1:] == arrays.info.input_shape
        assert np.isfinite(features).all()
        assert len(getattr(split, f"{part}_targets")) == len(features) > 0
