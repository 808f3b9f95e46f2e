"""The debug presets of ``conf/debug/``: each composes into a valid config that sets what its
header promises, and each does its job in a real run (the CLI in a subprocess, a real sqlite
MLflow store): ``overfit_batch`` gives a verdict, ``fast`` is a 2 x 2 smoke test, ``anomaly``
turns on autograd anomaly detection."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import torch
from mlflow.entities import Run
from omegaconf import DictConfig

from helpers import all_runs, client_for, config_groups, explain, metric_steps, run_cli, sqlite_uri
from trainlab.tracking.base import NullTracker
from trainlab.train.gradients import NonFiniteError
from trainlab.train.loop import EpochListener
from trainlab.train.recipe import JobContext, TrainingRecipe

ComposeFn = Callable[..., DictConfig]


@pytest.fixture(autouse=True)
def _restore_anomaly_mode() -> Iterator[None]:
    """``setup()`` switches autograd anomaly detection for the whole process; put it back."""
    enabled = torch.is_anomaly_enabled()
    yield
    torch.autograd.set_detect_anomaly(enabled)


def test_every_debug_preset_is_tested() -> None:
    assert config_groups()["debug"] == ["anomaly", "fast", "overfit_batch"]


@pytest.mark.parametrize("preset", config_groups()["debug"])
def test_preset_composes_and_sends_runs_to_the_debug_experiment(
    make_cfg: ComposeFn, preset: str
) -> None:
    cfg = make_cfg(f"debug={preset}", shrink=False)
    assert cfg.tracking.experiment == "debug"


def test_overfit_batch_preset_settings(make_cfg: ComposeFn) -> None:
    cfg = make_cfg("debug=overfit_batch", shrink=False)
    trainer = cfg.trainer
    assert trainer.limit_train_batches == 1
    assert trainer.max_epochs == 200
    assert trainer.overfit_check is True
    assert trainer.checkpoint is False
    assert trainer.early_stopping.enabled is False
    assert trainer.gradient_monitor.every_n_steps == 0
    assert dict(cfg.regularizer) == {}


def test_debug_preset_wins_over_an_experiment_preset(make_cfg: ComposeFn) -> None:
    cfg = make_cfg("experiment=digits_mlp", "debug=overfit_batch", shrink=False)
    assert cfg.trainer.max_epochs == 200  # digits_mlp asks for 30
    assert cfg.trainer.limit_train_batches == 1
    assert cfg.tracking.experiment == "debug"


def test_fast_preset_settings(make_cfg: ComposeFn) -> None:
    trainer = make_cfg("debug=fast", shrink=False).trainer
    assert (trainer.limit_train_batches, trainer.max_epochs) == (2, 2)
    assert trainer.checkpoint is False


def test_anomaly_preset_settings(make_cfg: ComposeFn) -> None:
    trainer = make_cfg("debug=anomaly", shrink=False).trainer
    assert trainer.detect_anomaly is True
    assert trainer.max_epochs == 3


def _diverging(make_cfg: ComposeFn, *overrides: str) -> TrainingRecipe:
    recipe = TrainingRecipe(make_cfg("optimizer=sgd", "optimizer.lr=1e8", *overrides), JobContext())
    recipe.setup()
    return recipe


@pytest.mark.filterwarnings("ignore:Error detected in:UserWarning")  # anomaly mode's own report
def test_anomaly_preset_names_the_backward_op_that_made_the_nan(make_cfg: ComposeFn) -> None:
    recipe = _diverging(make_cfg, "debug=anomaly")
    assert torch.is_anomaly_enabled()
    with pytest.raises(RuntimeError, match=r"Function '\w+Backward\d*' returned nan values"):
        recipe.train(NullTracker(), EpochListener())


def test_without_anomaly_preset_the_same_run_is_stopped_by_the_nonfinite_guard(
    make_cfg: ComposeFn,
) -> None:
    """The control of the test above: the anomaly error comes from the preset."""
    recipe = _diverging(make_cfg)
    assert not torch.is_anomaly_enabled()
    with pytest.raises(NonFiniteError):
        recipe.train(NullTracker(), EpochListener())


# --- real runs through the CLI ------------------------------------------------------------


def _train(tmp_path: Path, *overrides: str) -> tuple[str, Run, str]:
    """``trainlab train OVERRIDES`` into the test's own store; (stdout, the run, its uri)."""
    uri = sqlite_uri(tmp_path)
    done = run_cli(
        "train", *overrides, "trainer.progress=plain", f"tracking.uri={uri}", cwd=tmp_path
    )
    assert done.returncode == 0, explain(done)
    runs = all_runs(uri)
    assert len(runs) == 1, [r.info.run_name for r in runs]
    run = runs[0]
    assert run.info.status == "FINISHED"
    experiment = client_for(uri).get_experiment(run.info.experiment_id)
    assert experiment.name == "debug"
    return done.stdout, run, uri


@pytest.mark.slow
def test_overfit_batch_passes_for_the_default_digits_mlp(tmp_path: Path) -> None:
    stdout, run, uri = _train(tmp_path, "debug=overfit_batch")
    assert "overfit check PASSED" in stdout
    assert "FAILED" not in stdout
    assert run.data.tags["trainlab.overfit_check"] == "passed"
    assert metric_steps(client_for(uri), run.info.run_id, "train/loss") == list(range(1, 201))


@pytest.mark.slow
def test_overfit_batch_fails_when_the_model_cannot_learn(tmp_path: Path) -> None:
    stdout, run, uri = _train(
        tmp_path, "debug=overfit_batch", "optimizer.lr=1e-7", "trainer.max_epochs=20"
    )
    assert "overfit check FAILED" in stdout
    assert "PASSED" not in stdout
    assert run.data.tags["trainlab.overfit_check"] == "failed"
    assert len(metric_steps(client_for(uri), run.info.run_id, "epoch")) == 20


@pytest.mark.slow
def test_fast_runs_two_epochs_of_two_batches(tmp_path: Path) -> None:
    _, run, uri = _train(tmp_path, "debug=fast")
    client = client_for(uri)
    run_id = run.info.run_id
    assert metric_steps(client, run_id, "train/loss") == [1, 2, 3, 4]
    assert metric_steps(client, run_id, "epoch") == [2, 4]
    assert "trainlab.overfit_check" not in run.data.tags
    assert not [a for a in client.list_artifacts(run_id) if a.path == "checkpoints"]


@pytest.mark.slow
def test_anomaly_composes_and_runs(tmp_path: Path) -> None:
    _, run, uri = _train(tmp_path, "debug=anomaly")
    assert run.data.params["trainer.detect_anomaly"] == "True"
    assert len(metric_steps(client_for(uri), run.info.run_id, "epoch")) == 3
