"""Schemas of the ``dataset`` group: where examples come from and how they are split.

Generated datasets have their own ``random_state``: the data stays fixed while trainlab's
``seed`` varies the split and the initialisation.
"""

from __future__ import annotations

from dataclasses import dataclass

from omegaconf import MISSING

from trainlab.config.constraints import (
    at_least,
    constrained,
    fraction,
    non_negative,
    one_of,
    positive,
)

NORMALIZATIONS = ("zscore", "minmax", "robust", "none")
MISSING_POLICIES = ("reject", "impute_mean", "impute_median", "impute_most_frequent")
TASKS = ("auto", "classification", "regression")


@dataclass
class DatasetConfig:
    """Options every dataset shares: the split, the normalisation, cross-validation."""

    name: str = MISSING
    val_fraction: float = constrained(0.2, gt=0.0, lt=1.0)  # validation share (folds < 2)
    test_fraction: float = fraction(0.0)  # share held out for a final test (0: none)
    stratify: bool = True  # keep class proportions equal across splits and folds
    normalize: str = one_of("zscore", *NORMALIZATIONS)  # fitted on the training split only
    normalize_target: bool = False  # regression: standardise the target (train statistics)
    folds: int = non_negative(0)  # k-fold cross-validation: 0 or 1 = off
    fold: int = non_negative(0)  # which fold validates (0 .. folds-1)
    train_subset: float = constrained(1.0, gt=0.0, le=1.0)  # keep this share of train rows
    split_seed: int | None = None  # None: trainlab's seed; set to fix the split across seeds


# --- generated --------------------------------------------------------------------------


@dataclass
class XorConfig(DatasetConfig):
    """Four clusters at the corners of a square, opposite corners sharing a class (binary)."""

    name: str = "xor"
    n_samples: int = at_least(10, 1000)
    noise: float = non_negative(0.15)
    random_state: int = 0


@dataclass
class MoonsConfig(DatasetConfig):
    """Two interleaving half circles, generated (binary, 2 features)."""

    name: str = "moons"
    n_samples: int = at_least(10, 1000)
    noise: float = non_negative(0.2)
    random_state: int = 0


@dataclass
class CirclesConfig(DatasetConfig):
    """A small circle inside a larger one (binary, 2 features)."""

    name: str = "circles"
    n_samples: int = at_least(10, 1000)
    noise: float = non_negative(0.1)
    factor: float = constrained(0.5, gt=0.0, lt=1.0)  # inner radius / outer radius
    random_state: int = 0


@dataclass
class SpiralsConfig(DatasetConfig):
    """Interleaved spiral arms, one per class (2 features)."""

    name: str = "spirals"
    n_samples: int = at_least(10, 1000)
    num_classes: int = at_least(2, 3)
    turns: float = positive(1.0)
    noise: float = non_negative(0.2)
    random_state: int = 0


@dataclass
class BlobsImbalancedConfig(DatasetConfig):
    """Gaussian blobs whose class sizes shrink geometrically from the largest to the smallest."""

    name: str = "blobs_imbalanced"
    n_samples: int = at_least(10, 1000)
    num_classes: int = at_least(2, 2)
    ratio: float = at_least(1.0, 10.0)
    n_features: int = at_least(1, 2)
    cluster_std: float = positive(1.5)
    random_state: int = 0


@dataclass
class RegressionOutliersConfig(DatasetConfig):
    """A noisy linear target with a share of grossly wrong targets (regression)."""

    name: str = "regression_outliers"
    n_samples: int = at_least(10, 500)
    n_features: int = at_least(1, 5)
    noise: float = non_negative(0.1)
    outlier_fraction: float = fraction(0.1)
    outlier_scale: float = non_negative(10.0)
    random_state: int = 0


@dataclass
class SineSequencesConfig(DatasetConfig):
    """Noisy sine waves of random period and phase; predict the next value (regression)."""

    name: str = "sine_sequences"
    normalize: str = one_of("none", *NORMALIZATIONS)
    n_samples: int = at_least(10, 1000)
    sequence_length: int = at_least(2, 32)
    min_period: float = positive(8.0)
    max_period: float = positive(32.0)
    noise: float = non_negative(0.05)
    random_state: int = 0


# --- bundled with scikit-learn ----------------------------------------------------------


@dataclass
class DigitsConfig(DatasetConfig):
    """scikit-learn's bundled 8x8 handwritten digits (1,797 images, 10 classes)."""

    name: str = "digits"
    shape: str = one_of("flat", "flat", "image")


@dataclass
class BreastCancerConfig(DatasetConfig):
    """scikit-learn's bundled Wisconsin breast cancer table (569 rows, 30 features, binary)."""

    name: str = "breast_cancer"


@dataclass
class WineConfig(DatasetConfig):
    """scikit-learn's bundled wine recognition table (178 rows, 13 features, 3 classes)."""

    name: str = "wine"


@dataclass
class IrisConfig(DatasetConfig):
    """scikit-learn's bundled iris flowers (150 rows, 4 features, 3 classes)."""

    name: str = "iris"


@dataclass
class DiabetesConfig(DatasetConfig):
    """scikit-learn's bundled diabetes progression (442 rows, 10 features, regression)."""

    name: str = "diabetes"
    normalize_target: bool = True


# --- the user's own files ---------------------------------------------------------------


@dataclass
class CsvConfig(DatasetConfig):
    """A user's own CSV file: feature columns (numbers or categories) plus a target column."""

    name: str = "csv"
    path: str = MISSING  # relative paths are resolved against the directory you run from
    target: str = MISSING  # name of the column to predict
    task: str = one_of("auto", *TASKS)  # auto: from the target
    categorical: list[str] | None = None  # None: every non-numeric column is one-hot encoded
    missing: str = one_of("reject", *MISSING_POLICIES)
    # A numeric column scoring how hard each row is (higher: harder), for curriculum=score;
    # it is not a feature.
    difficulty_column: str | None = None


@dataclass
class NpzConfig(DatasetConfig):
    """A user's own NumPy ``.npz`` file: a features array (any example shape) and targets."""

    name: str = "npz"
    path: str = MISSING
    features_key: str = "x"
    targets_key: str = "y"
    task: str = one_of("auto", *TASKS)
    missing: str = one_of("reject", *MISSING_POLICIES)


DATASET_SCHEMAS: dict[str, type[DatasetConfig]] = {
    "xor": XorConfig,
    "moons": MoonsConfig,
    "circles": CirclesConfig,
    "spirals": SpiralsConfig,
    "blobs_imbalanced": BlobsImbalancedConfig,
    "regression_outliers": RegressionOutliersConfig,
    "sine_sequences": SineSequencesConfig,
    "digits": DigitsConfig,
    "breast_cancer": BreastCancerConfig,
    "wine": WineConfig,
    "iris": IrisConfig,
    "diabetes": DiabetesConfig,
    "csv": CsvConfig,
    "npz": NpzConfig,
}
