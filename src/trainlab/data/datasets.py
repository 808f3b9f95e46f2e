"""Datasets by short name. Nothing is downloaded: data is generated, bundled with
scikit-learn, or read from the user's own file.

``describe`` is cheap (used by validation before anything runs); ``load`` returns arrays.
"""

from __future__ import annotations

from typing import Any

from trainlab.data import bundled, synthetic, user_files
from trainlab.data.base import (
    CLASSIFICATION,
    REGRESSION,
    Arrays,
    DatasetError,
    DatasetInfo,
    DatasetSpec,
    with_defaults,
)

DATASETS: dict[str, DatasetSpec] = {
    spec.name: spec for spec in [*synthetic.SPECS, *bundled.SPECS, *user_files.SPECS]
}


def list_datasets() -> list[str]:
    """The short names of every dataset."""
    return sorted(DATASETS)


def _spec(cfg: Any) -> DatasetSpec:
    try:
        return DATASETS[str(cfg.name)]
    except KeyError:
        from trainlab.config.suggest import did_you_mean

        raise DatasetError(
            "dataset.name",
            f"unknown dataset {cfg.name!r}; known: {', '.join(list_datasets())}."
            f"{did_you_mean(str(cfg.name), DATASETS)}",
        ) from None


def describe(cfg: Any) -> DatasetInfo:
    """Task, classes and example shape without generating or loading the data (a user's file
    is read once, to learn its columns and classes)."""
    return _spec(cfg).describe(with_defaults(cfg))


def provides_difficulty(cfg: Any) -> bool:
    """Whether the dataset scores how hard each example is (``curriculum=score``)."""
    return _spec(cfg).provides_difficulty(with_defaults(cfg))


def datasets_with_difficulty() -> list[str]:
    """The datasets that always provide a difficulty score."""
    return [name for name, spec in sorted(DATASETS.items()) if spec.provides_difficulty(None)]


def load(cfg: Any) -> Arrays:
    """The dataset named by ``cfg.name`` as arrays."""
    return _spec(cfg).load(with_defaults(cfg))


__all__ = [
    "CLASSIFICATION",
    "DATASETS",
    "REGRESSION",
    "Arrays",
    "DatasetError",
    "DatasetInfo",
    "describe",
    "list_datasets",
    "load",
]
