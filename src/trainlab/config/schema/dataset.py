"""Schemas of the ``dataset`` group: where examples come from and how they are split."""

from __future__ import annotations

from dataclasses import dataclass

from omegaconf import MISSING

from trainlab.config.constraints import at_least, constrained, non_negative, one_of


@dataclass
class DatasetConfig:
    """Options every dataset shares."""

    name: str = MISSING
    val_fraction: float = constrained(0.2, gt=0.0, lt=1.0)  # share held out for validation
    stratify: bool = True  # keep class proportions equal in train and validation
    normalize: str = one_of("zscore", "zscore", "minmax", "none")  # fitted on train split only


@dataclass
class DigitsConfig(DatasetConfig):
    """scikit-learn's bundled 8x8 handwritten digits (1,797 images, 10 classes)."""

    name: str = "digits"


@dataclass
class BreastCancerConfig(DatasetConfig):
    """scikit-learn's bundled Wisconsin breast cancer table (569 rows, 30 features, binary)."""

    name: str = "breast_cancer"


@dataclass
class MoonsConfig(DatasetConfig):
    """Two interleaving half circles, generated (binary, 2 features)."""

    name: str = "moons"
    n_samples: int = at_least(10, 1000)
    noise: float = non_negative(0.2)


@dataclass
class CsvConfig(DatasetConfig):
    """A user's own CSV file: numeric feature columns plus one target column."""

    name: str = "csv"
    path: str = MISSING  # relative paths are resolved against the directory you run from
    target: str = MISSING  # name of the column to predict
    task: str = one_of("auto", "auto", "classification", "regression")  # auto: from the target


DATASET_SCHEMAS: dict[str, type[DatasetConfig]] = {
    "digits": DigitsConfig,
    "breast_cancer": BreastCancerConfig,
    "moons": MoonsConfig,
    "csv": CsvConfig,
}
