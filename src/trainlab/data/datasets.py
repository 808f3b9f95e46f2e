"""Datasets by short name. Nothing is downloaded: data is generated, bundled with
scikit-learn, or read from the user's own file.

``describe`` is cheap (used by validation before anything runs); ``load`` returns arrays.
"""

from __future__ import annotations

import csv
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

CLASSIFICATION = "classification"
REGRESSION = "regression"


class DatasetError(ValueError):
    """The dataset cannot be used as configured (a missing file, a bad column, ...)."""

    def __init__(self, key: str, message: str) -> None:
        self.key = key
        super().__init__(message)


@dataclass(frozen=True)
class DatasetInfo:
    """What validation needs to know before loading: the task and the number of classes."""

    task: str
    num_classes: int  # 0 for regression
    input_shape: tuple[int, ...]  # one example: (features,), (channels, H, W) or (time, features)

    @property
    def num_features(self) -> int:
        """Numbers per example (the product of ``input_shape``)."""
        return int(np.prod(self.input_shape))


@dataclass
class Arrays:
    """A whole dataset in memory: float32 features and int64 labels (or float32 targets)."""

    features: np.ndarray
    targets: np.ndarray
    info: DatasetInfo


def _digits(cfg: Any) -> Arrays:
    from sklearn.datasets import load_digits

    bunch = load_digits()
    return _from_classification(bunch.data, bunch.target)


def _breast_cancer(cfg: Any) -> Arrays:
    from sklearn.datasets import load_breast_cancer

    bunch = load_breast_cancer()
    return _from_classification(bunch.data, bunch.target)


def _moons(cfg: Any) -> Arrays:
    from sklearn.datasets import make_moons

    # The generator's own seed keeps the data fixed while trainlab's seed varies the split/init.
    features, targets = make_moons(n_samples=cfg.n_samples, noise=cfg.noise, random_state=0)
    return _from_classification(features, targets)


def _from_classification(features: np.ndarray, targets: np.ndarray) -> Arrays:
    targets = np.asarray(targets, dtype=np.int64)
    info = DatasetInfo(CLASSIFICATION, int(targets.max()) + 1, tuple(features.shape[1:]))
    return Arrays(np.asarray(features, dtype=np.float32), targets, info)


_STATIC_INFO = {
    "digits": DatasetInfo(CLASSIFICATION, 10, (64,)),
    "breast_cancer": DatasetInfo(CLASSIFICATION, 2, (30,)),
    "moons": DatasetInfo(CLASSIFICATION, 2, (2,)),
}

LOADERS: dict[str, Callable[[Any], Arrays]] = {
    "digits": _digits,
    "breast_cancer": _breast_cancer,
    "moons": _moons,
    "csv": lambda cfg: _read_csv(cfg, load=True),
}


def describe(cfg: Any) -> DatasetInfo:
    """Task, classes and feature count without loading everything (reads a CSV once)."""
    if cfg.name in _STATIC_INFO:
        return _STATIC_INFO[cfg.name]
    if cfg.name == "csv":
        return _read_csv(cfg, load=False).info
    raise DatasetError("dataset.name", f"unknown dataset {cfg.name!r}")


def load(cfg: Any) -> Arrays:
    """The dataset named by ``cfg.name`` as arrays."""
    try:
        loader = LOADERS[cfg.name]
    except KeyError:
        known = ", ".join(sorted(LOADERS))
        raise DatasetError(
            "dataset.name", f"unknown dataset {cfg.name!r}; known: {known}"
        ) from None
    return loader(cfg)


# Integer-like targets with at most this many distinct values are taken as class labels.
_MAX_AUTO_CLASSES = 50


def _read_csv(cfg: Any, load: bool) -> Arrays:
    path = Path(str(cfg.path)).expanduser()
    if not path.is_file():
        raise DatasetError(
            "dataset.path",
            f"file {str(path)!r} does not exist (resolved to {path.resolve()}); "
            "give the path of a CSV file with a header row",
        )
    with path.open(newline="") as handle:
        rows = list(csv.reader(handle))
    if len(rows) < 3:
        raise DatasetError("dataset.path", f"{path} has {len(rows)} lines; need a header and rows")
    header, body = [name.strip() for name in rows[0]], rows[1:]
    if cfg.target not in header:
        from trainlab.config.suggest import did_you_mean

        raise DatasetError(
            "dataset.target",
            f"column {cfg.target!r} is not in {path.name}; its columns are "
            f"{', '.join(header)}.{did_you_mean(str(cfg.target), header)}",
        )
    target_index = header.index(cfg.target)
    raw_targets = [row[target_index].strip() for row in body]
    task = _infer_task(raw_targets) if cfg.task == "auto" else str(cfg.task)
    if task == CLASSIFICATION:
        classes = sorted(set(raw_targets), key=_natural_key)
        targets = np.asarray([classes.index(value) for value in raw_targets], dtype=np.int64)
        info = DatasetInfo(CLASSIFICATION, len(classes), (len(header) - 1,))
    else:
        targets = _numeric_column(raw_targets, cfg.target, path).astype(np.float32)
        info = DatasetInfo(REGRESSION, 0, (len(header) - 1,))
    if not load:
        return Arrays(np.empty((0, info.num_features), np.float32), targets, info)
    columns = [
        _numeric_column([row[index] for row in body], name, path)
        for index, name in enumerate(header)
        if index != target_index
    ]
    features = np.stack(columns, axis=1).astype(np.float32)
    return Arrays(features, targets, info)


def _infer_task(values: list[str]) -> str:
    try:
        numbers = [float(value) for value in values]
    except ValueError:
        return CLASSIFICATION  # text labels
    integral = all(number.is_integer() for number in numbers)
    return CLASSIFICATION if integral and len(set(numbers)) <= _MAX_AUTO_CLASSES else REGRESSION


def _natural_key(value: str) -> tuple[int, float | str]:
    try:
        return (0, float(value))
    except ValueError:
        return (1, value)


def _numeric_column(values: list[str], name: str, path: Path) -> np.ndarray:
    parsed = np.empty(len(values), dtype=np.float64)
    for row_number, value in enumerate(values, start=2):
        try:
            parsed[row_number - 2] = float(value)
        except ValueError:
            shown = value if value.strip() else "an empty cell"
            raise DatasetError(
                "dataset.path",
                f"column {name!r} of {path.name} is not numeric (line {row_number}: {shown!r}); "
                "encode it as numbers or drop the column",
            ) from None
        if not np.isfinite(parsed[row_number - 2]):
            raise DatasetError(
                "dataset.path",
                f"column {name!r} of {path.name} has a missing or infinite value on line "
                f"{row_number}; fill it in or drop the row",
            )
    return parsed
