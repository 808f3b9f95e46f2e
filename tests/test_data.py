"""Data: the in-memory batcher, the split and the normalisation, checked against references
computed here (plain numpy), not against trainlab's own output."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from trainlab.data.batcher import InMemoryBatcher
from trainlab.data.datasets import (
    CLASSIFICATION,
    REGRESSION,
    Arrays,
    DatasetError,
    DatasetInfo,
    describe,
    load,
)
from trainlab.data.split import fit_normalizer, split_and_normalize


def _batcher(
    count: int = 103, batch_size: int = 10, seed: int = 7, shuffle: bool = True
) -> InMemoryBatcher:
    features = torch.arange(count, dtype=torch.float32).unsqueeze(1).repeat(1, 3)
    targets = torch.arange(count)
    return InMemoryBatcher(features, targets, batch_size=batch_size, shuffle=shuffle, seed=seed)


def _epoch_ids(batcher: InMemoryBatcher, epoch: int, start_batch: int = 0) -> list[int]:
    ids: list[int] = []
    for features, targets in batcher.epoch(epoch, start_batch):
        # Rows and targets stay paired: feature row i holds i in every column.
        assert torch.equal(features[:, 0].long(), targets)
        assert torch.equal(features, features[:, :1].repeat(1, features.shape[1]))
        ids += targets.tolist()
    return ids


@pytest.mark.parametrize(("count", "batch_size"), [(103, 10), (100, 10), (5, 64), (64, 1)])
def test_every_sample_exactly_once_per_epoch(count: int, batch_size: int) -> None:
    batcher = _batcher(count, batch_size)
    for epoch in range(3):
        ids = _epoch_ids(batcher, epoch)
        assert sorted(ids) == list(range(count))
    assert len(batcher) == -(-count // batch_size)
    sizes = [len(t) for _, t in batcher.epoch(0)]
    assert len(sizes) == len(batcher)
    assert sizes[:-1] == [batch_size] * (len(sizes) - 1)


def test_order_is_a_function_of_seed_and_epoch() -> None:
    first, twin = _batcher(seed=3), _batcher(seed=3)
    # Same (seed, epoch): same order, whatever happened before (no hidden RNG state).
    torch.manual_seed(12345)
    a = _epoch_ids(first, 4)
    torch.manual_seed(999)
    _epoch_ids(twin, 0)
    b = _epoch_ids(twin, 4)
    assert a == b
    assert _epoch_ids(first, 4) == a, "asking again gives the same order"
    # Another epoch or another seed: another order.
    assert _epoch_ids(first, 5) != a
    assert _epoch_ids(_batcher(seed=4), 4) != a
    assert a != list(range(103)), "shuffled"


def test_resuming_mid_epoch_continues_the_same_order() -> None:
    batcher = _batcher(count=95, batch_size=10)
    full = _epoch_ids(batcher, 2)
    assert _epoch_ids(batcher, 2, start_batch=3) == full[30:]


def test_no_shuffle_keeps_the_stored_order() -> None:
    batcher = _batcher(shuffle=False)
    assert _epoch_ids(batcher, 0) == list(range(103))
    assert _epoch_ids(batcher, 9) == list(range(103))


def test_mismatched_lengths_are_refused() -> None:
    with pytest.raises(ValueError):
        InMemoryBatcher(torch.zeros(3, 2), torch.zeros(4), batch_size=2, shuffle=False)


def _arrays_with_row_ids(rows: int = 200, task: str = CLASSIFICATION) -> Arrays:
    """Column 0 is the row number (to find rows again after the split); the others differ
    strongly between rows, so statistics over different rows differ."""
    rng = np.random.default_rng(0)
    ids = np.arange(rows, dtype=np.float64)
    values = rng.normal(loc=5.0, scale=3.0, size=(rows, 2)) * (1 + ids[:, None] / rows)
    features = np.column_stack([ids, values]).astype(np.float32)
    if task == CLASSIFICATION:
        targets = (np.arange(rows) % 2).astype(np.int64)
        info = DatasetInfo(CLASSIFICATION, 2, (3,))
    else:
        targets = rng.normal(size=rows).astype(np.float32)
        info = DatasetInfo(REGRESSION, 0, (3,))
    return Arrays(features, targets, info)


def _cfg(normalize: str, val_fraction: float = 0.25, stratify: bool = True) -> SimpleNamespace:
    return SimpleNamespace(normalize=normalize, val_fraction=val_fraction, stratify=stratify)


def _row_ids(
    arrays: Arrays, split_features: np.ndarray, shift: np.ndarray, scale: np.ndarray
) -> np.ndarray:
    """Which original rows ended up in a split (from the de-normalised id column)."""
    ids = np.rint(split_features[:, 0] * scale[0] + shift[0]).astype(int)
    assert np.allclose(arrays.features[ids, 0], ids)
    return ids


@pytest.mark.parametrize("task", [CLASSIFICATION, REGRESSION])
def test_zscore_statistics_come_from_the_training_split_only(task: str) -> None:
    arrays = _arrays_with_row_ids(task=task)
    split = split_and_normalize(arrays, _cfg("zscore"), seed=0)
    train_ids = _row_ids(arrays, split.train_features, split.shift, split.scale)
    val_ids = _row_ids(arrays, split.val_features, split.shift, split.scale)

    assert sorted([*train_ids, *val_ids]) == list(range(200)), "a partition of the rows"
    assert len(val_ids) == 50
    train_raw = arrays.features[train_ids].astype(np.float64)
    np.testing.assert_allclose(split.shift, train_raw.mean(axis=0), rtol=1e-5)
    np.testing.assert_allclose(split.scale, train_raw.std(axis=0), rtol=1e-5)
    # The reference over all rows is different, so the check above can tell them apart.
    assert not np.allclose(split.shift, arrays.features.mean(axis=0), rtol=1e-4)
    np.testing.assert_allclose(split.train_features.mean(axis=0), 0.0, atol=1e-4)
    np.testing.assert_allclose(split.train_features.std(axis=0), 1.0, atol=1e-4)
    # Validation rows are transformed with the same statistics (not their own).
    expected_val = (arrays.features[val_ids] - split.shift) / split.scale
    np.testing.assert_allclose(split.val_features, expected_val, rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(split.train_targets, arrays.targets[train_ids])
    np.testing.assert_array_equal(split.val_targets, arrays.targets[val_ids])


def test_minmax_statistics_come_from_the_training_split_only() -> None:
    arrays = _arrays_with_row_ids()
    split = split_and_normalize(arrays, _cfg("minmax"), seed=1)
    train_ids = _row_ids(arrays, split.train_features, split.shift, split.scale)
    train_raw = arrays.features[train_ids]
    np.testing.assert_allclose(split.shift, train_raw.min(axis=0), rtol=1e-6)
    np.testing.assert_allclose(split.scale, train_raw.max(axis=0) - train_raw.min(axis=0))
    np.testing.assert_allclose(split.train_features.min(axis=0), 0.0, atol=1e-6)
    np.testing.assert_allclose(split.train_features.max(axis=0), 1.0, atol=1e-6)


def test_split_is_stratified_and_seeded() -> None:
    arrays = _arrays_with_row_ids()
    split = split_and_normalize(arrays, _cfg("none"), seed=0)
    assert np.bincount(split.val_targets).tolist() == [25, 25]
    again = split_and_normalize(arrays, _cfg("none"), seed=0)
    np.testing.assert_array_equal(split.train_features, again.train_features)
    other = split_and_normalize(arrays, _cfg("none"), seed=1)
    assert not np.array_equal(split.train_features, other.train_features)
    np.testing.assert_array_equal(split.shift, np.zeros(3))
    np.testing.assert_array_equal(split.scale, np.ones(3))


def test_constant_features_are_not_divided_by_zero() -> None:
    features = np.array([[1.0, 2.0], [1.0, 4.0], [1.0, 6.0]], dtype=np.float32)
    shift, scale = fit_normalizer(features, "zscore")
    assert scale[0] == 1.0 and shift[0] == 1.0
    assert np.isfinite((features - shift) / scale).all()


def test_bundled_datasets_have_the_documented_shapes() -> None:
    digits = load(SimpleNamespace(name="digits"))
    assert digits.features.shape == (1797, 64)
    assert (digits.info.task, digits.info.num_classes, digits.info.num_features) == (
        CLASSIFICATION,
        10,
        64,
    )
    moons = load(SimpleNamespace(name="moons", n_samples=120, noise=0.1))
    assert moons.features.shape == (120, 2)
    assert sorted(set(moons.targets.tolist())) == [0, 1]


# --- CSV files -----------------------------------------------------------------------------


def _csv(path: Path, target: str = "label", task: str = "auto") -> SimpleNamespace:
    return SimpleNamespace(name="csv", path=str(path), target=target, task=task)


def test_csv_with_text_labels_is_classification(tmp_path: Path) -> None:
    path = tmp_path / "pets.csv"
    path.write_text("weight,height,label\n4,30,cat\n30,60,dog\n5,25,cat\n25,55,dog\n")
    arrays = load(_csv(path))
    assert arrays.info.task == CLASSIFICATION
    assert arrays.info.num_classes == 2
    assert arrays.info.num_features == 2
    assert arrays.targets.tolist() == [0, 1, 0, 1]  # classes in sorted order: cat, dog
    np.testing.assert_array_equal(arrays.features, [[4, 30], [30, 60], [5, 25], [25, 55]])
    assert describe(_csv(path)).num_classes == 2


def test_csv_task_is_inferred_from_the_target(tmp_path: Path) -> None:
    real = tmp_path / "real.csv"
    real.write_text("x,y\n1,0.5\n2,1.5\n3,2.25\n")
    assert describe(_csv(real, target="y")).task == REGRESSION
    np.testing.assert_allclose(load(_csv(real, target="y")).targets, [0.5, 1.5, 2.25])

    many = tmp_path / "many.csv"
    many.write_text("x,y\n" + "".join(f"{i},{i}\n" for i in range(60)))
    assert describe(_csv(many, target="y")).task == REGRESSION, "60 distinct integers"
    forced = describe(_csv(many, target="y", task="classification"))
    assert (forced.task, forced.num_classes) == (CLASSIFICATION, 60)


def test_csv_from_a_spreadsheet_is_read(tmp_path: Path) -> None:
    """A byte-order mark, Windows line endings, spaces around names, a trailing blank line."""
    path = tmp_path / "excel.csv"
    path.write_bytes(b"\xef\xbb\xbflabel, a ,b\r\n0,1,2\r\n1,3,4\r\n0,5,6\r\n\r\n")
    arrays = load(_csv(path, target="label"))
    assert arrays.targets.tolist() == [0, 1, 0]
    np.testing.assert_array_equal(arrays.features, [[1, 2], [3, 4], [5, 6]])


@pytest.mark.parametrize(
    ("content", "fragment"),
    [
        ("a,label\n1,0\n2\n3,1\n", "has 1 cells but the header has 2"),
        ("a,label\n1,0\nx,1\n3,1\n", "column 'a'"),
        ("a,label\n1,0\n", "need a header and rows"),
    ],
    ids=["ragged-row", "non-numeric", "too-short"],
)
def test_bad_csv_raises_a_dataset_error_naming_the_key(
    content: str, fragment: str, tmp_path: Path
) -> None:
    path = tmp_path / "bad.csv"
    path.write_text(content)
    with pytest.raises(DatasetError) as raised:
        load(_csv(path))
    assert raised.value.key == "dataset.path"
    assert fragment in str(raised.value)
