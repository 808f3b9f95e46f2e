"""The experiment presets of ``conf/experiment/``: every file composes and validates (every
job of a study's sweep too), and, in the ``slow`` tests, each one reaches the score it promises
through the real CLI, read back from a real sqlite MLflow store.

The folder is discovered, so a new preset is checked the day it is added. Scores are those
a preset must reach on a CPU; where one promises more (its description line), the slow test
still holds it to the threshold below, not to the figure measured when it was written.
"""

from __future__ import annotations

import re
import statistics
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from omegaconf import DictConfig, OmegaConf

from helpers import all_runs, client_for, explain, metric_values, run_cli, sqlite_uri
from trainlab.config.paths import config_dir

PRESET_DIR = config_dir() / "experiment"
PRESETS = sorted(p.stem for p in PRESET_DIR.glob("*.yaml"))

# Single-run presets: (monitored metric, threshold); the metric is maximised.
SCORES: dict[str, tuple[str, float]] = {
    "digits_mlp": ("val/acc", 0.97),
    "digits_cnn": ("val/acc", 0.98),
    "breast_cancer_mlp": ("val/acc", 0.96),
    "xor_mlp": ("val/acc", 0.99),
}
# The cross-validated preset: the mean over its folds of the final val/r2.
CV_PRESET, CV_FOLDS, CV_MIN_R2 = "diabetes_mlp", 5, 0.45
# The sequence preset: val/mse below the naive last-value forecast's.
SEQUENCE_PRESET = "sine_lstm"
# Sweeps that reproduce a guide's comparison: the swept group and the arms it must include
# (a regularizer arm is a list: several combine).
STUDIES: dict[str, tuple[str, list[str]]] = {
    "compare_optimizers": ("optimizer", ["sgd", "adam", "adamw", "rmsprop"]),
    "compare_schedulers": ("scheduler", ["none", "step", "cosine", "warmup_cosine", "onecycle"]),
    "regularization_study": ("regularizer", ["[none]", "[l2]", "[dropout]", "[l2,dropout]"]),
}

CLASSIFICATION_MONITORS = {"val/acc", "val/f1", "val/auroc", "val/precision", "val/recall"}
REGRESSION_MONITORS = {"val/r2", "val/mse", "val/mae"}


def _lines(name: str) -> list[str]:
    return (PRESET_DIR / f"{name}.yaml").read_text().splitlines()


def _sweeper_params(name: str) -> dict[str, str]:
    """``hydra.sweeper.params`` of a preset, as written in its file ({} for a single run)."""
    raw = OmegaConf.load(PRESET_DIR / f"{name}.yaml")
    params = OmegaConf.select(raw, "hydra.sweeper.params", default=None)
    return {} if params is None else {str(k): str(v) for k, v in params.items()}


def _compose_jobs(name: str) -> list[DictConfig]:
    """The validated config of every job ``trainlab train -m experiment=NAME`` runs (one for
    a single-run preset), composed from ``conf/`` as the CLI composes them."""
    from trainlab.config.compose import compose_in_context, expand_sweep, hydra_context

    sweep = [f"{key}={value}" for key, value in _sweeper_params(name).items()]
    with hydra_context() as folder:
        jobs = expand_sweep([f"experiment={name}", *sweep]) if sweep else [[f"experiment={name}"]]
        return [compose_in_context(job, folder) for job in jobs]


# --- fast: every preset composes, validates and documents itself ------------------------------


def test_the_required_presets_exist() -> None:
    required = {*SCORES, CV_PRESET, SEQUENCE_PRESET, *STUDIES}
    assert required <= set(PRESETS), f"missing: {sorted(required - set(PRESETS))}"


@pytest.mark.parametrize("name", PRESETS)
def test_preset_header_names_its_package_command_and_description(name: str) -> None:
    lines = _lines(name)
    assert lines[0] == "# @package _global_", "an override preset must be global, on line 1"
    command = lines[1].removeprefix("# ").strip()
    assert lines[1].startswith("# trainlab train "), f"line 2 is the command: {lines[1]!r}"
    assert f"experiment={name}" in command.split()
    sweeps = bool(_sweeper_params(name))
    assert ("-m" in command.split()) == sweeps, "a sweep's command needs -m, a run's must not"
    assert lines[2].startswith("# ") and len(lines[2]) > 20, "line 3: a one-line description"
    assert re.search(r"\d\.\d", lines[2]), "the description states the score it reaches"


@pytest.mark.parametrize("name", PRESETS)
def test_preset_composes_and_validates(name: str) -> None:
    from trainlab.data.datasets import CLASSIFICATION, describe

    jobs = _compose_jobs(name)
    assert jobs
    for cfg in jobs:
        assert cfg.tracking.experiment == name, "runs of a preset group under its own name"
        task = describe(cfg.dataset).task
        expected = CLASSIFICATION_MONITORS if task == CLASSIFICATION else REGRESSION_MONITORS
        assert cfg.trainer.monitor in expected, f"{task} preset monitors {cfg.trainer.monitor}"


Arm = frozenset[str]


def _arm(option: str) -> Arm:
    """``adam`` -> {adam}; ``[l2,dropout]`` -> {l2, dropout}; ``[none]`` -> {} (no regularizer)."""
    if not option.startswith("["):
        return frozenset({option})
    names = (n.strip() for n in option.strip("[]").split(","))
    return frozenset(n for n in names if n not in ("", "none"))


def _composed_arm(cfg: DictConfig, group: str) -> Arm:
    if group == "regularizer":  # one key per regularizer in the list, none for [none]
        return frozenset(str(k) for k in cfg.regularizer)
    return frozenset({str(cfg[group].name)})


def _recorded_arm(params: dict[str, str], group: str) -> Arm:
    if group == "regularizer":  # regularizer.<name>.<option> params
        return frozenset(k.split(".")[1] for k in params if k.startswith("regularizer."))
    return frozenset({params[f"{group}.name"]})


@pytest.mark.parametrize("name", sorted(STUDIES))
def test_study_sweeps_the_arms_it_compares(name: str) -> None:
    group, required = STUDIES[name]
    arms = [_composed_arm(cfg, group) for cfg in _compose_jobs(name)]
    assert len(set(arms)) == len(arms), f"each arm once: {arms}"
    missing = {_arm(a) for a in required} - set(arms)
    assert not missing, f"missing arms: {missing}"
    if name == "compare_optimizers":
        assert {_arm("lamb"), _arm("lion")} & set(arms), "one of the newer optimizers"


def test_cv_preset_has_the_folds_it_sweeps() -> None:
    jobs = _compose_jobs(CV_PRESET)
    assert {cfg.dataset.folds for cfg in jobs} == {CV_FOLDS}
    assert sorted(cfg.dataset.fold for cfg in jobs) == list(range(CV_FOLDS))
    assert "dataset.fold=range(5)" in _lines(CV_PRESET)[1].replace("'", "")


def test_readme_lists_every_preset() -> None:
    readme = (config_dir().parent / "README.md").read_text()
    section = readme.split("## Presets", 1)
    assert len(section) == 2, "README.md has a '## Presets' section"
    body = section[1].split("\n## ", 1)[0]
    for name in PRESETS:
        assert f"experiment={name}" in body, f"README's Presets section lists {name}"


# --- slow: each preset reaches its score through the real CLI ---------------------------------


def _runs_of(uri: str, experiment: str) -> list[Any]:
    client = client_for(uri)
    found = client.get_experiment_by_name(experiment)
    assert found is not None, f"no MLflow experiment {experiment!r}: tracking.experiment unset?"
    return [r for r in all_runs(uri) if r.info.experiment_id == found.experiment_id]


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(SCORES))
def test_preset_reaches_its_score(name: str, tmp_path: Path) -> None:
    metric, threshold = SCORES[name]
    uri = sqlite_uri(tmp_path)
    done = run_cli("train", f"experiment={name}", f"tracking.uri={uri}", cwd=tmp_path)
    assert done.returncode == 0, explain(done)
    (run,) = _runs_of(uri, name)
    assert run.info.status == "FINISHED"
    assert run.data.params["trainer.monitor"] == metric
    best = run.data.metrics[f"best/{metric}"]
    history = metric_values(client_for(uri), run.info.run_id, metric)
    assert best == pytest.approx(max(history)), "best/<monitor> is the best epoch's value"
    assert best >= threshold, f"{name}: best {metric} {best:.4f} < {threshold}\n{explain(done)}"


def naive_last_value_mse(overrides: list[str]) -> float:
    """MSE on the validation split of forecasting each sequence's next value by its last
    observed value (the baseline any sequence model must beat), for the same data and split
    the run uses."""
    from trainlab.config.compose import compose_config
    from trainlab.data.datasets import load
    from trainlab.data.split import split_and_normalize

    cfg = compose_config(overrides)
    split = split_and_normalize(load(cfg.dataset), cfg.dataset, cfg.seed)
    assert split.val_features.ndim == 3, "examples are (time, features) sequences"
    last = split.val_features[:, -1, 0].astype(np.float64)
    return float(np.mean((last - split.val_targets.astype(np.float64)) ** 2))


@pytest.mark.slow
def test_sequence_preset_beats_the_naive_forecast(tmp_path: Path) -> None:
    uri = sqlite_uri(tmp_path)
    baseline = naive_last_value_mse([f"experiment={SEQUENCE_PRESET}"])
    done = run_cli("train", f"experiment={SEQUENCE_PRESET}", f"tracking.uri={uri}", cwd=tmp_path)
    assert done.returncode == 0, explain(done)
    (run,) = _runs_of(uri, SEQUENCE_PRESET)
    assert run.info.status == "FINISHED"
    final = metric_values(client_for(uri), run.info.run_id, "val/mse")[-1]
    best = run.data.metrics["best/val/mse"]
    assert best < baseline, f"best val/mse {best:.4f} >= naive baseline {baseline:.4f}"
    assert final < baseline, f"final val/mse {final:.4f} >= naive baseline {baseline:.4f}"


@pytest.mark.slow
def test_cv_preset_mean_r2(tmp_path: Path) -> None:
    uri = sqlite_uri(tmp_path)
    done = run_cli(
        "train",
        "-m",
        f"experiment={CV_PRESET}",
        "dataset.fold=range(5)",
        f"tracking.uri={uri}",
        cwd=tmp_path,
    )
    assert done.returncode == 0, explain(done)
    runs = _runs_of(uri, CV_PRESET)
    children = [r for r in runs if "mlflow.parentRunId" in r.data.tags]
    assert sorted(int(r.data.params["dataset.fold"]) for r in children) == list(range(CV_FOLDS))
    assert {r.info.status for r in children} == {"FINISHED"}
    client = client_for(uri)
    # The final epoch's r2 of each fold: the model is not picked on the fold it is scored on.
    final = [metric_values(client, r.info.run_id, "val/r2")[-1] for r in children]
    mean = statistics.mean(final)
    assert mean >= CV_MIN_R2, f"mean val/r2 {mean:.4f} < {CV_MIN_R2}; folds {final}"


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(STUDIES))
def test_study_runs_one_child_per_arm(name: str, tmp_path: Path) -> None:
    """A short version of each study (two epochs: a one-epoch run would be all warm-up for
    warmup_cosine): ``-m experiment=NAME`` alone sweeps every arm."""
    uri = sqlite_uri(tmp_path)
    done = run_cli(
        "train",
        "-m",
        f"experiment={name}",
        "trainer.max_epochs=2",
        f"tracking.uri={uri}",
        cwd=tmp_path,
    )
    assert done.returncode == 0, explain(done)
    runs = _runs_of(uri, name)
    parents = [r for r in runs if r.data.tags.get("trainlab.role") == "sweep"]
    children = [r for r in runs if "mlflow.parentRunId" in r.data.tags]
    assert len(parents) == 1
    assert len(children) == len(_compose_jobs(name))
    assert {r.info.status for r in children} == {"FINISHED"}
    group, required = STUDIES[name]
    arms = {_recorded_arm(r.data.params, group) for r in children}
    assert {_arm(a) for a in required} <= arms, arms
