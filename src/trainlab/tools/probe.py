"""One training step as the loop takes it — batch regularizers, precision, loss plus
penalties, backward, clipping, optimizer step, weight constraints — for the tools that probe
a configured run (lr-find, batch-size-find), and a way to undo what they did."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch


def training_step(
    parts: Any, controls: Any, features: torch.Tensor, targets: torch.Tensor
) -> torch.Tensor:
    """Forward, backward and update on one batch; returns the data loss (on the device)."""
    from trainlab.train.gradients import measure_and_clip
    from trainlab.train.loop import sum_penalties

    optimizer = parts.optimizer
    for transform in parts.batch_transforms:
        features, targets = transform(features, targets)
    optimizer.zero_grad(set_to_none=True)
    with controls.autocast():
        loss = parts.loss(parts.model(features), targets)
        penalty = sum_penalties(parts.penalties)
        objective = loss if penalty is None else loss + penalty
    objective.backward()
    grads = [p.grad for p in parts.model.parameters() if p.grad is not None]
    measure_and_clip(
        grads, controls.clip_grad_norm, controls.clip_grad_norm_type, controls.clip_grad_value
    )
    if torch.isfinite(loss.detach()).all() or controls.on_nonfinite != "skip":
        optimizer.step()
        for hook in parts.after_step:
            hook()
    return loss.detach()


@contextmanager
def restored(parts: Any) -> Iterator[None]:
    """Run the block, then put the model, the optimizer's state and every RNG back."""
    from trainlab.train.checkpoint import capture_rng_state, restore_rng_state

    model, optimizer = parts.model, parts.optimizer
    saved_model = copy.deepcopy(model.state_dict())
    saved_optimizer = copy.deepcopy(optimizer.state_dict())
    saved_rng = capture_rng_state()
    was_training = model.training
    try:
        model.train()
        yield
    finally:
        optimizer.zero_grad(set_to_none=True)
        model.load_state_dict(saved_model)
        optimizer.load_state_dict(saved_optimizer)
        restore_rng_state(saved_rng)
        model.train(was_training)


def endless_batches(batcher: Any) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """The batcher's epochs one after another, for as long as asked."""
    epoch = 0
    while True:
        yield from batcher.epoch(epoch)
        epoch += 1
