"""The split a process keeps for its later jobs: reused for the same dataset config and seed,
made again for another, for a changed file, or when it is too large; never shared in place."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from conftest import ComposeFn
from trainlab.data import datasets, prepared


@pytest.fixture(autouse=True)
def _counted_loads(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    prepared.forget()
    loads: list[str] = []
    real = datasets.load

    def counting(cfg):  # type: ignore[no-untyped-def]
        loads.append(str(cfg.name))
        return real(cfg)

    monkeypatch.setattr(datasets, "load", counting)
    yield loads
    prepared.forget()


def test_the_same_dataset_and_seed_is_loaded_once(
    make_cfg: ComposeFn, _counted_loads: list[str]
) -> None:
    cfg = make_cfg("dataset=digits")
    first = prepared.split_for(cfg.dataset, cfg.seed)
    first.train_features[:] = 0.0  # a job changing its arrays does not reach the next job
    again = prepared.split_for(make_cfg("dataset=digits", "optimizer.lr=0.1").dataset, cfg.seed)
    assert _counted_loads == ["digits"]
    assert again.train_features.std() > 0.5
    fresh = datasets.load(cfg.dataset)
    from trainlab.data.split import split_and_normalize

    expected = split_and_normalize(fresh, cfg.dataset, cfg.seed)
    np.testing.assert_array_equal(again.train_features, expected.train_features)
    np.testing.assert_array_equal(again.val_index, expected.val_index)


def test_another_seed_or_dataset_option_makes_a_new_split(
    make_cfg: ComposeFn, _counted_loads: list[str]
) -> None:
    cfg = make_cfg("dataset=digits")
    a = prepared.split_for(cfg.dataset, 0)
    b = prepared.split_for(cfg.dataset, 1)
    c = prepared.split_for(make_cfg("dataset=digits", "dataset.val_fraction=0.3").dataset, 0)
    assert _counted_loads == ["digits"] * 3
    assert not np.array_equal(a.val_index, b.val_index)
    assert len(c.val_index) > len(a.val_index)


def test_a_rewritten_file_is_read_again(
    make_cfg: ComposeFn, classification_csv: Path, _counted_loads: list[str]
) -> None:
    cfg = make_cfg("dataset=csv", f"dataset.path={classification_csv}", "dataset.target=label")
    before = prepared.split_for(cfg.dataset, 0)
    prepared.split_for(cfg.dataset, 0)
    assert len(_counted_loads) == 1
    lines = classification_csv.read_text().splitlines()
    classification_csv.write_text("\n".join(lines[: len(lines) - 10]) + "\n")
    stat = classification_csv.stat()
    os.utime(classification_csv, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000))
    after = prepared.split_for(cfg.dataset, 0)
    assert len(_counted_loads) == 2
    assert len(after.train_targets) + len(after.val_targets) == (
        len(before.train_targets) + len(before.val_targets) - 10
    )


def test_a_large_split_is_not_kept(
    make_cfg: ComposeFn, monkeypatch: pytest.MonkeyPatch, _counted_loads: list[str]
) -> None:
    monkeypatch.setattr(prepared, "MAX_KEPT_BYTES", 1000)
    cfg = make_cfg("dataset=digits")
    prepared.split_for(cfg.dataset, 0)
    prepared.split_for(cfg.dataset, 0)
    assert _counted_loads == ["digits", "digits"]


def test_the_most_recently_used_splits_are_kept_up_to_the_limit(
    make_cfg: ComposeFn, monkeypatch: pytest.MonkeyPatch, _counted_loads: list[str]
) -> None:
    cfg = make_cfg("dataset=digits")
    one = prepared.split_bytes(prepared.split_for(cfg.dataset, 0))
    monkeypatch.setattr(prepared, "MAX_KEPT_BYTES", 2 * one)  # room for two
    prepared.split_for(cfg.dataset, 1)
    prepared.split_for(cfg.dataset, 0)  # used again: now the most recent
    prepared.split_for(cfg.dataset, 2)  # evicts seed 1, the least recently used
    assert _counted_loads == ["digits"] * 3
    prepared.split_for(cfg.dataset, 0)
    prepared.split_for(cfg.dataset, 2)
    assert _counted_loads == ["digits"] * 3
    prepared.split_for(cfg.dataset, 1)
    assert _counted_loads == ["digits"] * 4
