"""Curriculum learning: each epoch draws its rows from the easiest share of the training set,
and the share grows from ``start_fraction`` to 1.0 along a pacing function.

An epoch keeps its number of batches: it makes passes over the easy pool (each in a fresh
order, a function of seed and epoch) until it has as many rows as the whole set. So schedules,
step counts and checkpoint positions mean what they mean without a curriculum, and the order
is reproducible: a resumed run sees the same batches.

The difficulty of each example is a score the dataset provides (``curriculum=score``) or its
loss under the model after the warm-up epochs (``curriculum=loss``), computed once, at the
start of the first curriculum epoch, and kept in checkpoints.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from trainlab.data.batcher import InMemoryBatcher
from trainlab.losses import Loss


def linear_pace(progress: float, start: float, steps: int) -> float:
    return start + (1.0 - start) * progress


def root_pace(progress: float, start: float, steps: int) -> float:
    """Fast at first, slower later (Platanios et al., 2019, competence-based curricula)."""
    return math.sqrt(start**2 + (1.0 - start**2) * progress)


def step_pace(progress: float, start: float, steps: int) -> float:
    """``steps`` equal jumps; the share stays put between them."""
    return start + (1.0 - start) * math.floor(progress * steps + 1e-9) / steps


def exponential_pace(progress: float, start: float, steps: int) -> float:
    """Geometric growth: slow at first, the same factor every epoch."""
    return float(start ** (1.0 - progress))


# pace name -> (progress in [0, 1], start fraction, pace_steps) -> fraction of the set
PACES: dict[str, Callable[[float, float, int], float]] = {
    "linear": linear_pace,
    "root": root_pace,
    "step": step_pace,
    "exponential": exponential_pace,
}


def pace_fraction(pace: str, epochs_in: int, pace_epochs: int, start: float, steps: int) -> float:
    """The share of the training set of the ``epochs_in``-th curriculum epoch (0-based)."""
    try:
        function = PACES[pace]
    except KeyError:
        raise ValueError(f"unknown pace {pace!r}; known: {', '.join(PACES)}") from None
    progress = min(1.0, max(0.0, epochs_in / pace_epochs))
    return min(1.0, function(progress, start, steps))


@torch.no_grad()
def per_example_losses(
    model: nn.Module, loss: Loss, features: torch.Tensor, targets: torch.Tensor, batch_size: int
) -> torch.Tensor:
    """Each example's loss under ``model`` (eval mode; the training loss, unreduced)."""
    model.eval()
    module = loss.module
    unreduced: nn.Module | None = None
    if isinstance(getattr(module, "reduction", None), str):  # torch's losses
        unreduced = copy.copy(module)
        unreduced.reduction = "none"  # type: ignore[assignment]
    values = []
    for start in range(0, len(features), batch_size):
        outputs = model(features[start : start + batch_size])
        batch_targets = targets[start : start + batch_size]
        if loss.squeeze_output:
            outputs = outputs.squeeze(-1)
        if unreduced is not None:
            value = unreduced(outputs, batch_targets)
            values.append(value.reshape(len(outputs), -1).mean(dim=1))
        else:  # a loss without a reduction switch: one example at a time
            values.append(
                torch.stack(
                    [
                        module(outputs[i : i + 1], batch_targets[i : i + 1])
                        for i in range(len(outputs))
                    ]
                )
            )
    return torch.cat(values).float()


class Curriculum:
    """Sets the batcher's pool at the start of every epoch and says which share it is."""

    def __init__(
        self,
        batcher: InMemoryBatcher,
        score: Callable[[], torch.Tensor],
        start_fraction: float,
        pace: str,
        pace_epochs: int,
        pace_steps: int = 4,
        warmup_epochs: int = 0,
        share_scores: Callable[[torch.Tensor], torch.Tensor] | None = None,
    ) -> None:
        if pace not in PACES:
            raise ValueError(f"unknown pace {pace!r}; known: {', '.join(PACES)}")
        self.batcher = batcher
        self.score = score
        self.start_fraction = start_fraction
        self.pace = pace
        self.pace_epochs = pace_epochs
        self.pace_steps = pace_steps
        self.warmup_epochs = warmup_epochs
        # Several ranks: rank 0's scores everywhere, so every rank draws the same pool.
        self.share_scores = share_scores
        self.scores: torch.Tensor | None = None  # higher: harder; one per training row
        self._ranking: torch.Tensor | None = None

    def fraction(self, epoch: int) -> float:
        """The share of the training set epoch ``epoch`` (0-based) draws from."""
        if epoch < self.warmup_epochs:
            return 1.0
        return pace_fraction(
            self.pace,
            epoch - self.warmup_epochs,
            self.pace_epochs,
            self.start_fraction,
            self.pace_steps,
        )

    def begin_epoch(self, epoch: int) -> float:
        """Point the batcher at this epoch's pool; returns the share (1.0: everything)."""
        fraction = self.fraction(epoch)
        if epoch < self.warmup_epochs:
            self.batcher.pool = None
            return fraction
        count = len(self.batcher.targets)
        size = max(1, math.ceil(fraction * count - 1e-9))
        if size >= count:
            self.batcher.pool = None  # the whole set, shuffled as without a curriculum
            return 1.0
        self.batcher.pool = self.ranking()[:size]
        return fraction

    def ranking(self) -> torch.Tensor:
        """Training rows from easiest to hardest (ties by row number)."""
        if self.scores is None:
            scores = self.score().detach().float().cpu()
            self.scores = scores if self.share_scores is None else self.share_scores(scores)
        if self._ranking is None:
            self._ranking = torch.sort(self.scores, stable=True).indices
        return self._ranking

    def state_dict(self) -> dict[str, Any]:
        """Plain values for the checkpoint: the scores once computed."""
        return {"scores": None if self.scores is None else self.scores.clone()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        scores = state.get("scores")
        self.scores = None if scores is None else scores.float().cpu()
        self._ranking = None
