"""Fixtures: the real CLI in a subprocess, a real sqlite MLflow store in a temp dir, and the
REAL configs of ``conf/`` composed by trainlab and shrunk so a run takes a moment (as
lightning-hydra-template's ``cfg_train``)."""

from __future__ import annotations

import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from omegaconf import DictConfig, open_dict

from helpers import LEAKY_ENV, sqlite_uri, write_classification_csv, write_regression_csv
from helpers import run_cli as _run_cli

# Applied to every composed config unless a test asks for the full-size one.
SMALL_HIDDEN = [16]
SMALL_EPOCHS = 1


@pytest.fixture(autouse=True)
def _isolated_tracking(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """No test may write to a store named by the environment (``tracking=local`` reads
    ``MLFLOW_TRACKING_URI``)."""
    for name in LEAKY_ENV:
        monkeypatch.delenv(name, raising=False)
    yield


@pytest.fixture
def run_cli() -> Callable[..., subprocess.CompletedProcess[str]]:
    """``run_cli(*args, cwd=folder)``: ``python -m trainlab ARGS`` as a subprocess."""
    return _run_cli


@pytest.fixture
def tracking_uri(tmp_path: Path) -> str:
    """A fresh sqlite MLflow store inside the test's temp dir."""
    return sqlite_uri(tmp_path)


@pytest.fixture
def classification_csv(tmp_path: Path) -> Path:
    return write_classification_csv(tmp_path / "data.csv")


@pytest.fixture
def regression_csv(tmp_path: Path) -> Path:
    return write_regression_csv(tmp_path / "regression.csv")


ComposeFn = Callable[..., DictConfig]


@pytest.fixture
def make_cfg(tracking_uri: str) -> ComposeFn:
    """``make_cfg(*overrides, shrink=True)``: the validated config composed from ``conf/``
    exactly as ``trainlab train OVERRIDES`` would, then shrunk: one epoch, small hidden
    layers, CPU, no progress bar, no checkpoints, and the test's own tracking store."""
    from trainlab.config.compose import compose_config

    def compose(*overrides: str, shrink: bool = True) -> DictConfig:
        cfg = compose_config(list(overrides))
        if shrink:
            with open_dict(cfg):
                cfg.trainer.max_epochs = SMALL_EPOCHS
                cfg.trainer.progress = "none"
                cfg.trainer.device = "cpu"
                cfg.trainer.checkpoint = False
                cfg.tracking.uri = tracking_uri
                if "hidden_sizes" in cfg.model:
                    cfg.model.hidden_sizes = list(SMALL_HIDDEN)
        return cfg

    return compose


@pytest.fixture
def cfg_train(make_cfg: ComposeFn) -> DictConfig:
    """The default training config, shrunk."""
    return make_cfg()
