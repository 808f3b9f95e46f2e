"""Real datasets bundled with scikit-learn: read from its package folder, never downloaded."""

from __future__ import annotations

from typing import Any

from trainlab.data.base import (
    CLASSIFICATION,
    REGRESSION,
    Arrays,
    DatasetInfo,
    DatasetSpec,
    classification,
    regression,
)


def _digits_shape(cfg: Any) -> tuple[int, ...]:
    return (1, 8, 8) if cfg.shape == "image" else (64,)


def _digits(cfg: Any) -> Arrays:
    from sklearn.datasets import load_digits

    bunch = load_digits()
    # Rows of bunch.data are the images read row by row, so a reshape restores the picture.
    features = bunch.data.reshape(len(bunch.data), *_digits_shape(cfg))
    return classification(features, bunch.target, 10)


def _breast_cancer(cfg: Any) -> Arrays:
    from sklearn.datasets import load_breast_cancer

    bunch = load_breast_cancer()
    return classification(bunch.data, bunch.target, 2)


def _wine(cfg: Any) -> Arrays:
    from sklearn.datasets import load_wine

    bunch = load_wine()
    return classification(bunch.data, bunch.target, 3)


def _iris(cfg: Any) -> Arrays:
    from sklearn.datasets import load_iris

    bunch = load_iris()
    return classification(bunch.data, bunch.target, 3)


def _diabetes(cfg: Any) -> Arrays:
    from sklearn.datasets import load_diabetes

    # scaled=False: the raw measurements; trainlab's normalisation is fitted on train only.
    bunch = load_diabetes(scaled=False)
    return regression(bunch.data, bunch.target)


SPECS = [
    DatasetSpec("digits", lambda cfg: DatasetInfo(CLASSIFICATION, 10, _digits_shape(cfg)), _digits),
    DatasetSpec("breast_cancer", lambda cfg: DatasetInfo(CLASSIFICATION, 2, (30,)), _breast_cancer),
    DatasetSpec("wine", lambda cfg: DatasetInfo(CLASSIFICATION, 3, (13,)), _wine),
    DatasetSpec("iris", lambda cfg: DatasetInfo(CLASSIFICATION, 3, (4,)), _iris),
    DatasetSpec("diabetes", lambda cfg: DatasetInfo(REGRESSION, 0, (10,)), _diabetes),
]
