"""The training loop, one page: forward, loss + penalties, backward, measure, step, schedule,
record. Per-step numbers stay on the device; they are turned into floats and handed to the
tracker every ``log_every_n_steps`` steps and at each epoch's end."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch import nn

from trainlab.data.batcher import InMemoryBatcher
from trainlab.losses import Loss
from trainlab.metrics import compute_metrics, metric_names
from trainlab.optim.schedulers import LRSchedule
from trainlab.regularizers import WeightPenalty
from trainlab.tracking.base import Tracker
from trainlab.train.step_metrics import StepMetrics


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


@dataclass
class Progress:
    """Where the run is, and its best epoch so far."""

    epoch: int = 0  # epochs completed
    step: int = 0  # optimizer steps taken
    best_value: float | None = None
    best_epoch: int | None = None
    history: list[dict[str, float]] = field(default_factory=list)


class EpochListener:
    """What the loop tells the outside world (display, checkpoints); each may ignore it."""

    def on_steps(self, step: int, loss: float, lr: float) -> None: ...

    def on_epoch_end(
        self, progress: Progress, metrics: dict[str, float], improved: bool
    ) -> None: ...


def sum_penalties(penalties: list[WeightPenalty]) -> torch.Tensor | None:
    """The regularization penalties of this step added up, or None without any."""
    if not penalties:
        return None
    total = penalties[0]()
    for penalty in penalties[1:]:
        total = total + penalty()
    return total


def global_grad_norm(parameters: list[nn.Parameter]) -> torch.Tensor:
    """The L2 norm of all gradients together, as a 0-d tensor on the device (no sync)."""
    grads = [p.grad for p in parameters if p.grad is not None]
    if not grads:
        return torch.zeros(())
    return torch.linalg.vector_norm(torch.stack(torch._foreach_norm(grads)))


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
) -> Progress:
    """Train from ``progress.epoch`` to ``max_epochs``; returns the final progress."""
    model, optimizer, schedule = parts.model, parts.optimizer, parts.schedule
    parameters = [p for p in model.parameters() if p.requires_grad]
    buffer = StepMetrics()

    def publish(epoch_losses: list[float]) -> None:
        points = buffer.drain()
        if not points:
            return
        tracker.log_metrics(points)
        losses = [value for name, value, _ in points if name == "train/loss"]
        epoch_losses.extend(losses)
        listener.on_steps(points[-1][2], losses[-1], points[-1][1])

    for epoch in range(progress.epoch, max_epochs):
        model.train()
        epoch_losses: list[float] = []
        for features, targets in parts.batcher.epoch(epoch):
            for transform in parts.batch_transforms:
                features, targets = transform(features, targets)
            outputs = model(features)
            loss = parts.loss(outputs, targets)
            penalty = sum_penalties(parts.penalties)
            objective = loss if penalty is None else loss + penalty
            optimizer.zero_grad(set_to_none=True)
            objective.backward()
            grad_norm = global_grad_norm(parameters)
            lr = optimizer.param_groups[0]["lr"]  # the rate this step uses
            optimizer.step()
            for hook in parts.after_step:
                hook()
            schedule.after_batch()
            progress.step += 1
            buffer.record(
                progress.step,
                loss.detach(),
                grad_norm,
                lr,
                None if penalty is None else penalty.detach(),
            )
            if len(buffer) >= log_every_n_steps:
                publish(epoch_losses)
        publish(epoch_losses)

        metrics = evaluate(parts, eval_batch_size)
        metrics["train/epoch_loss"] = sum(epoch_losses) / max(1, len(epoch_losses))
        progress.epoch = epoch + 1
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
    return progress


@torch.no_grad()
def evaluate(parts: TrainingParts, batch_size: int) -> dict[str, float]:
    """Validation loss and task metrics over the whole validation split (one host sync)."""
    model = parts.model
    model.eval()
    outputs = torch.cat(
        [
            model(parts.val_features[start : start + batch_size])
            for start in range(0, len(parts.val_features), batch_size)
        ]
    )
    values: dict[str, torch.Tensor] = {"val/loss": parts.loss(outputs, parts.val_targets)}
    if bool(torch.isfinite(outputs).all()):
        values.update(compute_metrics(outputs, parts.val_labels, parts.task, parts.num_classes))
    else:  # a diverged model: the metrics are undefined, not an error of the evaluation
        nan = torch.tensor(float("nan"))
        values.update(
            {
                name: nan
                for name in metric_names(parts.task, parts.num_classes)
                if name.startswith("val/") and name != "val/loss"
            }
        )
    names = list(values)
    numbers = torch.stack([values[n].float() for n in names]).cpu().tolist()
    return dict(zip(names, numbers, strict=True))
