"""Every option of every config group trains: two optimizer steps in-process, finite loss,
every parameter updated.

The options are discovered from the YAML files in ``conf/<group>/``, so an option is tested
the day its file is added. Options that need other keys to make sense (a CSV file, a binary
dataset for bce, a regression target for mse) get them from ``NEEDS``; a new option that
needs nothing extra is tested as ``group=option`` on the default config.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
from omegaconf import DictConfig

from helpers import config_groups
from trainlab.data.datasets import load
from trainlab.data.split import split_and_normalize
from trainlab.tracking.base import NullTracker
from trainlab.train.loop import EpochListener
from trainlab.train.recipe import JobContext, TrainingRecipe

# Groups whose options are not trained here: tracking options only say where runs go (a
# server option would need a server), so they are composed, not trained.
COMPOSE_ONLY = {"tracking"}

# Options of several groups at once: regularizers combine.
COMBINATIONS = {
    "regularizer": [
        ["l1", "l2"],
        ["l2", "dropout", "mixup"],
        ["spectral_norm", "dropconnect", "max_norm", "label_smoothing", "feature_dropout"],
    ]
}

# Extra overrides an option needs; "{csv}", "{regression_csv}" and "{npz}" are temp files.
NEEDS: dict[tuple[str, str], list[str]] = {
    ("dataset", "csv"): ["dataset.path={csv}", "dataset.target=label"],
    ("dataset", "npz"): ["dataset.path={npz}"],
    ("dataset", "moons"): ["dataset.n_samples=200"],
    ("loss", "bce"): ["dataset=moons", "dataset.n_samples=200"],
    ("loss", "mse"): ["dataset=csv", "dataset.path={regression_csv}", "dataset.target=y"],
    ("loss", "bce_with_logits"): ["dataset=moons", "dataset.n_samples=200"],
    ("loss", "mae"): ["dataset=diabetes"],
    ("loss", "huber"): ["dataset=diabetes"],
    ("loss", "smooth_l1"): ["dataset=diabetes"],
    ("loss", "quantile"): ["dataset=diabetes"],
    ("regularizer", "droppath"): ["model=resmlp"],
    ("curriculum", "score"): ["dataset=moons", "dataset.n_samples=200"],
    ("model", "cnn"): ["dataset=digits", "dataset.shape=image"],
    ("model", "rnn"): ["dataset=sine_sequences"],
    ("model", "lstm"): ["dataset=sine_sequences"],
    ("model", "gru"): ["dataset=sine_sequences"],
    ("model", "transformer"): ["dataset=sine_sequences"],
}


def _choice(group: str, options: list[str]) -> str:
    return f"{group}={options[0]}" if len(options) == 1 else f"{group}=[{','.join(options)}]"


def _cases(train: bool) -> list[object]:
    cases: list[object] = []
    for group, options in config_groups().items():
        if (group in COMPOSE_ONLY) == train:
            continue
        selections = [[option] for option in options] + COMBINATIONS.get(group, [])
        for selection in selections:
            extra = [o for option in selection for o in NEEDS.get((group, option), [])]
            overrides = [_choice(group, selection), *extra]
            cases.append(pytest.param(group, selection, overrides, id=" ".join(overrides[:1])))
    return cases


def _fill(overrides: list[str], csv: Path, regression_csv: Path) -> list[str]:
    npz = csv.with_suffix(".npz")  # "{npz}": the CSV's table saved as numpy arrays
    if any("{npz}" in o for o in overrides):
        table = np.loadtxt(csv, delimiter=",", skiprows=1)
        np.savez(npz, x=table[:, :-1], y=table[:, -1].astype(np.int64))
    return [
        o.replace("{csv}", str(csv))
        .replace("{regression_csv}", str(regression_csv))
        .replace("{npz}", str(npz))
        for o in overrides
    ]


def test_the_option_discovery_sees_the_config_tree() -> None:
    groups = config_groups()
    assert {"dataset", "model", "optimizer", "scheduler", "regularizer", "loss"} <= set(groups)
    assert {"sgd", "adam", "adamw"} <= set(groups["optimizer"])
    assert len(_cases(train=True)) >= 20


def _two_step_batch_size(cfg: DictConfig) -> int:
    """A batch size that makes one epoch exactly two optimizer steps."""
    split = split_and_normalize(load(cfg.dataset), cfg.dataset, cfg.seed)
    return math.ceil(len(split.train_targets) / 2)


@pytest.mark.parametrize(("group", "selection", "overrides"), _cases(train=True))
def test_every_option_trains_two_steps(
    group: str,
    selection: list[str],
    overrides: list[str],
    make_cfg: Callable[..., DictConfig],
    classification_csv: Path,
    regression_csv: Path,
    tmp_path: Path,
) -> None:
    cfg = make_cfg(*_fill(overrides, classification_csv, regression_csv))
    cfg.trainer.batch_size = _two_step_batch_size(cfg)
    recipe = TrainingRecipe(cfg, JobContext())
    recipe.setup()
    limit = cfg.trainer.limit_train_batches  # debug presets may train on fewer batches
    steps = min(2, limit) if limit else 2
    assert len(recipe.parts.batcher) == steps

    # The option is the one that was built.
    if group == "regularizer":
        chosen = [name for name in selection if name != "none"]
        assert sorted(recipe.regularization.names) == sorted(chosen)
    elif group in ("optimizer", "scheduler", "model", "dataset", "loss"):
        assert cfg[group].name == selection[0]
    if group == "optimizer":
        assert type(recipe.parts.optimizer).__name__.lower() == selection[0]

    parameters = dict(recipe.parts.model.named_parameters())
    before = {name: p.detach().clone() for name, p in parameters.items()}
    tracker = NullTracker(tmp_path / "checkpoints")
    progress = recipe.train(tracker, EpochListener())

    assert progress.step == steps
    losses = [(step, value) for name, value, step in tracker.metrics if name == "train/loss"]
    assert [step for step, _ in losses] == list(range(1, steps + 1))
    assert all(math.isfinite(value) for _, value in losses), losses
    assert math.isfinite(progress.history[-1]["val/loss"])
    unchanged = [name for name, p in parameters.items() if torch.equal(p.detach(), before[name])]
    assert not unchanged, f"parameters not updated by {overrides}: {unchanged}"


@pytest.mark.parametrize(("group", "selection", "overrides"), _cases(train=False))
def test_compose_only_options_compose(
    group: str, selection: list[str], overrides: list[str]
) -> None:
    from trainlab.config.compose import compose_config

    cfg = compose_config(overrides)
    assert cfg[group] is not None
    if group == "tracking":
        assert cfg.tracking.uri.startswith(("sqlite:///", "http://", "https://"))
        assert cfg.tracking.experiment
