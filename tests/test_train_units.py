"""Units of the training path with known answers: step-metric buffering, atomic checkpoints,
RNG capture, config flattening, and the loop's per-step bookkeeping."""

from __future__ import annotations

import math
import os
import pickle
import random
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from omegaconf import DictConfig

from trainlab.tracking.base import NullTracker
from trainlab.train.checkpoint import (
    BackgroundCheckpointWriter,
    CheckpointFolder,
    capture_rng_state,
    load_checkpoint,
    restore_rng_state,
    save_checkpoint,
)
from trainlab.train.loop import EpochListener
from trainlab.train.recipe import JobContext, TrainingRecipe, flatten
from trainlab.train.step_metrics import StepMetrics

# Only turns a hang into a failure; not a statement about speed.
HANG_GUARD_SECONDS = 120

# --- StepMetrics ---------------------------------------------------------------------------


def _by_name(points: list[tuple[str, float, int]]) -> dict[str, list[tuple[int, float]]]:
    grouped: dict[str, list[tuple[int, float]]] = {}
    for name, value, step in points:
        grouped.setdefault(name, []).append((step, value))
    return {name: sorted(values) for name, values in grouped.items()}


def test_step_metrics_drain_returns_what_was_recorded() -> None:
    buffer = StepMetrics()
    recorded = [(1, 2.5, 0.75, 0.1), (2, 1.25, 0.5, 0.05), (3, 0.625, 0.25, 0.025)]
    for step, loss, grad_norm, lr in recorded:
        buffer.record(step, torch.tensor(loss), torch.tensor(grad_norm), lr)
    assert len(buffer) == 3

    points = buffer.drain()
    assert len(points) == 9
    assert all(isinstance(value, float) and isinstance(step, int) for _, value, step in points)
    grouped = _by_name(points)
    assert grouped == {
        "train/loss": [(s, pytest.approx(v)) for s, v, _, _ in recorded],
        "train/grad_norm": [(s, pytest.approx(g)) for s, _, g, _ in recorded],
        "train/lr": [(s, pytest.approx(lr)) for s, _, _, lr in recorded],
    }
    assert len(buffer) == 0
    assert buffer.drain() == [], "a drain empties the buffer"


def test_step_metrics_keep_values_recorded_after_a_drain_apart() -> None:
    buffer = StepMetrics()
    buffer.record(1, torch.tensor(1.0), torch.tensor(2.0), 0.5)
    first = buffer.drain()
    buffer.record(2, torch.tensor(3.0), torch.tensor(4.0), 0.25)
    second = buffer.drain()
    assert _by_name(first) == {
        "train/loss": [(1, 1.0)],
        "train/grad_norm": [(1, 2.0)],
        "train/lr": [(1, 0.5)],
    }
    assert _by_name(second) == {
        "train/loss": [(2, 3.0)],
        "train/grad_norm": [(2, 4.0)],
        "train/lr": [(2, 0.25)],
    }


def test_step_metrics_over_many_steps() -> None:
    """As the loop records: a fresh detached tensor per step, several steps per drain."""
    buffer = StepMetrics()
    for step in range(1, 6):
        loss = torch.tensor(float(step)) * 2  # a fresh tensor each step
        buffer.record(step, loss.detach(), loss.detach() / 2, 0.1 * step)
    grouped = _by_name(buffer.drain())
    assert grouped["train/loss"] == [(s, 2.0 * s) for s in range(1, 6)]
    assert grouped["train/grad_norm"] == [(s, float(s)) for s in range(1, 6)]


# --- checkpoints ---------------------------------------------------------------------------


def _state() -> dict[str, object]:
    model = torch.nn.Linear(3, 2)
    return {
        "model": model.state_dict(),
        "epoch": 4,
        "step": 40,
        "best": {"monitor": "val/loss", "value": 0.5, "epoch": 3},
        "config": {"optimizer": {"lr": 0.1, "betas": [0.9, 0.999]}, "seed": 0},
        "run_id": "abc123",
        "rng": capture_rng_state(),
    }


def test_checkpoint_round_trips_and_leaves_no_temporary_file(tmp_path: Path) -> None:
    state = _state()
    path = tmp_path / "checkpoints" / "last.pt"
    save_checkpoint(state, path)
    assert sorted(p.name for p in path.parent.iterdir()) == ["last.pt"]

    loaded = torch.load(path, weights_only=True)  # plain values only
    assert set(load_checkpoint(path)) == set(loaded)
    model = state["model"]
    assert isinstance(model, dict)
    for key, tensor in model.items():
        assert torch.equal(loaded["model"][key], tensor)
    for key in ("epoch", "step", "best", "config", "run_id"):
        assert loaded[key] == state[key]


def test_checkpoint_overwrite_is_atomic(tmp_path: Path) -> None:
    path = tmp_path / "last.pt"
    save_checkpoint({"model": {}, "epoch": 1}, path)
    save_checkpoint({"model": {}, "epoch": 2}, path)
    assert load_checkpoint(path)["epoch"] == 2
    assert [p.name for p in tmp_path.iterdir()] == ["last.pt"]

    # A write that fails half-way keeps the previous checkpoint and leaves no temp file.
    with pytest.raises((pickle.PicklingError, AttributeError, TypeError)):
        save_checkpoint({"model": {}, "epoch": 3, "bad": lambda: None}, path)
    assert load_checkpoint(path)["epoch"] == 2
    assert [p.name for p in tmp_path.iterdir()] == ["last.pt"]


def test_a_checkpoint_is_written_first_and_named_only_after_its_wait(tmp_path: Path) -> None:
    """The step file is written (and fsync'ed) while the metric sender stores the points;
    it appears under its name, and last.pt points at it, only after that wait returns."""
    folder = CheckpointFolder(tmp_path / "checkpoints")
    seen: list[list[str]] = []

    def wait_for_store() -> None:
        names = sorted(p.name for p in folder.folder.iterdir())
        seen.append(names)
        assert not (folder.folder / "step-000000040.pt").exists() and not folder.last.exists()
        (written,) = names  # the whole file, under a temporary name
        assert written.startswith(".step-000000040.pt.")
        assert torch.load(folder.folder / written, weights_only=True)["step"] == 40

    folder.save(_state(), before_publish=wait_for_store)
    assert len(seen) == 1
    assert sorted(p.name for p in folder.folder.iterdir()) == ["last.pt", "step-000000040.pt"]
    assert load_checkpoint(folder.last)["step"] == 40


def test_checkpoint_of_something_else_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "other.pt"
    torch.save({"weights": torch.zeros(2)}, path)
    with pytest.raises(ValueError, match="not a trainlab checkpoint"):
        load_checkpoint(path)


def test_rng_state_round_trips() -> None:
    state = capture_rng_state()
    expected = (random.random(), np.random.random(), torch.rand(3))
    random.random(), np.random.random(), torch.rand(3)  # move every generator on
    restore_rng_state(state)
    again = (random.random(), np.random.random(), torch.rand(3))
    assert again[0] == expected[0]
    assert again[1] == expected[1]
    assert torch.equal(again[2], expected[2])


def test_rng_state_survives_a_safe_checkpoint(tmp_path: Path) -> None:
    save_checkpoint({"model": {}, "rng": capture_rng_state()}, tmp_path / "c.pt")
    expected = (random.random(), np.random.random(), torch.rand(2))
    restore_rng_state(load_checkpoint(tmp_path / "c.pt")["rng"])
    assert (random.random(), np.random.random()) == expected[:2]
    assert torch.equal(torch.rand(2), expected[2])


def test_background_writer_snapshots_the_state_when_submitted(tmp_path: Path) -> None:
    weights = torch.ones(4)
    writer = BackgroundCheckpointWriter()

    def write_to(*names: str) -> Callable[[dict[str, Any]], None]:
        return lambda state: [save_checkpoint(state, tmp_path / name) for name in names]

    writer.submit({"model": {"w": weights}, "epoch": 1}, write_to("last.pt", "best.pt"))
    weights.add_(41.0)  # training goes on changing the weights in place
    writer.submit({"model": {"w": weights}, "epoch": 2}, write_to("last.pt"))
    writer.close()

    best, last = load_checkpoint(tmp_path / "best.pt"), load_checkpoint(tmp_path / "last.pt")
    assert torch.equal(best["model"]["w"], torch.ones(4)) and best["epoch"] == 1
    assert torch.equal(last["model"]["w"], torch.full((4,), 42.0)) and last["epoch"] == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["best.pt", "last.pt"]


def test_background_writer_reports_a_failed_write(tmp_path: Path) -> None:
    path = tmp_path / "last.pt"
    writer = BackgroundCheckpointWriter()
    writer.submit({"model": {}, "epoch": 1}, lambda state: save_checkpoint(state, path))
    bad = {"model": {}, "epoch": 2, "bad": lambda: None}
    writer.submit(bad, lambda state: save_checkpoint(state, path))
    with pytest.raises((pickle.PicklingError, AttributeError, TypeError)):
        writer.close()
    assert load_checkpoint(path)["epoch"] == 1
    assert [p.name for p in tmp_path.iterdir()] == ["last.pt"]


def test_background_writer_still_writes_after_close(tmp_path: Path) -> None:
    """The interrupt path checkpoints after training's writer is closed: that write must
    happen (here and now), and waiting for it must return."""
    path = tmp_path / "last.pt"
    writer = BackgroundCheckpointWriter()
    writer.submit({"model": {}, "epoch": 1}, lambda state: save_checkpoint(state, path))
    writer.close()
    # In a thread: if the write were queued to the stopped worker, wait() would never return.
    late = threading.Thread(
        target=lambda: (
            writer.submit({"model": {}, "epoch": 2}, lambda state: save_checkpoint(state, path)),
            writer.wait(),
        ),
        daemon=True,
    )
    late.start()
    late.join(timeout=HANG_GUARD_SECONDS)
    assert not late.is_alive(), "a checkpoint submitted after close() never completes"
    writer.close()
    assert load_checkpoint(path)["epoch"] == 2


def test_checkpoint_folder_keeps_the_newest_and_links_last_and_best(tmp_path: Path) -> None:
    folder = CheckpointFolder(tmp_path, keep_last=2)
    for step, best in ((10, True), (20, False), (30, False), (40, True), (50, False)):
        folder.save({"model": {"w": torch.tensor([float(step)])}, "step": step}, best=best)

    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == ["best.pt", "last.pt", "step-000000040.pt", "step-000000050.pt"]
    assert load_checkpoint(folder.last)["step"] == 50
    assert load_checkpoint(folder.best)["step"] == 40
    assert torch.equal(load_checkpoint(folder.best)["model"]["w"], torch.tensor([40.0]))


def test_checkpoint_folder_falls_back_to_an_older_good_file(tmp_path: Path) -> None:
    folder = CheckpointFolder(tmp_path, keep_last=3)
    for step in (1, 2):
        folder.save({"model": {}, "step": step})
    folder.last.unlink()
    folder.last.write_bytes(b"truncated")  # a crash mid-copy, say
    path, state = folder.newest_good()
    assert state["step"] == 2 and path.name == "step-000000002.pt"


# --- flatten -------------------------------------------------------------------------------


def test_flatten_joins_nested_keys_with_dots() -> None:
    config = {
        "seed": 0,
        "optimizer": {"name": "adam", "lr": 0.001, "betas": [0.9, 0.999]},
        "trainer": {"max_epochs": 2, "nested": {"deeper": True}},
        "regularizer": {},
        "tracking": {"run_name": None},
    }
    assert flatten(config) == {
        "seed": 0,
        "optimizer.name": "adam",
        "optimizer.lr": 0.001,
        "optimizer.betas": [0.9, 0.999],
        "trainer.max_epochs": 2,
        "trainer.nested.deeper": True,
        "regularizer": {},
        "tracking.run_name": None,
    }


def test_flatten_with_prefix_and_empty_input() -> None:
    assert flatten({}) == {}
    assert flatten({"a": {"b": 1}}, prefix="cfg.") == {"cfg.a.b": 1}


def test_flatten_of_the_real_config_keeps_every_leaf(cfg_train: DictConfig) -> None:
    from omegaconf import OmegaConf

    plain = OmegaConf.to_container(cfg_train, resolve=True)
    assert isinstance(plain, dict)
    flat = flatten(plain)
    assert flat["optimizer.lr"] == cfg_train.optimizer.lr
    assert flat["trainer.batch_size"] == cfg_train.trainer.batch_size
    assert not any(isinstance(v, dict) and v for v in flat.values())

    def leaves(node: object) -> int:
        if isinstance(node, dict) and node:
            return sum(leaves(v) for v in node.values())
        return 1

    assert len(flat) == leaves(plain)


# --- the loop's bookkeeping, in-process -----------------------------------------------------


def test_loop_logs_every_step_once_whatever_the_flush_cadence(
    make_cfg: Callable[..., DictConfig], tmp_path: Path
) -> None:
    cfg = make_cfg("dataset=moons", "dataset.n_samples=200", "trainer.batch_size=16")
    cfg.trainer.max_epochs = 3
    cfg.trainer.log_every_n_steps = 4  # does not divide the 10 steps of an epoch
    recipe = TrainingRecipe(cfg, JobContext())
    recipe.setup()
    tracker = NullTracker(tmp_path)
    progress = recipe.train(tracker, EpochListener())

    per_epoch = math.ceil(160 / 16)
    assert progress.step == 3 * per_epoch
    for name in ("train/loss", "train/lr", "train/grad_norm"):
        steps = sorted(step for key, _, step in tracker.metrics if key == name)
        assert steps == list(range(1, 3 * per_epoch + 1)), name
    epochs = [(step, value) for key, value, step in tracker.metrics if key == "epoch"]
    assert epochs == [(per_epoch * e, float(e)) for e in (1, 2, 3)]
    # The epoch's train loss is the mean of its per-step losses.
    first = [v for key, v, step in tracker.metrics if key == "train/loss" and step <= per_epoch]
    assert progress.history[0]["train/epoch_loss"] == pytest.approx(sum(first) / len(first))


def test_checkpoints_written_by_a_recipe_resume_the_same_model(
    make_cfg: Callable[..., DictConfig], tmp_path: Path
) -> None:
    cfg = make_cfg("dataset=moons", "dataset.n_samples=200")
    cfg.trainer.checkpoint = True
    recipe = TrainingRecipe(cfg, JobContext())
    recipe.setup()
    recipe.train(NullTracker(tmp_path), EpochListener())
    names = {p.name for p in tmp_path.iterdir()}
    assert {"best.pt", "last.pt"} <= names
    assert all(n in ("best.pt", "last.pt") or n.startswith("step-") for n in names), names
    state = torch.load(tmp_path / "last.pt", weights_only=True)
    for key, tensor in recipe.parts.model.state_dict().items():
        assert torch.equal(state["model"][key], tensor)
    assert state["epoch"] == 1
    assert state["config"]["dataset"]["name"] == "moons"
    assert os.path.getsize(tmp_path / "best.pt") > 0


# --- run names -------------------------------------------------------------------------------


def test_run_names_drop_hydra_escapes_and_plumbing() -> None:
    from trainlab.tracking.run_tags import run_name_from

    overrides = [
        "optimizer=adam",
        "optimizer.lr=0.01",
        r"tracking.uri=sqlite\:////tmp/x/mlflow.db",
        "trainer.progress=none",
        r"model.hidden_sizes=[64\,64]",
    ]
    assert run_name_from(overrides) == "optimizer=adam optimizer.lr=0.01 model.hidden_sizes=[64,64]"
    assert run_name_from(["tracking.experiment=x"]) is None
    # In a sweep only what it varies names a child.
    assert run_name_from(overrides, swept=["optimizer.lr"]) == "optimizer.lr=0.01"


def test_swept_keys_from_the_command_line_and_a_presets_params() -> None:
    from trainlab.tracking.run_tags import swept_keys

    overrides = [
        "optimizer=sgd,adam",
        "trainer.max_epochs=30",
        "seed=range(3)",
        "+model.width=choice(8,16)",
        r"tracking.uri=sqlite\:////tmp/x.db",
    ]
    declared = {"regularizer": "none,l2", "optimizer.lr": "interval(1e-4,1e-1)", "x": "1"}
    assert swept_keys(overrides, declared) == [
        "optimizer",
        "seed",
        "model.width",
        "regularizer",
        "optimizer.lr",
    ]
