"""The training-dynamics controls, each checked by what it does to a real run: clipping,
gradient accumulation, mixed precision, early stopping, the non-finite guard, the gradient
monitor, deterministic mode and SIGTERM.

Real parts only: the configs of ``conf/`` (``make_cfg``), the real recipe and loop, the real
MLflow sqlite store of the test's temp dir (or ``NullTracker`` for loop-only checks) and the real
CLI in a subprocess for the end-to-end behaviour. Every test fails if its control did nothing.
"""

from __future__ import annotations

import json
import logging
import math
import re
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import torch
from omegaconf import DictConfig
from torch import nn

from helpers import (
    all_runs,
    cli_command,
    cli_env,
    client_for,
    explain,
    metric_values,
    run_cli,
    sqlite_uri,
)
from trainlab.tracking.base import NullTracker
from trainlab.tracking.mlflow_tracker import MlflowTracker
from trainlab.tracking.store import local_artifact_dir
from trainlab.train.checkpoint import load_checkpoint
from trainlab.train.gradients import NonFiniteError, measure_and_clip
from trainlab.train.job import run_training, train_and_track
from trainlab.train.loop import EpochListener, Progress
from trainlab.train.recipe import JobContext, TrainingRecipe, precision_context
from trainlab.train.signals import STOP, TrainingInterrupted

ComposeFn = Callable[..., DictConfig]
Weights = dict[str, torch.Tensor]

# Only a guard against a hang; never a statement about speed.
HANG_GUARD_SECONDS = 600
DIGITS_STEPS_PER_EPOCH = 23  # 1437 training rows / batch 64
MONITOR_LOGGER = "trainlab.train.gradient_monitor"


@pytest.fixture(autouse=True)
def _restore_global_torch_modes() -> Iterator[None]:
    """``setup()`` switches process-wide torch modes (deterministic algorithms, anomaly
    detection); put them back so no other test inherits them."""
    deterministic = torch.are_deterministic_algorithms_enabled()
    anomaly = torch.is_anomaly_enabled()
    yield
    torch.use_deterministic_algorithms(deterministic)
    torch.autograd.set_detect_anomaly(anomaly)
    STOP.signum = None


def built(cfg: DictConfig) -> TrainingRecipe:
    recipe = TrainingRecipe(cfg, JobContext())
    recipe.setup()
    return recipe


def snapshot(model: nn.Module) -> Weights:
    return {name: tensor.detach().clone() for name, tensor in model.state_dict().items()}


def assert_same_weights(actual: Weights, expected: Weights, what: str) -> None:
    assert actual.keys() == expected.keys()
    for name in expected:
        assert torch.equal(actual[name], expected[name]), f"{name} differs from {what}"


def differs(first: Weights, second: Weights) -> bool:
    return any(not torch.equal(first[name], second[name]) for name in first)


def all_finite(weights: Weights) -> bool:
    return all(bool(torch.isfinite(t).all()) for t in weights.values() if t.is_floating_point())


def points(tracker: NullTracker, key: str) -> list[tuple[int, float]]:
    return sorted((step, value) for name, value, step in tracker.metrics if name == key)


def only_run_id(uri: str) -> str:
    runs = all_runs(uri)
    assert len(runs) == 1, [r.info.run_name for r in runs]
    return runs[0].info.run_id


def artifact_folder(uri: str, run_id: str) -> Path:
    folder = local_artifact_dir(client_for(uri).get_run(run_id).info.artifact_uri)
    assert folder is not None, "a local sqlite store keeps its artifacts on disk"
    return folder


def train_in_store(recipe: TrainingRecipe, uri: str) -> str:
    """Train a set-up recipe into a new run of the real MLflow store (as ``trainlab train``
    does after its setup); returns the run id."""
    tracker = MlflowTracker(uri=uri, experiment="controls", run_name=None, tags={})
    train_and_track(recipe, tracker)
    return tracker.run_id


# --- 1. clipping ----------------------------------------------------------------------------


def _model_with_gradients(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Linear(6, 5), nn.Tanh(), nn.Linear(5, 3))
    features, targets = torch.randn(32, 6), torch.randint(0, 3, (32,))
    (10 * nn.functional.cross_entropy(model(features), targets)).backward()
    return model


def _grads(model: nn.Module) -> list[torch.Tensor]:
    return [p.grad for p in model.parameters() if p.grad is not None]


@pytest.mark.parametrize("norm_type", [2.0, 1.0, math.inf], ids=["l2", "l1", "inf"])
@pytest.mark.parametrize("fraction", [0.3, 3.0], ids=["clipped", "within"])
def test_clip_by_norm_matches_torch(norm_type: float, fraction: float) -> None:
    ours, reference = _model_with_gradients(), _model_with_gradients()
    unclipped_norm = float(
        torch.linalg.vector_norm(
            torch.stack([torch.linalg.vector_norm(g, norm_type) for g in _grads(reference)]),
            norm_type,
        )
    )
    max_norm = fraction * unclipped_norm

    measure = measure_and_clip(_grads(ours), max_norm=max_norm, norm_type=norm_type)
    expected_total = nn.utils.clip_grad_norm_(reference.parameters(), max_norm, norm_type)

    torch.testing.assert_close(measure.total_norm, expected_total)
    for mine, theirs in zip(_grads(ours), _grads(reference), strict=True):
        torch.testing.assert_close(mine, theirs)
    assert measure.clipped is not None
    assert bool(measure.clipped) == (fraction < 1)
    if fraction < 1:  # the gradient really was scaled down to the limit
        after = torch.linalg.vector_norm(
            torch.stack([torch.linalg.vector_norm(g, norm_type) for g in _grads(ours)]), norm_type
        )
        assert float(after) == pytest.approx(max_norm, rel=1e-4)


def test_clip_by_value_matches_torch() -> None:
    ours, reference = _model_with_gradients(), _model_with_gradients()
    largest = max(float(g.abs().max()) for g in _grads(reference))
    value = 0.25 * largest

    measure = measure_and_clip(_grads(ours), clip_value=value)
    nn.utils.clip_grad_value_(reference.parameters(), value)

    for mine, theirs in zip(_grads(ours), _grads(reference), strict=True):
        torch.testing.assert_close(mine, theirs)
    assert max(float(g.abs().max()) for g in _grads(ours)) == pytest.approx(value)
    assert measure.clipped is not None and bool(measure.clipped)
    # Clipping by value alone leaves the reported (pre-clipping) norm alone.
    expected_norm = torch.linalg.vector_norm(
        torch.stack([torch.linalg.vector_norm(g) for g in _grads(_model_with_gradients())])
    )
    torch.testing.assert_close(measure.total_norm, expected_norm)


def test_clip_by_norm_then_value_matches_torch_in_that_order() -> None:
    ours, reference = _model_with_gradients(), _model_with_gradients()
    measure_and_clip(_grads(ours), max_norm=1.0, clip_value=0.05)
    nn.utils.clip_grad_norm_(reference.parameters(), 1.0)
    nn.utils.clip_grad_value_(reference.parameters(), 0.05)
    for mine, theirs in zip(_grads(ours), _grads(reference), strict=True):
        torch.testing.assert_close(mine, theirs)


def _one_sgd_step(make_cfg: ComposeFn, *overrides: str) -> tuple[Weights, Weights, NullTracker]:
    """One plain-SGD step (lr 1, one batch): the weights before and after, and the metrics."""
    cfg = make_cfg(
        "optimizer=sgd",
        "optimizer.momentum=0",
        "optimizer.lr=1.0",
        "trainer.limit_train_batches=1",
        *overrides,
    )
    recipe = built(cfg)
    before = snapshot(recipe.parts.model)
    tracker = NullTracker()
    progress = recipe.train(tracker, EpochListener())
    assert progress.step == 1
    return before, snapshot(recipe.parts.model), tracker


def test_loop_applies_the_clipped_gradient_by_norm(make_cfg: ComposeFn) -> None:
    limit = 0.05
    before, after, tracker = _one_sgd_step(make_cfg, f"trainer.clip_grad_norm={limit}")
    [(_, grad_norm)] = points(tracker, "train/grad_norm")
    assert grad_norm > 2 * limit, "the gradient must exceed the limit for this test to mean much"
    update = torch.linalg.vector_norm(torch.cat([(after[n] - before[n]).flatten() for n in after]))
    # SGD with lr 1: the update is the clipped gradient, whose norm is the limit.
    assert float(update) == pytest.approx(limit, rel=1e-3)


def test_loop_applies_the_clipped_gradient_by_value(make_cfg: ComposeFn) -> None:
    limit = 1e-3
    before, after, _ = _one_sgd_step(make_cfg, f"trainer.clip_grad_value={limit}")
    largest = max(float((after[n] - before[n]).abs().max()) for n in after)
    assert largest == pytest.approx(limit, rel=1e-3)


@pytest.mark.parametrize(
    ("max_norm", "expected"), [(0.01, 1.0), (1e6, 0.0)], ids=["tiny-limit", "huge-limit"]
)
def test_run_logs_the_fraction_of_clipped_steps(
    make_cfg: ComposeFn, tracking_uri: str, max_norm: float, expected: float
) -> None:
    cfg = make_cfg(f"trainer.clip_grad_norm={max_norm}")
    run_training(cfg, JobContext())
    client = client_for(tracking_uri)
    run_id = only_run_id(tracking_uri)
    assert client.get_run(run_id).info.status == "FINISHED"
    fractions = metric_values(client, run_id, "train/clip_fraction")
    assert len(fractions) == cfg.trainer.max_epochs
    assert fractions[-1] == pytest.approx(expected, abs=0.05)


# --- 2. gradient accumulation ---------------------------------------------------------------


def _sgd_run(make_cfg: ComposeFn, batch_size: int, accumulate: int, batches: int) -> Weights:
    cfg = make_cfg(
        "optimizer=sgd",
        "optimizer.momentum=0",
        "optimizer.lr=0.5",
        "model.dropout=0.0",
        "model.norm=none",
        f"trainer.batch_size={batch_size}",
        f"trainer.accumulate_grad_batches={accumulate}",
        f"trainer.limit_train_batches={batches}",  # the same first rows in the same order
    )
    recipe = built(cfg)
    progress = recipe.train(NullTracker(), EpochListener())
    assert progress.step == batches // accumulate
    return snapshot(recipe.parts.model)


def test_accumulating_four_batches_of_16_equals_one_batch_of_64(make_cfg: ComposeFn) -> None:
    """Two optimizer steps each way, same initial weights and data order, plain SGD."""
    accumulated = _sgd_run(make_cfg, batch_size=16, accumulate=4, batches=8)
    one_batch = _sgd_run(make_cfg, batch_size=64, accumulate=1, batches=2)
    for name in one_batch:
        torch.testing.assert_close(accumulated[name], one_batch[name], rtol=1e-5, atol=1e-6)
    # The same 8 small batches without accumulation take 8 different steps.
    every_batch = _sgd_run(make_cfg, batch_size=16, accumulate=1, batches=8)
    assert max(float((every_batch[n] - one_batch[n]).abs().max()) for n in one_batch) > 1e-3


@pytest.mark.parametrize("accumulate", [1, 3, 4])
def test_optimizer_steps_per_epoch_are_batches_over_k_rounded_up(
    make_cfg: ComposeFn, accumulate: int
) -> None:
    cfg = make_cfg(
        "dataset=moons",
        "dataset.n_samples=200",  # 160 training rows: 10 batches of 16
        "trainer.batch_size=16",
        f"trainer.accumulate_grad_batches={accumulate}",
    )
    cfg.trainer.max_epochs = 2
    recipe = built(cfg)
    batches = len(recipe.parts.batcher)
    assert batches == 10
    tracker = NullTracker()
    progress = recipe.train(tracker, EpochListener())
    per_epoch = math.ceil(batches / accumulate)
    assert progress.step == 2 * per_epoch
    assert [step for step, _ in points(tracker, "train/loss")] == list(range(1, 2 * per_epoch + 1))
    assert points(tracker, "epoch") == [(per_epoch, 1.0), (2 * per_epoch, 2.0)]


def test_per_step_schedule_follows_optimizer_steps_under_accumulation(
    make_cfg: ComposeFn,
) -> None:
    from trainlab.tools.schedule_plot import lr_curve

    cfg = make_cfg("scheduler=onecycle", "trainer.accumulate_grad_batches=4")
    cfg.trainer.max_epochs = 2
    tracker = NullTracker()
    built(cfg).train(tracker, EpochListener())
    used = [lr for _, lr in points(tracker, "train/lr")]
    planned = lr_curve(cfg, "onecycle").lrs  # what `trainlab plot-schedule` draws
    assert len(used) == len(planned)
    assert used == pytest.approx(planned, rel=1e-6)
    assert used[-1] < used[0]  # the cycle ends annealed below its start


def test_per_step_schedule_follows_optimizer_steps_without_accumulation(
    make_cfg: ComposeFn,
) -> None:
    """The control of the test above: with k=1 the loop's rates are the planned ones."""
    from trainlab.tools.schedule_plot import lr_curve

    cfg = make_cfg("scheduler=onecycle")
    cfg.trainer.max_epochs = 2
    tracker = NullTracker()
    built(cfg).train(tracker, EpochListener())
    used = [lr for _, lr in points(tracker, "train/lr")]
    assert used == pytest.approx(lr_curve(cfg, "onecycle").lrs, rel=1e-6)


# --- 3. precision ---------------------------------------------------------------------------


def test_bf16_context_runs_linear_layers_in_bfloat16() -> None:
    layer, features = nn.Linear(4, 3), torch.randn(2, 4)
    autocast, scaler = precision_context("bf16", torch.device("cpu"))
    assert scaler is None
    with autocast():
        assert layer(features).dtype == torch.bfloat16
    fp32, _ = precision_context("fp32", torch.device("cpu"))
    with fp32():
        assert layer(features).dtype == torch.float32


def test_bf16_run_trains_on_cpu_with_its_forward_in_bfloat16(make_cfg: ComposeFn) -> None:
    recipe = built(make_cfg("trainer.precision=bf16"))
    model = recipe.parts.model
    first_linear = next(m for m in model.modules() if isinstance(m, nn.Linear))
    seen: list[torch.dtype] = []

    def record(module: nn.Module, inputs: object, output: torch.Tensor) -> None:
        if module.training:
            seen.append(output.dtype)

    first_linear.register_forward_hook(record)
    before = snapshot(model)
    tracker = NullTracker()
    progress = recipe.train(tracker, EpochListener())

    assert seen and set(seen) == {torch.bfloat16}, set(seen)
    losses = [value for _, value in points(tracker, "train/loss")]
    assert len(losses) == progress.step and all(math.isfinite(v) for v in losses)
    assert losses[-1] < losses[0]
    after = snapshot(model)
    assert all_finite(after) and differs(before, after)
    assert all(t.dtype == torch.float32 for t in after.values())  # autocast, not .half()


@pytest.mark.parametrize("command", ["train", "validate"])
def test_fp16_on_a_cpu_only_machine_is_refused_with_exit_2(command: str, tmp_path: Path) -> None:
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA: fp16 is allowed here")
    uri = sqlite_uri(tmp_path)
    done = run_cli(command, "trainer.precision=fp16", f"tracking.uri={uri}", cwd=tmp_path)
    assert done.returncode == 2, explain(done)
    assert "trainer.precision" in done.stderr
    assert "Traceback" not in done.stderr
    assert not (tmp_path / "mlflow.db").exists() or not all_runs(uri)


# --- 4. early stopping ----------------------------------------------------------------------

# One batch of 64 digits with a large model and Adam at 0.01: the validation loss falls for a
# few epochs, then rises as the model memorises the batch.
OVERFITTING = (
    "trainer.limit_train_batches=1",
    "optimizer.lr=0.01",
    "trainer.early_stopping.enabled=true",
    "trainer.keep_last_checkpoints=1000",
    "trainer.checkpoint_min_interval_s=0",  # a checkpoint at every epoch end
)
MAX_EPOCHS = 40


def _overfitting_cfg(make_cfg: ComposeFn, *overrides: str) -> DictConfig:
    cfg = make_cfg(*OVERFITTING, *overrides)
    cfg.model.hidden_sizes = [128, 128]
    cfg.trainer.max_epochs = MAX_EPOCHS
    cfg.trainer.checkpoint = True
    return cfg


def test_early_stopping_ends_the_run_and_restores_the_best_weights(
    make_cfg: ComposeFn, tracking_uri: str
) -> None:
    recipe = built(_overfitting_cfg(make_cfg, "trainer.early_stopping.patience=1"))
    run_id = train_in_store(recipe, tracking_uri)
    stopping = recipe.early_stopping
    assert stopping is not None and stopping.stopped_epoch is not None, "it never stopped"
    client = client_for(tracking_uri)
    assert client.get_run(run_id).info.status == "FINISHED"

    epochs = metric_values(client, run_id, "epoch")
    assert epochs == [float(e) for e in range(1, stopping.stopped_epoch + 1)]
    assert len(epochs) < MAX_EPOCHS
    val_losses = metric_values(client, run_id, "val/loss")
    best_epoch = 1 + min(range(len(val_losses)), key=val_losses.__getitem__)
    assert stopping.best_epoch == best_epoch < stopping.stopped_epoch

    folder = artifact_folder(tracking_uri, run_id) / "checkpoints"
    best = load_checkpoint(folder / "best.pt")
    last = load_checkpoint(folder / "last.pt")
    assert best["epoch"] == best_epoch and last["epoch"] == stopping.stopped_epoch
    final = snapshot(recipe.parts.model)
    assert_same_weights(final, dict(best["model"]), "best.pt")
    assert stopping.best_weights is not None
    assert_same_weights(final, dict(stopping.best_weights), "the early-stopping best weights")
    assert differs(final, dict(last["model"])), "restore_best left the last epoch's weights"


@pytest.mark.parametrize("patience", [1, 2])
def test_early_stopping_stops_after_patience_epochs_without_improvement(
    make_cfg: ComposeFn, patience: int
) -> None:
    recipe = built(_overfitting_cfg(make_cfg, f"trainer.early_stopping.patience={patience}"))
    recipe.cfg.trainer.checkpoint = False
    recipe.train(NullTracker(), EpochListener())
    stopping = recipe.early_stopping
    assert stopping is not None and stopping.stopped_epoch is not None
    assert stopping.best_epoch is not None
    assert stopping.stopped_epoch - stopping.best_epoch == patience


class _InterruptAtFirstBadEpoch(EpochListener):
    """As a SIGTERM arriving after the first epoch that did not improve."""

    def on_epoch_end(self, progress: Progress, metrics: dict[str, float], improved: bool) -> None:
        if not improved:
            STOP.signum = signal.SIGTERM


def test_restore_best_survives_an_interruption_and_resume(
    make_cfg: ComposeFn, tmp_path: Path
) -> None:
    cfg = _overfitting_cfg(make_cfg, "trainer.early_stopping.patience=2")
    first = built(cfg)
    with pytest.raises(TrainingInterrupted):
        first.train(NullTracker(tmp_path / "first"), _InterruptAtFirstBadEpoch())
    STOP.signum = None
    interrupted_at = first.progress.epoch
    assert first.early_stopping is not None and first.early_stopping.stopped_epoch is None

    resumed = built(cfg)
    resumed.restore(load_checkpoint(tmp_path / "first" / "last.pt"))
    assert resumed.progress.epoch == interrupted_at
    resumed.train(NullTracker(tmp_path / "resumed"), EpochListener())
    stopping = resumed.early_stopping
    assert stopping is not None and stopping.stopped_epoch is not None
    best_epoch = resumed.progress.best_epoch
    assert best_epoch is not None
    step_file = f"step-{best_epoch:09d}.pt"  # one step per epoch
    folder = tmp_path / ("first" if best_epoch <= interrupted_at else "resumed")
    best = load_checkpoint(folder / step_file)
    assert_same_weights(snapshot(resumed.parts.model), dict(best["model"]), "the best epoch")


def test_epoch_end_checkpoints_are_throttled_and_best_pt_still_holds_the_best_epoch(
    make_cfg: ComposeFn, tmp_path: Path
) -> None:
    """With a long checkpoint_min_interval_s only the first epoch and the end are written;
    the best epoch, skipped on disk, is kept in memory and still lands in best.pt, equal to
    the best.pt of a run that checkpoints every epoch."""
    every_epoch = built(_overfitting_cfg(make_cfg))
    every_epoch.train(NullTracker(tmp_path / "every"), EpochListener())
    throttled = built(_overfitting_cfg(make_cfg, "trainer.checkpoint_min_interval_s=3600"))
    throttled.train(NullTracker(tmp_path / "throttled"), EpochListener())

    progress = throttled.progress
    assert progress.best_epoch is not None and 1 < progress.best_epoch < progress.epoch
    written = sorted(p.name for p in (tmp_path / "throttled").glob("step-*.pt"))
    assert written == [f"step-{1:09d}.pt", f"step-{progress.step:09d}.pt"]
    assert len(list((tmp_path / "every").glob("step-*.pt"))) == progress.epoch
    best = load_checkpoint(tmp_path / "throttled" / "best.pt")
    reference = load_checkpoint(tmp_path / "every" / "best.pt")
    assert best["epoch"] == reference["epoch"] == progress.best_epoch
    assert_same_weights(dict(best["model"]), dict(reference["model"]), "best.pt")
    last = load_checkpoint(tmp_path / "throttled" / "last.pt")
    assert last["step"] == progress.step, "the end of training is always written"


# --- 5. the non-finite guard ----------------------------------------------------------------


class Poison:
    """A batch transform: NaN in one feature of every ``every``-th batch (the first poisoned
    one is batch ``start``, by default batch ``every``)."""

    def __init__(self, every: int, start: int | None = None) -> None:
        self.every, self.start = every, every if start is None else start
        self.batches = 0
        self.poisoned_steps: list[int] = []

    def __call__(
        self, features: torch.Tensor, targets: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        self.batches += 1
        if self.batches >= self.start and (self.batches - self.start) % self.every == 0:
            self.poisoned_steps.append(self.batches)  # one batch per step (no accumulation)
            features = features.clone()
            features[0, 0] = float("nan")
        return features, targets


def _poisoned_recipe(make_cfg: ComposeFn, poison: Poison, *overrides: str) -> TrainingRecipe:
    cfg = make_cfg(*overrides)
    cfg.trainer.max_epochs = 2
    recipe = built(cfg)
    recipe.parts.batch_transforms.append(poison)
    return recipe


def test_skip_drops_exactly_the_poisoned_steps_and_keeps_the_rest(make_cfg: ComposeFn) -> None:
    poison = Poison(every=5)
    recipe = _poisoned_recipe(
        make_cfg, poison, "trainer.on_nonfinite=skip", "trainer.max_consecutive_skips=2"
    )
    before = snapshot(recipe.parts.model)
    tracker = NullTracker()
    progress = recipe.train(tracker, EpochListener())

    assert progress.epoch == 2 and progress.step == 2 * DIGITS_STEPS_PER_EPOCH
    assert poison.poisoned_steps == list(range(5, 2 * DIGITS_STEPS_PER_EPOCH + 1, 5))
    assert progress.skipped_steps == len(poison.poisoned_steps)
    skipped = points(tracker, "train/skipped_steps")
    ends = (DIGITS_STEPS_PER_EPOCH, 2 * DIGITS_STEPS_PER_EPOCH)
    assert skipped == [(end, float(sum(s <= end for s in poison.poisoned_steps))) for end in ends]
    # The non-finite steps are the poisoned ones, no more, no less.
    bad = [step for step, value in points(tracker, "train/loss") if not math.isfinite(value)]
    assert bad == poison.poisoned_steps
    after = snapshot(recipe.parts.model)
    assert all_finite(after)
    assert differs(before, after), "the healthy steps must still update the weights"


def test_skip_keeps_the_epoch_loss_the_mean_of_the_finite_step_losses(
    make_cfg: ComposeFn,
) -> None:
    poison = Poison(every=5)
    recipe = _poisoned_recipe(
        make_cfg, poison, "trainer.on_nonfinite=skip", "trainer.max_consecutive_skips=2"
    )
    tracker = NullTracker()
    progress = recipe.train(tracker, EpochListener())
    for epoch in (1, 2):
        per_epoch = DIGITS_STEPS_PER_EPOCH
        window = range((epoch - 1) * per_epoch + 1, epoch * per_epoch + 1)
        finite = [v for s, v in points(tracker, "train/loss") if s in window and math.isfinite(v)]
        assert progress.history[epoch - 1]["train/epoch_loss"] == pytest.approx(
            sum(finite) / len(finite)
        )


def test_skip_halts_after_max_consecutive_skips(make_cfg: ComposeFn) -> None:
    poison = Poison(every=1, start=3)  # steps 1 and 2 healthy, then every step bad
    recipe = _poisoned_recipe(
        make_cfg, poison, "trainer.on_nonfinite=skip", "trainer.max_consecutive_skips=3"
    )
    with pytest.raises(NonFiniteError, match="3 consecutive steps"):
        recipe.train(NullTracker(), EpochListener())
    assert recipe.progress.skipped_steps == 3
    assert recipe.progress.step == 4  # steps 1, 2 taken; 3, 4 skipped; the 5th halts
    assert all_finite(snapshot(recipe.parts.model))


def test_halt_names_the_first_poisoned_step(make_cfg: ComposeFn) -> None:
    poison = Poison(every=1000, start=5)
    recipe = _poisoned_recipe(make_cfg, poison)  # on_nonfinite=halt, the default
    tracker = NullTracker()
    with pytest.raises(NonFiniteError) as error:
        recipe.train(tracker, EpochListener())
    message = str(error.value)
    assert "at step 5;" in message
    layers = [name for name, _ in recipe.parts.model.named_parameters()]
    assert f"first layer with a non-finite gradient: {layers[0]};" in message
    last_finite = dict(points(tracker, "train/loss"))[4]
    assert f"last finite loss: {last_finite:.6g}." in message


@pytest.mark.slow
def test_divergence_halts_the_cli_run_and_reports_where(tmp_path: Path) -> None:
    uri = sqlite_uri(tmp_path)
    done = run_cli(
        "train",
        "optimizer=sgd",
        "optimizer.lr=1e8",
        "trainer.limit_train_batches=2",  # epoch 1 (2 steps) ends before the blow-up
        "trainer.max_epochs=5",
        "trainer.progress=plain",
        f"tracking.uri={uri}",
        cwd=tmp_path,
    )
    assert done.returncode == 1, explain(done)
    assert "Traceback" not in done.stderr
    run_id = only_run_id(uri)
    client = client_for(uri)
    assert client.get_run(run_id).info.status == "FAILED"
    artifacts = {a.path for a in client.list_artifacts(run_id)}
    assert "error.txt" in artifacts

    found = re.search(
        r"first non-finite loss or gradient was at step (\d+); first layer with a non-finite "
        r"gradient: (\S+); last finite loss: (\S+)\. Try",
        done.stderr,
    )
    assert found, explain(done)
    step, layer, last_loss = int(found[1]), found[2], found[3]
    history = {
        key: {m.step: m.value for m in client.get_metric_history(run_id, key)}
        for key in ("train/loss", "train/grad_norm")
    }
    first_bad = min(s for key in history for s, v in history[key].items() if not math.isfinite(v))
    assert step == first_bad
    assert last_loss == f"{history['train/loss'][step - 1]:.6g}"

    epochs = metric_values(client, run_id, "epoch")
    assert epochs, "the setup must finish an epoch before diverging"
    last = load_checkpoint(artifact_folder(uri, run_id) / "checkpoints" / "last.pt")
    assert layer in last["model"]
    assert last["epoch"] == len(epochs) and last["step"] < step
    assert all_finite(dict(last["model"]))


# --- 6. the gradient monitor ----------------------------------------------------------------


def test_run_logs_the_gradient_statistics_and_heatmap(
    make_cfg: ComposeFn, tracking_uri: str, tmp_path: Path
) -> None:
    cfg = make_cfg("trainer.gradient_monitor.every_n_steps=5")
    cfg.model.hidden_sizes = [32, 16]
    run_training(cfg, JobContext())
    client = client_for(tracking_uri)
    run_id = only_run_id(tracking_uri)
    listed = {a.path for a in client.list_artifacts(run_id, "gradients")}
    assert listed == {"gradients/gradients.json", "gradients/gradient_heatmap.png"}
    local = Path(client.download_artifacts(run_id, "gradients", str(tmp_path / "download")))
    data = json.loads((local / "gradients.json").read_text())
    assert (local / "gradient_heatmap.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    steps = [5, 10, 15, 20]  # one epoch of 23 steps, sampled every 5
    assert data["steps"] == steps
    # Linear-ReLU-Linear-ReLU-Linear: three weight matrices, two activations.
    assert data["layers"] == ["0", "2", "4"]
    assert data["activations"] == ["1", "3"]
    for key in ("grad_norm", "weight_norm", "update_ratio"):
        matrix = data[key]
        assert len(matrix) == 3 and all(len(row) == len(steps) for row in matrix), key
        assert all(v is not None and v > 0 for row in matrix for v in row), key
    dead = data["dead_fraction"]
    assert len(dead) == 2 and all(len(row) == len(steps) for row in dead)
    assert all(0.0 <= v <= 1.0 for row in dead for v in row)
    # The weights' gradient norms are part of the total norm the run logs per step.
    logged = {m.step: m.value for m in client.get_metric_history(run_id, "train/grad_norm")}
    for column, step in enumerate(steps):
        weights_only = math.sqrt(sum(row[column] ** 2 for row in data["grad_norm"]))
        assert 0.5 * logged[step] < weights_only <= logged[step] * (1 + 1e-5)


def _monitored(make_cfg: ComposeFn, *overrides: str) -> TrainingRecipe:
    return built(
        make_cfg(
            "trainer.gradient_monitor.every_n_steps=1",
            "trainer.log_every_n_steps=1",
            *overrides,
        )
    )


def test_saturating_deep_sigmoid_net_warns_of_vanishing_gradients(
    make_cfg: ComposeFn, caplog: pytest.LogCaptureFixture
) -> None:
    cfg = make_cfg("model.activation=sigmoid", "trainer.gradient_monitor.every_n_steps=1")
    cfg.model.hidden_sizes = [32] * 8
    recipe = built(cfg)
    with torch.no_grad():  # a tiny initialisation: every sigmoid sits at its flat middle
        for parameter in recipe.parts.model.parameters():
            parameter.mul_(0.01)
    with caplog.at_level(logging.WARNING, logger=MONITOR_LOGGER):
        recipe.train(NullTracker(), EpochListener())
    vanishing = [r.getMessage() for r in caplog.records if "vanishing" in r.getMessage()]
    assert vanishing, [r.getMessage() for r in caplog.records]
    # The layer furthest from the loss is named first.
    assert vanishing[0].startswith("vanishing gradients: layers 0,"), vanishing


def test_huge_lr_warns_of_exploding_gradients(
    make_cfg: ComposeFn, caplog: pytest.LogCaptureFixture
) -> None:
    recipe = _monitored(make_cfg, "optimizer=sgd", "optimizer.lr=1e8")
    with caplog.at_level(logging.WARNING, logger=MONITOR_LOGGER), pytest.raises(NonFiniteError):
        recipe.train(NullTracker(), EpochListener())
    messages = [r.getMessage() for r in caplog.records]
    assert any(m.startswith("exploding gradients: total norm") for m in messages), messages


def test_healthy_run_raises_no_gradient_warning(
    make_cfg: ComposeFn, caplog: pytest.LogCaptureFixture
) -> None:
    recipe = _monitored(make_cfg)
    with caplog.at_level(logging.WARNING, logger=MONITOR_LOGGER):
        recipe.train(NullTracker(), EpochListener())
    assert recipe.gradient_monitor is not None
    assert len(recipe.gradient_monitor.steps) == DIGITS_STEPS_PER_EPOCH
    assert not [r for r in caplog.records if r.name == MONITOR_LOGGER]


def test_gradient_monitor_under_gradient_accumulation(make_cfg: ComposeFn) -> None:
    # 23 batches per epoch in groups of 4: steps 1..5 take 4 micro-batches, step 6 takes 3.
    recipe = built(
        make_cfg("trainer.accumulate_grad_batches=4", "trainer.gradient_monitor.every_n_steps=2")
    )
    recipe.train(NullTracker(), EpochListener())
    monitor = recipe.gradient_monitor
    assert monitor is not None
    summary = monitor.summary()
    assert summary["steps"] == [2, 4, 6]
    assert len(summary["dead_fraction"]) == len(summary["activations"]) == 1


# --- 7. deterministic mode ------------------------------------------------------------------


def test_deterministic_switches_torch_to_deterministic_algorithms(make_cfg: ComposeFn) -> None:
    built(make_cfg("trainer.deterministic=true"))
    assert torch.are_deterministic_algorithms_enabled()
    built(make_cfg("trainer.deterministic=false"))
    assert not torch.are_deterministic_algorithms_enabled()


DETERMINISTIC_ARGS = (
    "trainer.deterministic=true",
    "trainer.max_epochs=2",
    "model.hidden_sizes=[32]",
    "model.dropout=0.2",  # random numbers every step
    "trainer.progress=plain",
)


@pytest.mark.slow
def test_two_deterministic_runs_end_bit_identical(tmp_path: Path) -> None:
    finals: list[Weights] = []
    losses: list[list[float]] = []
    for name in ("first", "second"):
        folder = tmp_path / name
        folder.mkdir()
        uri = sqlite_uri(folder)
        done = run_cli("train", *DETERMINISTIC_ARGS, f"tracking.uri={uri}", cwd=folder)
        assert done.returncode == 0, explain(done)
        run_id = only_run_id(uri)
        state = load_checkpoint(artifact_folder(uri, run_id) / "checkpoints" / "last.pt")
        assert state["step"] == 2 * DIGITS_STEPS_PER_EPOCH
        finals.append(dict(state["model"]))
        losses.append(metric_values(client_for(uri), run_id, "train/loss"))
    assert_same_weights(finals[1], finals[0], "the first run")
    assert losses[0] == losses[1]


# --- 8. SIGTERM -----------------------------------------------------------------------------


@pytest.mark.slow
def test_sigterm_leaves_a_safe_checkpoint_of_the_step_it_stopped_at(tmp_path: Path) -> None:
    uri = sqlite_uri(tmp_path)
    client = client_for(uri)
    client.search_experiments()  # create the tables before two processes use the file
    command = cli_command(
        "train", "trainer.max_epochs=100000", "trainer.log_every_n_steps=5", f"tracking.uri={uri}"
    )
    with (tmp_path / "stderr.txt").open("wb") as err:
        process = subprocess.Popen(
            command, cwd=tmp_path, env=cli_env(), stdout=subprocess.DEVNULL, stderr=err
        )
        try:
            run_id = None
            while process.poll() is None:  # wait until training has taken steps
                runs = [r for r in all_runs(uri) if r.info.status == "RUNNING"]
                if runs and client.get_metric_history(runs[0].info.run_id, "train/loss"):
                    run_id = runs[0].info.run_id
                    break
                time.sleep(0.5)
            assert run_id is not None, f"trainlab exited with {process.returncode} first"
            process.send_signal(signal.SIGTERM)
            code = process.wait(timeout=HANG_GUARD_SECONDS)
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()
    errors = (tmp_path / "stderr.txt").read_text()
    assert code == 143, errors[-3000:]
    assert client.get_run(run_id).info.status == "KILLED"

    path = artifact_folder(uri, run_id) / "checkpoints" / "last.pt"
    state = torch.load(path, weights_only=True)
    logged_steps = [m.step for m in client.get_metric_history(run_id, "train/loss")]
    assert state["step"] > 0
    assert state["step"] == max(logged_steps)  # the step it stopped at, all of it recorded
    position = state["progress"]
    assert position["step"] == state["step"]
    assert position["epoch"] * DIGITS_STEPS_PER_EPOCH + position["batch_in_epoch"] == state["step"]
    assert all_finite(dict(state["model"]))


# --- helpers' own sanity --------------------------------------------------------------------


def test_poison_marks_the_steps_it_poisons() -> None:
    poison = Poison(every=5)
    features, targets = torch.zeros(2, 3), torch.zeros(2)
    bad = []
    for step in range(1, 12):
        out, _ = poison(features, targets)
        if torch.isnan(out).any():
            bad.append(step)
    assert bad == poison.poisoned_steps == [5, 10]
    assert not torch.isnan(features).any()  # the original batch is left alone
