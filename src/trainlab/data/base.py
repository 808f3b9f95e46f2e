"""What every dataset shares: its info, its arrays, its errors, and its registry entry.

A dataset is two functions of its config: ``describe`` (cheap: task, classes, example shape,
used by validation before anything runs) and ``load`` (the arrays).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

CLASSIFICATION = "classification"
REGRESSION = "regression"


class DatasetError(ValueError):
    """The dataset cannot be used as configured (a missing file, a bad column, ...).

    ``others`` holds further problems found at the same time, so validation can report them
    all at once.
    """

    def __init__(self, key: str, message: str, others: tuple[DatasetError, ...] = ()) -> None:
        self.key = key
        self.others = others
        super().__init__(message)

    def every(self) -> Iterator[DatasetError]:
        """This problem and the others found with it."""
        yield self
        yield from self.others


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
    """A whole dataset in memory: float32 features and int64 labels (or float32 targets).

    ``missing`` names how NaN feature cells are to be filled (``impute_mean``, ...): the fill
    values are fitted on the training split, so imputation happens in the split, not here.
    """

    features: np.ndarray
    targets: np.ndarray
    info: DatasetInfo
    missing: str = "reject"
    # How hard each example is (higher: harder; e.g. minus the distance to the true decision
    # boundary), for curriculum=score; None where the dataset has no natural score.
    difficulty: np.ndarray | None = None


@dataclass(frozen=True)
class DatasetSpec:
    """A registry entry: how to describe and how to load one dataset."""

    name: str
    describe: Callable[[Any], DatasetInfo]
    load: Callable[[Any], Arrays]
    # Whether ``load`` fills ``Arrays.difficulty`` for this config (curriculum=score).
    provides_difficulty: Callable[[Any], bool] = lambda cfg: False


def classification(features: np.ndarray, targets: np.ndarray, num_classes: int) -> Arrays:
    """Arrays of a classification dataset, in trainlab's dtypes."""
    labels = np.asarray(targets, dtype=np.int64)
    info = DatasetInfo(CLASSIFICATION, num_classes, tuple(features.shape[1:]))
    return Arrays(np.ascontiguousarray(features, dtype=np.float32), labels, info)


def regression(features: np.ndarray, targets: np.ndarray) -> Arrays:
    """Arrays of a regression dataset, in trainlab's dtypes."""
    values = np.asarray(targets, dtype=np.float32)
    info = DatasetInfo(REGRESSION, 0, tuple(features.shape[1:]))
    return Arrays(np.ascontiguousarray(features, dtype=np.float32), values, info)


class WithDefaults:
    """``cfg`` read through its schema: a key the config lacks (a plain namespace built in
    Python, a config from an older run) takes the schema's default, so the defaults live in
    one place."""

    def __init__(self, cfg: Any, schema: type) -> None:
        self._cfg = cfg
        self._defaults: dict[str, Any] = {}
        for field in dataclasses.fields(schema):
            if field.default is not dataclasses.MISSING:
                self._defaults[field.name] = field.default
            elif field.default_factory is not dataclasses.MISSING:
                self._defaults[field.name] = field.default_factory()

    def __getattr__(self, key: str) -> Any:
        try:
            return getattr(self._cfg, key)
        except AttributeError:
            if key in self._defaults and self._defaults[key] != "???":
                return self._defaults[key]
            raise


def with_defaults(cfg: Any) -> Any:
    """``cfg`` with the defaults of its dataset's schema (the base schema if it has no name)."""
    from trainlab.config.schema.dataset import DATASET_SCHEMAS, DatasetConfig

    if isinstance(cfg, WithDefaults):
        return cfg
    name = getattr(cfg, "name", None)
    return WithDefaults(cfg, DATASET_SCHEMAS.get(str(name), DatasetConfig))
