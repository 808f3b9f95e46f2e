"""The training recipe: ``setup()`` builds every part from the config, ``train()`` runs the
loop, ``close()`` ends the MLflow run with the right status. The entry point is three lines.

Data is loaded and the model built *before* the MLflow run is created, so input that turns out
to be bad leaves no run behind.
"""

from __future__ import annotations

import dataclasses
import math
import random
import time
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf

from trainlab.data.batcher import InMemoryBatcher
from trainlab.data.prepared import split_for
from trainlab.data.profile import profile_split
from trainlab.losses import build_loss
from trainlab.metrics import mode_for
from trainlab.models import build_model
from trainlab.optim import build_optimizer, build_schedule
from trainlab.optim.optimizers import optimizer_kernel
from trainlab.optim.schedulers import RunLength
from trainlab.regularizers import RegularizerContext, build_regularization
from trainlab.tracking.base import Tracker
from trainlab.train.checkpoint import (
    BackgroundCheckpointWriter,
    CheckpointFolder,
    capture_rng_state,
    restore_rng_state,
    save_checkpoint,
)
from trainlab.train.curriculum import Curriculum, per_example_losses
from trainlab.train.distributed import (
    SINGLE_PROCESS,
    Collective,
    Launch,
    backend_name,
    device_for,
    rank_seed,
)
from trainlab.train.early_stopping import EarlyStopping
from trainlab.train.gradient_monitor import GradientMonitor
from trainlab.train.loop import EpochListener, Progress, StepControls, TrainingParts, fit

GRADIENT_ARTIFACTS = "trainlab.train.heatmap:write_artifacts"


@dataclass
class JobContext:
    """Facts about the job that are not in the config (who launched it and how)."""

    overrides: list[str] = field(default_factory=list)
    parent_run_id: str | None = None
    sweep_name: str | None = None  # the parent run's name, in a sweep
    swept: list[str] = field(default_factory=list)  # the keys the sweep varies
    command: str = ""
    threads: int = 0  # 0: leave torch's default
    launch: Launch = SINGLE_PROCESS  # this process's rank under torchrun (trainer.strategy)
    # In a Bayesian sweep: the job's Optuna trial (trainlab.sweeps.trial.TrialLink).
    trial: Any = None
    # A run this job continues instead of starting one (a resumed sweep, a requeued job).
    resume_run_id: str | None = None


@dataclass
class RunSummary:
    """What the final table shows."""

    run_id: str
    run_name: str
    experiment_id: str
    status: str
    epochs: int
    steps: int
    monitor: str
    best_value: float | None
    best_epoch: int | None
    final_metrics: dict[str, float]
    seconds: float
    tracking_uri: str


def pick_device(requested: str) -> torch.device:
    """``auto`` prefers CUDA, then Apple's MPS, then the CPU."""
    if requested != "auto":
        return torch.device(requested)
    if torch.cuda.is_available():
        return torch.device("cuda")
    if torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def precision_context(
    precision: str, device: torch.device
) -> tuple[Callable[[], AbstractContextManager[Any]], Any]:
    """The autocast context and gradient scaler for ``trainer.precision``: fp32 (neither),
    bf16 (autocast, no scaler needed) or fp16 (autocast plus a GradScaler; CUDA only)."""
    if precision == "fp32":
        return nullcontext, None
    if precision == "bf16":
        return partial(torch.autocast, device_type=device.type, dtype=torch.bfloat16), None
    if device.type != "cuda":
        raise ValueError("trainer.precision=fp16 needs a CUDA device; use bf16 on the CPU")
    scaler = torch.amp.GradScaler("cuda")
    return partial(torch.autocast, device_type="cuda", dtype=torch.float16), scaler


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def flatten(config: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"optimizer": {"lr": 0.1}}`` -> ``{"optimizer.lr": 0.1}`` (lists stay whole)."""
    flat: dict[str, Any] = {}
    for key, value in config.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            flat.update(flatten(value, f"{name}."))
        else:
            flat[name] = value
    return flat


class CheckpointWriter(EpochListener):
    """Checkpoints at epoch ends, every ``checkpoint_every_n_steps``, at the end of training
    and on interrupts; ``best.pt`` when the monitor improves. Written in the background after
    the metrics queued so far have reached the store, so a checkpoint never runs ahead of the
    recorded history.

    An epoch-end checkpoint is skipped when the last one is younger than
    ``trainer.checkpoint_min_interval_s``: twenty 1 MB writes a second (a small model's
    epochs) buy no safety and cost a tenth of the run. A skipped improvement is kept in memory
    (a snapshot of the full state) and written as ``best.pt`` with the next checkpoint, so
    ``best.pt`` always ends up holding the best epoch, in the same format as ``last.pt``."""

    def __init__(self, recipe: TrainingRecipe, tracker: Tracker) -> None:
        trainer = recipe.cfg.trainer
        self.recipe = recipe
        self.tracker = tracker
        self.folder = CheckpointFolder(tracker.checkpoint_dir(), trainer.keep_last_checkpoints)
        self.writer = BackgroundCheckpointWriter()
        self.min_interval_s = float(trainer.checkpoint_min_interval_s)
        self.last_written_at = -math.inf
        self.last_written_step = -1
        self.pending_best: dict[str, Any] | None = None  # an improvement not yet on disk

    def _submit(self, progress: Progress, best: bool) -> None:
        pending_best, self.pending_best = self.pending_best, None

        def write(state: dict[str, Any]) -> None:
            # The files are written while the metric sender stores the points queued so far;
            # each is renamed into place only once they are in the store.
            wait_for_store = self.tracker.request_flush()
            if pending_best is not None and not best:
                save_checkpoint(pending_best, self.folder.best, wait_for_store)
            self.folder.save(state, best=best, before_publish=wait_for_store)

        self.last_written_at, self.last_written_step = time.monotonic(), progress.step
        self.writer.submit(self.recipe.checkpoint_state(progress), write)

    def on_epoch_end(self, progress: Progress, metrics: dict[str, float], improved: bool) -> None:
        if time.monotonic() - self.last_written_at >= self.min_interval_s:
            self._submit(progress, best=improved)
        elif improved:
            self.pending_best = self.writer.snapshot(self.recipe.checkpoint_state(progress))

    def on_checkpoint(self, progress: Progress) -> None:
        self._submit(progress, best=False)

    def on_train_end(self, progress: Progress) -> None:
        if progress.step != self.last_written_step or self.pending_best is not None:
            self._submit(progress, best=False)

    def save_now(self, progress: Progress) -> None:
        """A checkpoint of the current state, on disk when this returns (interrupts)."""
        self._submit(progress, best=False)
        self.writer.wait()

    def close(self) -> None:
        """Wait until every checkpoint is on disk."""
        self.writer.close()


class Listeners(EpochListener):
    """Fans the loop's events out to several listeners, in order."""

    def __init__(self, *listeners: EpochListener) -> None:
        self.listeners = listeners

    def on_steps(self, step: int, loss: float, lr: float) -> None:
        for listener in self.listeners:
            listener.on_steps(step, loss, lr)

    def on_epoch_end(self, progress: Progress, metrics: dict[str, float], improved: bool) -> None:
        for listener in self.listeners:
            listener.on_epoch_end(progress, metrics, improved)

    def on_checkpoint(self, progress: Progress) -> None:
        for listener in self.listeners:
            listener.on_checkpoint(progress)

    def on_train_end(self, progress: Progress) -> None:
        # In reverse, as a teardown: the final checkpoint is taken before early stopping
        # puts the best weights back.
        for listener in reversed(self.listeners):
            listener.on_train_end(progress)


class TrainingRecipe:
    """Builds a run from a validated config and trains it."""

    def __init__(self, cfg: DictConfig, context: JobContext) -> None:
        self.cfg = cfg
        self.context = context
        self.config_dict: dict[str, Any] = OmegaConf.to_container(cfg, resolve=True)  # type: ignore[assignment]
        self.progress = Progress()
        self.gradient_monitor: GradientMonitor | None = None
        self.early_stopping: EarlyStopping | None = None
        self.checkpoints: CheckpointWriter | None = None
        self.scaler: Any = None
        self.run_id: str | None = None
        self.resumed_state: dict[str, Any] | None = None
        self.launch = context.launch
        self.collective: Collective | None = None  # set up with the device, in setup()
        # Listeners added by whoever runs the recipe (an Optuna trial's pruning reporter).
        self.listeners: list[EpochListener] = []

    def setup(self) -> None:
        """Seed, pick the device, load and split the data, build model/loss/optimizer/schedule."""
        cfg = self.cfg
        if self.context.threads > 0:
            torch.set_num_threads(self.context.threads)
        seed_everything(cfg.seed)
        # Deterministic kernels make a run repeatable bit for bit (and a resume exact). Only
        # called to change the setting: the call imports torch._inductor (~800 modules, 2-3 s
        # of every job's start, and of every worker of a parallel sweep).
        deterministic = bool(cfg.trainer.deterministic)
        if deterministic != torch.are_deterministic_algorithms_enabled() or (
            deterministic and torch.is_deterministic_algorithms_warn_only_enabled()
        ):
            torch.use_deterministic_algorithms(deterministic, warn_only=False)
        torch.autograd.set_detect_anomaly(bool(cfg.trainer.detect_anomaly))
        self.device = device_for(cfg.trainer.device, self.launch) or pick_device(cfg.trainer.device)
        if self.launch.distributed:
            self.collective = Collective(self.launch, self.device)
        split = split_for(cfg.dataset, cfg.seed)  # the same split as a sweep's earlier jobs
        self.info = split.info
        self.loss = build_loss(cfg.loss, split.info, split.train_targets)
        self.loss.module.to(self.device)
        # Scale, class balance and baseline loss, for the doctor (trainlab diagnose).
        self.data_profile = profile_split(split, self.loss)

        def tensor(array: np.ndarray, dtype: torch.dtype) -> torch.Tensor:
            return torch.as_tensor(array, dtype=dtype, device=self.device)

        label_dtype = torch.int64 if split.info.task == "classification" else torch.float32
        batcher = InMemoryBatcher(
            tensor(split.train_features, torch.float32),
            tensor(split.train_targets, self.loss.target_dtype),
            batch_size=cfg.trainer.batch_size,
            shuffle=True,
            seed=cfg.seed,
            limit_batches=cfg.trainer.limit_train_batches,
            rank=self.launch.rank,
            world_size=self.launch.world_size,
        )
        model = build_model(cfg.model, split.info.input_shape, self.loss.num_outputs)
        model.to(self.device)
        # Dropout layers, parametrizations: the model changes before it is compiled and
        # before the optimizer takes its parameters.
        self.regularization = build_regularization(
            cfg.regularizer, model, RegularizerContext.of(split.info)
        )
        if self.launch.distributed and self.device.type == "cuda":
            # Batch statistics over the global batch, as in one process (CUDA only).
            model = torch.nn.SyncBatchNorm.convert_sync_batchnorm(model)
        if cfg.trainer.compile:
            model.compile()  # in place: state_dict keys stay those of the plain module
        optimizer = build_optimizer(cfg.optimizer, model)
        training_model, no_sync = self._wrap_data_parallel(model)
        run_length = RunLength.from_batches(
            len(batcher), cfg.trainer.max_epochs, cfg.trainer.accumulate_grad_batches
        )
        self.parts = TrainingParts(
            model=model,
            loss=self.loss,
            penalties=self.regularization.penalties,
            optimizer=optimizer,
            schedule=build_schedule(cfg.scheduler, optimizer, run_length, cfg.trainer),
            batcher=batcher,
            val_features=tensor(split.val_features, torch.float32),
            val_targets=tensor(split.val_targets, self.loss.target_dtype),
            val_labels=tensor(split.val_targets, label_dtype),
            task=split.info.task,
            num_classes=split.info.num_classes,
            batch_transforms=self.regularization.batch_transforms,
            after_step=self.regularization.after_step,
            training_model=training_model,
            no_sync=no_sync,
        )
        self.parts.curriculum = self._build_curriculum(split.train_difficulty)
        self.monitor = str(cfg.trainer.monitor)
        self.mode = mode_for(self.monitor, cfg.trainer.mode)
        if self.launch.rank > 0:
            # The model is the same everywhere (DDP copied rank 0's); the random numbers
            # drawn from here on (dropout, noise) are each rank's own.
            seed_everything(rank_seed(cfg.seed, self.launch.rank))

    def _wrap_data_parallel(
        self, model: torch.nn.Module
    ) -> tuple[torch.nn.Module | None, Callable[[], AbstractContextManager[Any]]]:
        """The DistributedDataParallel wrapper and its ``no_sync`` (None and a no-op in one
        process). It starts by copying rank 0's weights and buffers to every rank."""
        if not self.launch.distributed:
            return None, nullcontext
        from torch.nn.parallel import DistributedDataParallel

        wrapper = DistributedDataParallel(
            model, device_ids=[self.device.index] if self.device.type == "cuda" else None
        )
        return wrapper, wrapper.no_sync

    def _build_curriculum(self, difficulty: np.ndarray | None) -> Curriculum | None:
        """The ``curriculum`` group's choice, or None for ``none``."""
        cfg = self.cfg.curriculum
        if cfg.name == "none":
            return None
        batcher = self.parts.batcher
        if cfg.name == "score":
            if difficulty is None:
                raise ValueError(f"dataset {self.cfg.dataset.name} provides no difficulty")
            scores = torch.as_tensor(difficulty, dtype=torch.float32)

            def score() -> torch.Tensor:
                return scores

        elif cfg.name == "loss":

            def score() -> torch.Tensor:
                return per_example_losses(
                    self.parts.model,
                    self.loss,
                    batcher.features,
                    batcher.targets,
                    int(self.cfg.trainer.eval_batch_size),
                )

        else:
            raise ValueError(f"unknown curriculum {cfg.name!r}; known: none, loss, score")
        collective = self.collective
        return Curriculum(
            batcher,
            score,
            start_fraction=float(cfg.start_fraction),
            pace=str(cfg.pace),
            pace_epochs=int(cfg.pace_epochs),
            pace_steps=int(cfg.pace_steps),
            warmup_epochs=int(cfg.warmup_epochs),
            share_scores=None if collective is None else collective.broadcast,
        )

    def is_better(self, value: float, best: float | None) -> bool:
        if best is None:
            return True
        return value < best if self.mode == "min" else value > best

    def record_config(self, tracker: Tracker) -> None:
        """Params (the flattened resolved config), the composed YAML and the overrides."""
        params = flatten(self.config_dict)
        params["model.num_parameters"] = sum(p.numel() for p in self.parts.model.parameters())
        params["loss.resolved"] = self.loss.name
        params["optimizer.kernel"] = optimizer_kernel(self.parts.optimizer)
        params["device"] = str(self.device)
        if self.launch.distributed:
            params["distributed.world_size"] = self.launch.world_size
            params["distributed.backend"] = backend_name()
            params["distributed.per_rank_batch_size"] = (
                int(self.cfg.trainer.batch_size) // self.launch.world_size
            )
        params["torch.num_threads"] = torch.get_num_threads()  # shared fairly in a sweep
        params.update(self.data_profile.as_params())
        tracker.log_params(params)
        tracker.log_text(OmegaConf.to_yaml(self.cfg, resolve=True), "config.yaml")
        tracker.log_text("\n".join(self.context.overrides) + "\n", "overrides.txt")

    def step_controls(self) -> StepControls:
        """Clipping, accumulation, precision, the non-finite policy and the gradient monitor,
        from ``trainer.*``."""
        trainer = self.cfg.trainer
        monitor_cfg = trainer.gradient_monitor
        self.gradient_monitor = (
            GradientMonitor(
                self.parts.model,
                every_n_steps=monitor_cfg.every_n_steps,
                vanishing_threshold=monitor_cfg.vanishing_threshold,
                exploding_threshold=monitor_cfg.exploding_threshold,
                warn_every_n_steps=monitor_cfg.warn_every_n_steps,
            )
            if monitor_cfg.every_n_steps > 0 and self.launch.is_main  # rank 0 records it
            else None
        )
        autocast, scaler = precision_context(trainer.precision, self.device)
        self.scaler = scaler
        return StepControls(
            accumulate_grad_batches=trainer.accumulate_grad_batches,
            clip_grad_norm=trainer.clip_grad_norm,
            clip_grad_norm_type=trainer.clip_grad_norm_type,
            clip_grad_value=trainer.clip_grad_value,
            on_nonfinite=trainer.on_nonfinite,
            max_consecutive_skips=trainer.max_consecutive_skips,
            autocast=autocast,
            scaler=scaler,
            gradient_monitor=self.gradient_monitor,
            checkpoint_every_n_steps=trainer.checkpoint_every_n_steps if trainer.checkpoint else 0,
            collective=self.collective,
        )

    def train(self, tracker: Tracker, display: EpochListener) -> Progress:
        trainer = self.cfg.trainer
        writes = trainer.checkpoint and self.launch.is_main  # rank 0 writes for every rank
        checkpoints = CheckpointWriter(self, tracker) if writes else None
        self.checkpoints = checkpoints
        listeners = [*self.listeners, display]
        if checkpoints is not None:
            listeners.insert(0, checkpoints)
        stopping = trainer.early_stopping
        if stopping.enabled:
            self.early_stopping = EarlyStopping(
                self.parts.model,
                monitor=stopping.monitor or self.monitor,
                mode=stopping.mode if stopping.monitor else self.mode,
                patience=stopping.patience,
                min_delta=stopping.min_delta,
                restore_best=stopping.restore_best,
            )
            listeners.insert(0, self.early_stopping)
            if self.resumed_state and self.resumed_state.get("early_stopping"):
                self.early_stopping.load_state_dict(self.resumed_state["early_stopping"])
        controls = self.step_controls()
        if self.resumed_state and self.scaler is not None and self.resumed_state.get("scaler"):
            self.scaler.load_state_dict(self.resumed_state["scaler"])
        try:
            return fit(
                self.parts,
                max_epochs=trainer.max_epochs,
                log_every_n_steps=trainer.log_every_n_steps,
                is_better=self.is_better,
                monitor=self.monitor,
                tracker=tracker,
                listener=Listeners(*listeners),
                progress=self.progress,
                eval_batch_size=trainer.eval_batch_size,
                controls=controls,
            )
        finally:
            # The drawing starts first: it overlaps with the last checkpoint writes.
            if self.gradient_monitor is not None and self.gradient_monitor.steps:
                tracker.log_rendered(
                    GRADIENT_ARTIFACTS, self.gradient_monitor.summary(), "gradients"
                )
            if checkpoints is not None:
                checkpoints.close()

    def checkpoint_state(self, progress: Progress) -> dict[str, Any]:
        """A plain dict: tensors and Python values only (loads with ``weights_only=True``)."""
        # Not dataclasses.asdict: it deep-copies the whole history on every checkpoint. The
        # history's rows are never changed once appended, so copying the lists is enough.
        position = {f.name: getattr(progress, f.name) for f in dataclasses.fields(progress)}
        position["history"] = list(progress.history)
        position["epoch_losses"] = list(progress.epoch_losses)
        return {
            "model": self.parts.model.state_dict(),
            "optimizer": self.parts.optimizer.state_dict(),
            "scheduler": self.parts.schedule.state_dict(),
            "scaler": None if self.scaler is None else self.scaler.state_dict(),
            "epoch": progress.epoch,
            "step": progress.step,
            "best": {
                "monitor": self.monitor,
                "value": progress.best_value,
                "epoch": progress.best_epoch,
            },
            "progress": position,
            "early_stopping": (
                None if self.early_stopping is None else self.early_stopping.state_dict()
            ),
            "rng": capture_rng_state(),
            "data_position": {"epoch": progress.epoch, "batch": progress.batch_in_epoch},
            "curriculum": (
                None if self.parts.curriculum is None else self.parts.curriculum.state_dict()
            ),
            "config": self.config_dict,
            "run_id": self.run_id,
        }

    def restore(self, state: dict[str, Any]) -> None:
        """Continue from ``state`` (after :meth:`setup`): weights, optimizer, schedule,
        counters, callback states and every RNG, so the run goes on exactly as it would have."""
        self.parts.model.load_state_dict(state["model"])
        self.parts.optimizer.load_state_dict(state["optimizer"])
        self.parts.schedule.load_state_dict(state["scheduler"])
        self.progress = Progress(**state["progress"])
        self.resumed_state = state
        if self.parts.curriculum is not None and state.get("curriculum"):
            self.parts.curriculum.load_state_dict(state["curriculum"])
        restore_rng_state(state["rng"])  # rank 0's: the only ones a checkpoint holds
        if self.launch.rank > 0:
            seed_everything(rank_seed(self.cfg.seed, self.launch.rank, self.progress.step))


def overfit_verdict(progress: Progress, threshold: float = 0.05) -> tuple[bool, str]:
    """Whether the model drove its training loss near zero (``trainer.overfit_check``): the
    first check of every guide. Passed when the last epoch's loss is below ``threshold`` times
    the first epoch's (or below 1e-3)."""
    losses = [row["train/epoch_loss"] for row in progress.history if "train/epoch_loss" in row]
    if not losses:
        return False, "overfit check: no epoch finished"
    first, last = losses[0], losses[-1]
    passed = math.isfinite(last) and (last < 1e-3 or last < threshold * first)
    verdict = "PASSED: the model can fit" if passed else "FAILED: the model cannot fit"
    advice = (
        ""
        if passed
        else (
            " Look for a bug in the data/labels or the loss, a learning rate far too low or too "
            "high, or a model too small; try `trainlab train debug=overfit_batch optimizer.lr=...`."
        )
    )
    return passed, (
        f"overfit check {verdict} these batches: training loss {first:.4g} -> {last:.4g} "
        f"over {len(losses)} epochs.{advice}"
    )


def summarize(recipe: TrainingRecipe, tracker: Any, status: str, started: float) -> RunSummary:
    """The numbers of the final table."""
    progress = recipe.progress
    final = progress.history[-1] if progress.history else {}
    return RunSummary(
        run_id=tracker.run_id,
        run_name=getattr(tracker, "run_name", tracker.run_id),
        experiment_id=getattr(tracker, "experiment_id", ""),
        status=status,
        epochs=progress.epoch,
        steps=progress.step,
        monitor=recipe.monitor,
        best_value=progress.best_value,
        best_epoch=progress.best_epoch,
        final_metrics={k: v for k, v in final.items() if k != "epoch" and not math.isnan(v)},
        seconds=time.monotonic() - started,
        tracking_uri=getattr(tracker, "uri", ""),
    )
