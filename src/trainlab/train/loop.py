"""The training loop, one page: forward, loss + penalties, backward, measure, step, schedule,
record. Per-step numbers stay on the device; they are turned into floats and handed to the
tracker every ``log_every_n_steps`` steps and at each epoch's end."""

from __future__ import annotations

import math
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from trainlab.data.batcher import InMemoryBatcher
from trainlab.losses import Loss
from trainlab.metrics import compute_metrics
from trainlab.optim.schedulers import LRSchedule
from trainlab.regularizers import WeightPenalty
from trainlab.tracking.base import Tracker
from trainlab.train.curriculum import Curriculum
from trainlab.train.distributed import Collective, shard_sizes
from trainlab.train.gradient_monitor import GradientMonitor
from trainlab.train.gradients import NonFiniteError, describe_nonfinite, measure_and_clip
from trainlab.train.signals import STOP, TrainingInterrupted
from trainlab.train.step_metrics import Drained, StepMetrics


@dataclass
class TrainingParts:
    """Everything the loop uses, built by the recipe."""

    model: nn.Module
    loss: Loss
    penalties: list[WeightPenalty]
    optimizer: torch.optim.Optimizer
    schedule: LRSchedule
    batcher: InMemoryBatcher
    val_features: torch.Tensor
    val_targets: torch.Tensor  # typed for the loss
    val_labels: torch.Tensor  # typed for the metrics (int64 classes or float targets)
    task: str
    num_classes: int
    # Regularizers that act on the training batch (noise, mixup) or after each update
    # (weight constraints); empty for most runs.
    batch_transforms: list[
        Callable[[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]
    ] = field(default_factory=list)
    after_step: list[Callable[[], None]] = field(default_factory=list)
    # Data-parallel runs: the DistributedDataParallel wrapper the training forward goes
    # through (``model`` stays the plain module: its state dict, evaluation, the monitor),
    # and its ``no_sync`` for micro-batches that only accumulate.
    training_model: nn.Module | None = None
    no_sync: Callable[[], AbstractContextManager[Any]] = nullcontext
    curriculum: Curriculum | None = None  # which rows each epoch draws from (easy first)


@dataclass
class Progress:
    """Where the run is, and its best epoch so far."""

    epoch: int = 0  # epochs completed
    step: int = 0  # optimizer steps taken (skipped ones included)
    batch_in_epoch: int = 0  # batches of the current epoch done (resuming mid-epoch)
    best_value: float | None = None
    best_epoch: int | None = None
    skipped_steps: int = 0
    clipped_steps: int = 0
    stop_requested: bool = False  # set by a listener (early stopping)
    epoch_losses: list[float] = field(default_factory=list)  # this epoch's step losses so far
    history: list[dict[str, float]] = field(default_factory=list)


@dataclass
class StepControls:
    """How each optimizer step is taken (from ``trainer.*``)."""

    accumulate_grad_batches: int = 1
    clip_grad_norm: float | None = None
    clip_grad_norm_type: float = 2.0
    clip_grad_value: float | None = None
    on_nonfinite: str = "halt"
    max_consecutive_skips: int = 10
    autocast: Callable[[], AbstractContextManager[Any]] = nullcontext
    scaler: Any = None  # torch.amp.GradScaler for fp16
    gradient_monitor: GradientMonitor | None = None
    checkpoint_every_n_steps: int = 0  # mid-epoch checkpoints (0: only at epoch ends)
    # Several processes (trainer.strategy=ddp): metrics, stop signals and validation outputs
    # are combined across ranks at the flushes; None in one process.
    collective: Collective | None = None


class EpochListener:
    """What the loop tells the outside world (display, checkpoints); each may ignore it."""

    def on_steps(self, step: int, loss: float, lr: float) -> None: ...

    def on_epoch_end(
        self, progress: Progress, metrics: dict[str, float], improved: bool
    ) -> None: ...

    def on_checkpoint(self, progress: Progress) -> None:
        """A mid-epoch point to save (``trainer.checkpoint_every_n_steps``)."""

    def on_train_end(self, progress: Progress) -> None: ...


def sum_penalties(penalties: list[WeightPenalty]) -> torch.Tensor | None:
    """The regularization penalties of this step added up, or None without any."""
    if not penalties:
        return None
    total = penalties[0]()
    for penalty in penalties[1:]:
        total = total + penalty()
    return total


def fit(
    parts: TrainingParts,
    max_epochs: int,
    log_every_n_steps: int,
    is_better: Callable[[float, float | None], bool],
    monitor: str,
    tracker: Tracker,
    listener: EpochListener,
    progress: Progress,
    eval_batch_size: int = 1024,
    controls: StepControls | None = None,
) -> Progress:
    """Train from ``progress`` to ``max_epochs``; returns the final progress."""
    controls = controls or StepControls()
    model, optimizer, schedule = parts.model, parts.optimizer, parts.schedule
    scaler = controls.scaler
    named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    parameters = [p for _, p in named]
    accumulate = controls.accumulate_grad_batches
    skip_nonfinite = controls.on_nonfinite == "skip"
    grad_monitor = controls.gradient_monitor
    collective = controls.collective
    forward_model = parts.training_model or model
    buffer = StepMetrics(
        controls.clip_grad_norm_type, None if collective is None else collective.mean
    )
    last_finite_loss: list[float | None] = [None]
    consecutive_skips = 0
    clipped_count = torch.tensor(progress.clipped_steps, dtype=torch.int64)

    def publish() -> None:
        drained = buffer.drain_checked()  # averaged over the ranks in a data-parallel run
        # Ranks stop together: a signal any of them got is agreed on here, at a flush every
        # rank reaches at the same step (a per-step check would need a per-step sync).
        agreed_stop = None if collective is None else collective.stop_signal(STOP.signum)
        if drained.points:
            record(drained)
        if agreed_stop is not None:
            raise TrainingInterrupted(agreed_stop)

    def record(drained: Drained) -> None:
        epoch_losses = progress.epoch_losses
        points, nonfinite_step = drained.points, drained.nonfinite_step
        tracker.log_metrics(points)
        losses = [(step, value) for name, value, step in points if name == "train/loss"]
        for step, value in losses:
            if nonfinite_step is not None and step >= nonfinite_step and not skip_nonfinite:
                break  # halting: nothing from the first bad step on counts
            if not math.isfinite(value):
                continue  # a skipped step does not enter the epoch's mean
            last_finite_loss[0] = value
            epoch_losses.append(value)
        halting = nonfinite_step is not None and not skip_nonfinite
        if grad_monitor is not None:  # before a halt, so its warning shows what blew up
            grad_monitor.check(at_once=halting)
        if halting and nonfinite_step is not None:
            names = [n for n, p in named if p.grad is not None] or [n for n, _ in named]
            raise NonFiniteError(
                describe_nonfinite(
                    nonfinite_step,
                    drained.nonfinite_parameter_norms,
                    names,
                    last_finite_loss[0],
                )
            )
        if controls.clip_grad_norm is not None or controls.clip_grad_value is not None:
            progress.clipped_steps = int(clipped_count)
        last_lr = next(value for name, value, _ in reversed(points) if name == "train/lr")
        listener.on_steps(losses[-1][0], losses[-1][1], last_lr)

    def all_finite(value: torch.Tensor) -> bool:
        if collective is None:
            return bool(torch.isfinite(value))
        return collective.all_finite(value)

    optimizer.zero_grad(set_to_none=True)
    for epoch in range(progress.epoch, max_epochs):
        curriculum_fraction = (
            None if parts.curriculum is None else parts.curriculum.begin_epoch(epoch)
        )
        model.train()
        if progress.batch_in_epoch == 0:
            progress.epoch_losses = []
        micro_losses: list[torch.Tensor] = []
        batches = parts.batcher.epoch(epoch, start_batch=progress.batch_in_epoch)
        last_batch = len(parts.batcher) - 1
        for batch_index, (features, targets) in enumerate(batches, progress.batch_in_epoch):
            for transform in parts.batch_transforms:
                features, targets = transform(features, targets)
            sampling = grad_monitor is not None and grad_monitor.due(progress.step + 1)
            if sampling and not micro_losses:  # once per optimizer step, not per micro-batch
                grad_monitor.start()  # type: ignore[union-attr]
            steps_now = (batch_index + 1) % accumulate == 0 or batch_index == last_batch
            # Micro-batches that only accumulate skip DDP's gradient all-reduce (no_sync
            # must cover the backward); autocast covers the forward only, as torch advises.
            with nullcontext() if steps_now else parts.no_sync():
                with controls.autocast():
                    outputs = forward_model(features)
                    loss = parts.loss(outputs, targets)
                    share = parts.batcher.loss_scale(batch_index)  # 1.0 unless shards differ
                    if share != 1.0:
                        loss = loss * share
                    penalty = sum_penalties(parts.penalties)
                    objective = loss if penalty is None else loss + penalty
                if accumulate > 1:
                    objective = objective / accumulate
                (objective if scaler is None else scaler.scale(objective)).backward()
            progress.batch_in_epoch = batch_index + 1
            micro_losses.append(loss.detach())
            if not steps_now:
                continue  # keep accumulating gradients

            if scaler is not None:
                scaler.unscale_(optimizer)
            grads = [p.grad for p in parameters if p.grad is not None]
            measure = measure_and_clip(
                grads,
                controls.clip_grad_norm,
                controls.clip_grad_norm_type,
                controls.clip_grad_value,
                need_total=skip_nonfinite,
            )
            step_loss = (
                micro_losses[0] if len(micro_losses) == 1 else torch.stack(micro_losses).mean()
            )
            micro_losses = []
            if measure.clipped is not None:
                clipped_count += measure.clipped
            lr = optimizer.param_groups[0]["lr"]  # the rate this step uses
            if sampling:
                grad_monitor.before_update(progress.step + 1)  # type: ignore[union-attr]
            # skip mode checks every step (one host sync); halt mode checks at each flush.
            if skip_nonfinite and not all_finite(measure.total_norm + step_loss):
                progress.skipped_steps += 1
                consecutive_skips += 1
                if consecutive_skips >= controls.max_consecutive_skips:
                    raise NonFiniteError(
                        f"{consecutive_skips} consecutive steps had a non-finite loss or "
                        f"gradient (up to step {progress.step + 1}); halting. Try a lower "
                        "optimizer.lr or trainer.clip_grad_norm=1.0."
                    )
                if scaler is not None:
                    scaler.update()
            else:
                consecutive_skips = 0
                if scaler is None:
                    optimizer.step()
                else:
                    scaler.step(optimizer)
                    scaler.update()
                for hook in parts.after_step:
                    hook()
            if sampling:
                grad_monitor.after_update()  # type: ignore[union-attr]
            optimizer.zero_grad(set_to_none=True)
            schedule.after_batch()
            progress.step += 1
            buffer.record(
                progress.step,
                step_loss,
                measure.computed_total,  # None: computed at the flush, with the others
                lr,
                None if penalty is None else penalty.detach(),
                measure.parameter_norm_list,
            )
            if len(buffer) >= log_every_n_steps:
                publish()
            every = controls.checkpoint_every_n_steps
            if every and progress.step % every == 0 and batch_index != last_batch:
                publish()  # metrics first: a checkpoint never runs ahead of the store
                listener.on_checkpoint(progress)
            if collective is None and STOP.signum is not None:  # stop between two steps
                publish()
                raise TrainingInterrupted(STOP.signum)
        publish()

        metrics = evaluate(parts, eval_batch_size, collective)
        losses = progress.epoch_losses
        metrics["train/epoch_loss"] = sum(losses) / len(losses) if losses else float("nan")
        if controls.clip_grad_norm is not None or controls.clip_grad_value is not None:
            metrics["train/clip_fraction"] = progress.clipped_steps / max(1, progress.step)
        if skip_nonfinite:
            metrics["train/skipped_steps"] = float(progress.skipped_steps)
        if curriculum_fraction is not None:
            metrics["train/curriculum_fraction"] = curriculum_fraction
        progress.epoch, progress.batch_in_epoch = epoch + 1, 0
        schedule.after_epoch(metrics)
        value = metrics[monitor]
        improved = not math.isnan(value) and is_better(value, progress.best_value)
        if improved:
            progress.best_value, progress.best_epoch = value, progress.epoch
        progress.history.append({"epoch": float(progress.epoch), **metrics})
        tracker.log_metrics(
            [(name, v, progress.step) for name, v in metrics.items()]
            + [("epoch", float(progress.epoch), progress.step)]
        )
        listener.on_epoch_end(progress, metrics, improved)
        if progress.stop_requested:
            break
        if collective is None:  # several ranks agree on a stop at the next flush instead
            STOP.raise_if_set()
    listener.on_train_end(progress)
    return progress


@torch.no_grad()
def evaluate(
    parts: TrainingParts, batch_size: int, collective: Collective | None = None
) -> dict[str, float]:
    """Validation loss and task metrics over the whole validation split (one host sync).
    Metrics are computed whatever the outputs, and reported as NaN when the loss is not
    finite, rather than checked first (a second sync and two more ops per epoch).

    With several ranks each predicts its shard of the validation rows and the outputs are
    gathered, so every rank computes the same metrics over the whole split."""
    model = parts.model
    model.eval()
    features = parts.val_features
    if collective is not None:
        features = torch.tensor_split(features, collective.world_size)[collective.rank]
    outputs = torch.cat(
        [
            model(features[start : start + batch_size])
            for start in range(0, max(1, len(features)), batch_size)
        ]
    )
    if collective is not None:
        sizes = shard_sizes(len(parts.val_features), collective.world_size)
        outputs = collective.gather_rows(outputs, sizes)
    values: dict[str, torch.Tensor] = {"val/loss": parts.loss(outputs, parts.val_targets)}
    values.update(compute_metrics(outputs, parts.val_labels, parts.task, parts.num_classes))
    names = list(values)
    row = torch.stack([values[n].float() for n in names]).cpu().tolist()
    numbers = dict(zip(names, row, strict=True))
    if not math.isfinite(numbers["val/loss"]):
        # A diverged model: its metrics are undefined (not an error of the evaluation).
        numbers.update({name: math.nan for name in numbers if name != "val/loss"})
    return numbers
