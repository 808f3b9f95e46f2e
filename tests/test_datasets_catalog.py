"""The dataset catalog: every registered dataset loads deterministically with the shapes,
dtypes, task and classes that ``describe`` promises; each one's own properties (spiral
arms, imbalance ratio, next-value targets, image layout); the user's CSV and NPZ files with
categories and missing values; the validation of dataset options.

Parametrised over the registry: a dataset is tested the day it is registered.
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from omegaconf import DictConfig

from trainlab.config.errors import ConfigError
from trainlab.config.paths import config_dir
from trainlab.config.schema.dataset import DATASET_SCHEMAS
from trainlab.data.datasets import (
    CLASSIFICATION,
    DATASETS,
    REGRESSION,
    DatasetError,
    describe,
    list_datasets,
    load,
)
from trainlab.data.synthetic import blob_counts

MakeCfg = Callable[..., DictConfig]
DATASET_FOLDER = config_dir() / "dataset"
GENERATED = sorted(
    name
    for name, schema in DATASET_SCHEMAS.items()
    if "random_state" in schema.__dataclass_fields__
)


def write_mixed_csv(path: Path, rows: int = 60, missing: bool = False) -> Path:
    """Numeric ``size``, text ``colour``, integer-coded ``zone``, a text ``label``; with
    ``missing`` a few empty or NA cells in ``size`` and ``colour``."""
    rng = np.random.default_rng(3)
    lines = ["size,colour,zone,label"]
    for row in range(rows):
        size = f"{rng.normal(10, 2):.3f}"
        colour = ["red", "green", "blue"][row % 3]
        if missing and row in (4, 9):
            size = "" if row == 4 else "NA"
        if missing and row == 7:
            colour = ""
        lines.append(f"{size},{colour},{row % 4 + 1},{'yes' if row % 2 else 'no'}")
    path.write_text("\n".join(lines) + "\n")
    return path


def write_npz(path: Path, rows: int = 60, shape: tuple[int, ...] = (3,), **keys: str) -> Path:
    rng = np.random.default_rng(4)
    names = {"x": keys.get("x", "x"), "y": keys.get("y", "y")}
    features = rng.normal(size=(rows, *shape)).astype(np.float32)
    arrays = {names["x"]: features, names["y"]: np.arange(rows) % 3}
    np.savez(path, **arrays)  # type: ignore[arg-type]
    return path


def dataset_overrides(name: str, folder: Path) -> list[str]:
    """What ``dataset=<name>`` needs to compose: files for the file-backed datasets."""
    if name == "csv":
        return [f"dataset.path={write_mixed_csv(folder / 'mixed.csv')}", "dataset.target=label"]
    if name == "npz":
        return [f"dataset.path={write_npz(folder / 'arrays.npz', shape=(2, 4, 4))}"]
    return []


@pytest.fixture
def dataset_cfg(make_cfg: MakeCfg, tmp_path: Path) -> Callable[..., DictConfig]:
    """``dataset_cfg(name, *overrides)``: the real composed ``dataset`` node of ``name``."""

    def compose(name: str, *overrides: str) -> DictConfig:
        return make_cfg(f"dataset={name}", *dataset_overrides(name, tmp_path), *overrides).dataset

    return compose


# --- the registry, the schemas and the YAML files agree -------------------------------------


def test_every_dataset_has_a_schema_a_yaml_and_a_loader() -> None:
    yamls = {path.stem for path in DATASET_FOLDER.glob("*.yaml")}
    assert set(DATASETS) == set(DATASET_SCHEMAS) == yamls
    assert list_datasets() == sorted(DATASETS)
    assert {
        "xor",
        "moons",
        "circles",
        "spirals",
        "blobs_imbalanced",
        "regression_outliers",
        "sine_sequences",
        "digits",
        "breast_cancer",
        "wine",
        "iris",
        "diabetes",
        "csv",
        "npz",
    } <= set(DATASETS)


@pytest.mark.parametrize("name", list_datasets())
def test_yaml_opens_with_its_command_and_a_description(name: str) -> None:
    first, second, *_ = (DATASET_FOLDER / f"{name}.yaml").read_text().splitlines()
    assert first.startswith(f"# trainlab train dataset={name}")
    assert second.startswith("# ") and len(second) > 20


def test_an_unknown_dataset_lists_the_known_ones() -> None:
    from types import SimpleNamespace

    with pytest.raises(DatasetError) as raised:
        load(SimpleNamespace(name="spiral"))
    assert raised.value.key == "dataset.name"
    assert "Did you mean 'spirals'?" in str(raised.value)
    assert "digits" in str(raised.value)


# --- every dataset ---------------------------------------------------------------------------


@pytest.mark.parametrize("name", list_datasets())
def test_loads_deterministically_as_described(
    name: str, dataset_cfg: Callable[..., DictConfig]
) -> None:
    cfg = dataset_cfg(name)
    info = describe(cfg)
    first, second = load(cfg), load(cfg)

    assert first.info == info, "describe() and load() agree"
    np.testing.assert_array_equal(first.features, second.features)
    np.testing.assert_array_equal(first.targets, second.targets)

    features, targets = first.features, first.targets
    assert features.dtype == np.float32
    assert features.shape == (len(targets), *info.input_shape)
    assert targets.ndim == 1 and len(targets) >= 50
    assert np.isfinite(features).all()
    if info.task == CLASSIFICATION:
        assert targets.dtype == np.int64
        assert info.num_classes >= 2
        assert sorted(set(targets.tolist())) == list(range(info.num_classes)), "every class"
    else:
        assert info.task == REGRESSION and info.num_classes == 0
        assert targets.dtype == np.float32
        assert np.isfinite(targets).all() and targets.std() > 0


@pytest.mark.parametrize("name", GENERATED)
def test_generated_data_follows_its_own_random_state(
    name: str, dataset_cfg: Callable[..., DictConfig]
) -> None:
    base = load(dataset_cfg(name))
    other = load(dataset_cfg(name, "dataset.random_state=1"))
    assert not np.array_equal(base.features, other.features)
    # trainlab's seed is for the split and the initialisation, not the data.
    reseeded = dataset_cfg(name)
    np.testing.assert_array_equal(load(reseeded).features, base.features)


# --- each dataset's own properties -----------------------------------------------------------


def test_digits_image_is_the_flat_digits_laid_out_in_8x8(
    dataset_cfg: Callable[..., DictConfig],
) -> None:
    flat = load(dataset_cfg("digits"))
    image = load(dataset_cfg("digits", "dataset.shape=image"))
    assert flat.info.input_shape == (64,) and image.info.input_shape == (1, 8, 8)
    assert image.features.shape == (1797, 1, 8, 8)
    np.testing.assert_array_equal(image.targets, flat.targets)
    # Pixel (row, column) of the picture is feature row * 8 + column of the flat vector.
    np.testing.assert_array_equal(image.features[:, 0, 2, 5], flat.features[:, 2 * 8 + 5])
    np.testing.assert_array_equal(image.features.reshape(1797, 64), flat.features)


@pytest.mark.parametrize("classes", [2, 3, 5])
def test_spirals_have_one_balanced_arm_per_class(
    classes: int, dataset_cfg: Callable[..., DictConfig]
) -> None:
    cfg = dataset_cfg("spirals", f"dataset.num_classes={classes}", "dataset.n_samples=301")
    arrays = load(cfg)
    assert describe(cfg).num_classes == classes
    counts = np.bincount(arrays.targets)
    assert len(counts) == classes and counts.max() - counts.min() <= 1
    assert counts.sum() == 301


@pytest.mark.parametrize("ratio", [1.0, 4.0, 20.0])
def test_blobs_imbalanced_class_sizes_follow_the_ratio(
    ratio: float, dataset_cfg: Callable[..., DictConfig]
) -> None:
    cfg = dataset_cfg("blobs_imbalanced", f"dataset.ratio={ratio}", "dataset.num_classes=3")
    counts = np.bincount(load(cfg).targets)
    assert counts.sum() == 1000
    assert counts.tolist() == blob_counts(1000, 3, ratio)
    assert counts[0] >= counts[1] >= counts[2]
    assert counts[0] / counts[2] == pytest.approx(ratio, rel=0.05)


def test_blobs_too_imbalanced_for_a_split_are_refused_before_loading(
    make_cfg: MakeCfg,
) -> None:
    with pytest.raises(ConfigError) as raised:
        make_cfg("dataset=blobs_imbalanced", "dataset.n_samples=50", "dataset.ratio=100")
    [problem] = raised.value.problems
    assert problem.key == "dataset.ratio"
    assert "smallest class gets 0" in problem.message


def test_regression_outliers_are_the_configured_share(
    dataset_cfg: Callable[..., DictConfig],
) -> None:
    clean = load(dataset_cfg("regression_outliers", "dataset.outlier_fraction=0"))
    dirty = load(dataset_cfg("regression_outliers", "dataset.outlier_fraction=0.2"))
    np.testing.assert_array_equal(clean.features, dirty.features)
    moved = np.abs(dirty.targets - clean.targets) > 1.0
    assert moved.mean() == pytest.approx(0.2, abs=0.05)
    # A least-squares fit of the clean targets is near perfect: the signal is linear.
    design = np.column_stack([clean.features, np.ones(len(clean.targets))])
    residual = clean.targets - design @ np.linalg.lstsq(design, clean.targets, rcond=None)[0]
    assert residual.std() < 0.15


def test_sine_sequence_targets_are_the_next_value_of_each_wave(
    dataset_cfg: Callable[..., DictConfig],
) -> None:
    cfg = dataset_cfg("sine_sequences", "dataset.noise=0", "dataset.sequence_length=16")
    arrays = load(cfg)
    assert arrays.info.input_shape == (16, 1)
    waves = arrays.features[:, :, 0].astype(np.float64)
    for wave, target in zip(waves[:50], arrays.targets[:50], strict=True):
        # A sampled sine obeys x[t+1] = 2 cos(w) x[t] - x[t-1]: fit 2 cos(w), extrapolate.
        known, previous, before = wave[2:], wave[1:-1], wave[:-2]
        factor = float(np.dot(known + before, previous) / np.dot(previous, previous))
        assert target == pytest.approx(factor * wave[-1] - wave[-2], abs=1e-3)
    noisy = load(dataset_cfg("sine_sequences", "dataset.sequence_length=16"))
    # The noise is on the inputs only.
    np.testing.assert_array_equal(noisy.targets, arrays.targets)
    assert not np.array_equal(noisy.features, arrays.features)


def test_sine_periods_outside_their_order_are_refused(make_cfg: MakeCfg) -> None:
    with pytest.raises(ConfigError) as raised:
        make_cfg("dataset=sine_sequences", "dataset.min_period=40", "dataset.max_period=10")
    assert [p.key for p in raised.value.problems] == ["dataset.min_period"]


# --- CSV files: categories and missing values ------------------------------------------------


def test_csv_text_columns_are_one_hot_encoded(dataset_cfg: Callable[..., DictConfig]) -> None:
    cfg = dataset_cfg("csv")
    arrays = load(cfg)
    # size (1) + colour one-hot (blue, green, red: 3) + zone (1) = 5 features.
    assert arrays.info.input_shape == (5,) and describe(cfg).input_shape == (5,)
    colour = arrays.features[:, 1:4]
    np.testing.assert_array_equal(colour.sum(axis=1), 1.0)
    np.testing.assert_array_equal(colour[0], [0, 0, 1])  # row 0 is red; order blue, green, red
    np.testing.assert_array_equal(colour[1], [0, 1, 0])  # row 1 is green
    np.testing.assert_array_equal(arrays.features[:4, 4], [1, 2, 3, 4])  # zone stays a number
    assert arrays.targets.tolist()[:4] == [0, 1, 0, 1]  # no, yes: classes sorted


def test_csv_named_categorical_columns_replace_the_detection(
    dataset_cfg: Callable[..., DictConfig],
) -> None:
    arrays = load(dataset_cfg("csv", "dataset.categorical=[colour,zone]"))
    assert arrays.info.input_shape == (1 + 3 + 4,)
    zone = arrays.features[:, 4:8]
    np.testing.assert_array_equal(zone[:4], np.eye(4))


def test_csv_naming_a_text_column_as_numeric_is_refused(make_cfg: MakeCfg, tmp_path: Path) -> None:
    path = write_mixed_csv(tmp_path / "mixed.csv")
    with pytest.raises(ConfigError) as raised:
        make_cfg(
            "dataset=csv",
            f"dataset.path={path}",
            "dataset.target=label",
            "dataset.categorical=[zone]",
        )
    [problem] = raised.value.problems
    assert problem.key == "dataset.categorical"
    assert "'colour'" in problem.message and "add it to dataset.categorical" in problem.message


def test_csv_categorical_problems_are_reported_together(make_cfg: MakeCfg, tmp_path: Path) -> None:
    path = write_mixed_csv(tmp_path / "mixed.csv")
    with pytest.raises(ConfigError) as raised:
        make_cfg(
            "dataset=csv",
            f"dataset.path={path}",
            "dataset.target=label",
            "dataset.categorical=[color,label,zone]",
        )
    problems = raised.value.problems
    assert [p.key for p in problems] == ["dataset.categorical", "dataset.categorical"]
    assert "'color' is not in mixed.csv" in problems[0].message
    assert "Did you mean 'colour'?" in problems[0].message
    assert "'label' is the target column" in problems[1].message


def test_csv_missing_values_are_rejected_with_their_lines(
    make_cfg: MakeCfg, tmp_path: Path
) -> None:
    path = write_mixed_csv(tmp_path / "holes.csv", missing=True)
    with pytest.raises(ConfigError) as raised:
        make_cfg("dataset=csv", f"dataset.path={path}", "dataset.target=label")
    [problem] = raised.value.problems
    assert problem.key == "dataset.missing"
    # Data rows 4 and 9 are lines 6 and 11 (the header is line 1); row 7 is line 9.
    assert "3 missing value(s)" in problem.message
    assert "column 'size': line(s) 6, 11" in problem.message
    assert "column 'colour': line(s) 9" in problem.message
    assert "dataset.missing=impute_mean" in problem.message


@pytest.mark.parametrize("policy", ["impute_mean", "impute_median", "impute_most_frequent"])
def test_csv_missing_values_are_left_for_the_split_to_impute(
    policy: str, dataset_cfg: Callable[..., DictConfig], tmp_path: Path
) -> None:
    from trainlab.data.split import split_and_normalize

    path = write_mixed_csv(tmp_path / "holes.csv", missing=True)
    cfg = dataset_cfg("csv", f"dataset.path={path}", f"dataset.missing={policy}")
    arrays = load(cfg)
    assert arrays.missing == policy
    assert np.isnan(arrays.features[[4, 9], 0]).all()
    assert np.isnan(arrays.features[7, 1:4]).all(), "a missing category blanks its group"
    split = split_and_normalize(arrays, cfg, seed=0)
    for part in (split.train_features, split.val_features, split.test_features):
        assert np.isfinite(part).all()


def test_csv_missing_targets_cannot_be_imputed(make_cfg: MakeCfg, tmp_path: Path) -> None:
    path = tmp_path / "no_label.csv"
    path.write_text("a,label\n1,0\n2,\n3,1\n4,0\n")
    with pytest.raises(ConfigError) as raised:
        make_cfg(
            "dataset=csv",
            f"dataset.path={path}",
            "dataset.target=label",
            "dataset.missing=impute_mean",
        )
    [problem] = raised.value.problems
    assert problem.key == "dataset.target" and "line(s) 3" in problem.message


def test_cli_exits_2_for_a_csv_with_missing_values_under_reject(
    run_cli: Callable[..., subprocess.CompletedProcess[str]], tmp_path: Path
) -> None:
    path = write_mixed_csv(tmp_path / "holes.csv", missing=True)
    overrides = ["dataset=csv", f"dataset.path={path}", "dataset.target=label"]
    done = run_cli("train", *overrides, "trainer.max_epochs=1", cwd=tmp_path)
    assert done.returncode == 2, done.stderr[-2000:]
    assert "dataset.missing" in done.stderr and "line(s) 6, 11" in done.stderr
    assert "Traceback" not in done.stderr + done.stdout
    checked = run_cli("validate", *overrides, cwd=tmp_path)
    assert checked.returncode == 2 and "dataset.missing" in checked.stderr
    imputed = run_cli("validate", *overrides, "dataset.missing=impute_median", cwd=tmp_path)
    assert imputed.returncode == 0, imputed.stderr[-2000:]


# --- NPZ files ------------------------------------------------------------------------------


def test_npz_keeps_the_example_shape(dataset_cfg: Callable[..., DictConfig]) -> None:
    cfg = dataset_cfg("npz")
    info = describe(cfg)
    assert info.input_shape == (2, 4, 4)
    assert (info.task, info.num_classes) == (CLASSIFICATION, 3)
    assert load(cfg).features.shape == (60, 2, 4, 4)


def test_npz_keys_are_configurable_and_checked(make_cfg: MakeCfg, tmp_path: Path) -> None:
    path = write_npz(tmp_path / "named.npz", x="inputs", y="labels")
    cfg = make_cfg(
        "dataset=npz",
        f"dataset.path={path}",
        "dataset.features_key=inputs",
        "dataset.targets_key=labels",
    )
    assert load(cfg.dataset).features.shape == (60, 3)
    with pytest.raises(ConfigError) as raised:
        make_cfg("dataset=npz", f"dataset.path={path}", "dataset.features_key=input")
    keys = [p.key for p in raised.value.problems]
    assert keys == ["dataset.features_key", "dataset.targets_key"]
    assert "Did you mean 'inputs'?" in raised.value.problems[0].message


def test_npz_nan_features_are_rejected_or_imputed(
    dataset_cfg: Callable[..., DictConfig], tmp_path: Path
) -> None:
    path = tmp_path / "holes.npz"
    features = np.random.default_rng(0).normal(size=(40, 3))
    features[5, 1] = np.nan
    np.savez(path, x=features, y=np.linspace(0, 1, 40))
    with pytest.raises(DatasetError) as raised:
        load(dataset_cfg("npz", f"dataset.path={path}"))
    assert raised.value.key == "dataset.missing"
    arrays = load(dataset_cfg("npz", f"dataset.path={path}", "dataset.missing=impute_median"))
    assert arrays.info.task == REGRESSION and np.isnan(arrays.features).sum() == 1


# --- validation of the dataset options ------------------------------------------------------


@pytest.mark.parametrize(
    ("overrides", "key", "fragment"),
    [
        (["dataset.folds=5", "dataset.fold=5"], "dataset.fold", "numbered 0 .. 4"),
        (["dataset.fold=2"], "dataset.fold", "cross-validation is off"),
        (["dataset.val_fraction=0.6", "dataset.test_fraction=0.4"], "dataset.val_fraction", "= 1"),
        (["dataset.normalize_target=true"], "dataset.normalize_target", "classification"),
        (["dataset.normalize=l2"], "dataset.normalize", "zscore, minmax, robust, none"),
        (["dataset.train_subset=0"], "dataset.train_subset", "in (0, 1]"),
        (["dataset.shape=square"], "dataset.shape", "flat, image"),
    ],
    ids=[
        "fold-too-large",
        "fold-without-folds",
        "fractions",
        "target",
        "normalize",
        "subset",
        "shape",
    ],
)
def test_impossible_dataset_options_are_refused_with_advice(
    overrides: list[str], key: str, fragment: str, make_cfg: MakeCfg
) -> None:
    with pytest.raises(ConfigError) as raised:
        make_cfg("dataset=digits", *overrides)
    [problem] = raised.value.problems
    assert problem.key == key
    assert fragment in problem.message


def test_val_fraction_is_not_checked_against_test_when_folds_decide(make_cfg: MakeCfg) -> None:
    cfg = make_cfg(
        "dataset.folds=5", "dataset.fold=4", "dataset.val_fraction=0.9", "dataset.test_fraction=0.2"
    )
    assert cfg.dataset.fold == 4


def test_too_many_spiral_arms_for_the_samples_are_refused(make_cfg: MakeCfg) -> None:
    with pytest.raises(ConfigError) as raised:
        make_cfg("dataset=spirals", "dataset.n_samples=10", "dataset.num_classes=6")
    assert [p.key for p in raised.value.problems] == ["dataset.num_classes"]


def test_a_file_with_a_single_class_is_refused(make_cfg: MakeCfg, tmp_path: Path) -> None:
    path = tmp_path / "one_class.csv"
    path.write_text("a,label\n1,cat\n2,cat\n3,cat\n")
    with pytest.raises(ConfigError) as raised:
        make_cfg("dataset=csv", f"dataset.path={path}", "dataset.target=label")
    [problem] = raised.value.problems
    assert problem.key == "dataset.target" and "single class" in problem.message
