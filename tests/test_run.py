"""One real training run through the CLI into a real sqlite MLflow store, read back with
MlflowClient: status, metric histories, params, artifacts, checkpoint and tags."""

from __future__ import annotations

import math
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import torch
from mlflow import MlflowClient
from mlflow.entities import Run

from helpers import (
    all_runs,
    client_for,
    digits_steps_per_epoch,
    explain,
    git_init,
    metric_steps,
    metric_values,
    run_cli,
    sqlite_uri,
)
from trainlab.config.compose import compose_config
from trainlab.train.loop import evaluate
from trainlab.train.recipe import JobContext, TrainingRecipe

EPOCHS = 2
BATCH_SIZE = 64
PER_STEP = ("train/loss", "train/lr", "train/grad_norm")
PER_EPOCH = ("val/loss", "val/acc", "val/f1", "val/auroc", "epoch")
CHECKPOINT_KEYS = {"model", "optimizer", "scheduler", "epoch", "step", "rng", "config", "run_id"}


@dataclass
class TrainedRun:
    folder: Path
    uri: str
    commit: str
    done: subprocess.CompletedProcess[str]
    client: MlflowClient
    run: Run

    @property
    def run_id(self) -> str:
        return self.run.info.run_id


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> TrainedRun:
    """``trainlab train trainer.max_epochs=2`` in a fresh git repository, run once per module."""
    folder = tmp_path_factory.mktemp("project")
    commit = git_init(folder)
    uri = sqlite_uri(folder)
    done = run_cli("train", f"trainer.max_epochs={EPOCHS}", f"tracking.uri={uri}", cwd=folder)
    assert done.returncode == 0, explain(done)
    runs = all_runs(uri)
    assert len(runs) == 1, [r.info.run_id for r in runs]
    return TrainedRun(folder, uri, commit, done, client_for(uri), runs[0])


def test_run_finishes(trained: TrainedRun) -> None:
    assert trained.run.info.status == "FINISHED"
    assert trained.run.info.end_time is not None
    assert "Traceback" not in trained.done.stderr
    assert trained.run_id in trained.done.stdout, "the summary names the run"
    experiment = trained.client.get_experiment(trained.run.info.experiment_id)
    assert experiment.name == "trainlab"


def test_outputs_land_in_the_working_directory(trained: TrainedRun) -> None:
    assert (trained.folder / "mlflow.db").is_file()
    assert (trained.folder / "outputs" / "runs").is_dir(), "Hydra's run folder is under cwd"


@pytest.mark.parametrize("key", PER_STEP)
def test_per_step_metrics_have_one_point_per_step(trained: TrainedRun, key: str) -> None:
    total = EPOCHS * digits_steps_per_epoch(BATCH_SIZE)
    steps = metric_steps(trained.client, trained.run_id, key)
    assert steps == list(range(1, total + 1)), f"{key}: gaps or duplicates"
    values = metric_values(trained.client, trained.run_id, key)
    assert all(math.isfinite(v) for v in values)


def test_per_step_values_are_plausible(trained: TrainedRun) -> None:
    lrs = metric_values(trained.client, trained.run_id, "train/lr")
    assert lrs == pytest.approx([1e-3] * len(lrs)), "adam with scheduler=none keeps optimizer.lr"
    norms = metric_values(trained.client, trained.run_id, "train/grad_norm")
    assert all(v > 0 for v in norms)
    losses = metric_values(trained.client, trained.run_id, "train/loss")
    assert losses[0] == pytest.approx(math.log(10), rel=0.15), "untrained: about ln(10 classes)"
    assert sum(losses[-10:]) / 10 < sum(losses[:10]) / 10, "the loss goes down"


@pytest.mark.parametrize("key", PER_EPOCH)
def test_per_epoch_metrics_have_one_point_per_epoch(trained: TrainedRun, key: str) -> None:
    per_epoch = digits_steps_per_epoch(BATCH_SIZE)
    steps = metric_steps(trained.client, trained.run_id, key)
    assert steps == [per_epoch * (epoch + 1) for epoch in range(EPOCHS)]
    values = metric_values(trained.client, trained.run_id, key)
    if key == "epoch":
        assert values == [1.0, 2.0]
    elif key != "val/loss":
        assert all(0.0 <= v <= 1.0 for v in values), values


def test_params_are_the_flattened_resolved_config(trained: TrainedRun) -> None:
    params = trained.run.data.params
    assert params["optimizer.lr"] == "0.001"
    assert params["optimizer.name"] == "adam"
    assert params["trainer.batch_size"] == str(BATCH_SIZE)
    assert params["trainer.max_epochs"] == str(EPOCHS)
    assert params["dataset.name"] == "digits"
    assert params["model.hidden_sizes"] == "[128, 128]"
    assert params["seed"] == "0"
    assert params["tracking.uri"] == trained.uri
    assert not any(key in params for key in ("optimizer", "trainer", "model")), "not flattened"


def test_config_and_overrides_are_artifacts(trained: TrainedRun, tmp_path: Path) -> None:
    import yaml

    names = {a.path for a in trained.client.list_artifacts(trained.run_id)}
    assert {"config.yaml", "overrides.txt", "checkpoints"} <= names
    config_file = trained.client.download_artifacts(trained.run_id, "config.yaml", str(tmp_path))
    config = yaml.safe_load(Path(config_file).read_text())
    assert config["trainer"]["max_epochs"] == EPOCHS
    assert config["optimizer"]["lr"] == pytest.approx(1e-3)
    overrides_file = trained.client.download_artifacts(
        trained.run_id, "overrides.txt", str(tmp_path)
    )
    overrides = Path(overrides_file).read_text().split()
    assert overrides == [f"trainer.max_epochs={EPOCHS}", f"tracking.uri={trained.uri}"]


def _checkpoint(trained: TrainedRun, name: str, tmp_path: Path) -> dict[str, Any]:
    names = {a.path for a in trained.client.list_artifacts(trained.run_id, "checkpoints")}
    assert f"checkpoints/{name}" in names, names
    path = trained.client.download_artifacts(trained.run_id, f"checkpoints/{name}", str(tmp_path))
    state = torch.load(path, map_location="cpu", weights_only=True)
    assert isinstance(state, dict)
    return state


def test_last_checkpoint_loads_safely_and_is_complete(trained: TrainedRun, tmp_path: Path) -> None:
    state = _checkpoint(trained, "last.pt", tmp_path)
    assert set(state) >= CHECKPOINT_KEYS, CHECKPOINT_KEYS - set(state)
    assert state["run_id"] == trained.run_id
    assert state["epoch"] == EPOCHS
    assert state["step"] == EPOCHS * digits_steps_per_epoch(BATCH_SIZE)
    config = state["config"]
    assert isinstance(config, dict) and config["trainer"]["max_epochs"] == EPOCHS
    rng = state["rng"]
    assert isinstance(rng, dict) and {"python", "numpy", "torch"} <= set(rng)

    # The weights are the trained model's: they rebuild the MLP and reproduce val/loss.
    cfg = compose_config([f"trainer.max_epochs={EPOCHS}", "trainer.device=cpu"])
    recipe = TrainingRecipe(cfg, JobContext())
    recipe.setup()
    recipe.parts.model.load_state_dict(state["model"])
    recipe.parts.optimizer.load_state_dict(state["optimizer"])
    metrics = evaluate(recipe.parts, 1024)
    logged = metric_values(trained.client, trained.run_id, "val/loss")[-1]
    assert metrics["val/loss"] == pytest.approx(logged, rel=1e-4)


def test_best_checkpoint_exists(trained: TrainedRun, tmp_path: Path) -> None:
    state = _checkpoint(trained, "best.pt", tmp_path)
    assert set(state) >= CHECKPOINT_KEYS
    losses = metric_values(trained.client, trained.run_id, "val/loss")
    best_epoch = min(range(len(losses)), key=losses.__getitem__) + 1
    assert state["epoch"] == best_epoch


def test_source_tags(trained: TrainedRun) -> None:
    tags = trained.run.data.tags
    assert tags["mlflow.source.git.commit"] == trained.commit
    assert tags["trainlab.git_dirty"] == "false"
    assert tags["trainlab.command"].startswith("trainlab train")
    assert f"trainer.max_epochs={EPOCHS}" in tags["trainlab.command"]
    assert "mlflow.parentRunId" not in tags, "a single run has no parent"


@pytest.mark.slow
def test_default_config_learns_digits(tmp_path: Path) -> None:
    """`trainlab train` as shipped (digits, mlp, 20 epochs) reaches val/acc >= 0.95."""
    uri = sqlite_uri(tmp_path)
    done = run_cli("train", f"tracking.uri={uri}", cwd=tmp_path)
    assert done.returncode == 0, explain(done)
    runs = all_runs(uri)
    assert len(runs) == 1 and runs[0].info.status == "FINISHED"
    assert runs[0].info.run_name == "mlp on digits", "the defaults' run is named by what it trains"
    client = client_for(uri)
    accuracy = metric_values(client, runs[0].info.run_id, "val/acc")
    assert len(accuracy) == 20
    assert accuracy[-1] >= 0.95, accuracy
