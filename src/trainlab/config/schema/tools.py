"""Schemas of the tools that probe a config before (or instead of) training it: the
learning-rate range test (``trainlab lr-find``, ``optimizer.lr=auto``) and the batch-size
finder (``trainlab batch-size-find``). Their keys are ordinary overrides:
``trainlab lr-find lr_find.num_steps=200 lr_find.end_lr=1``."""

from __future__ import annotations

from dataclasses import dataclass

from trainlab.config.constraints import at_least, constrained, non_negative, one_of, positive

LR_FIND_METHODS = ("valley", "steepest", "minimum")


@dataclass
class LrFindConfig:
    """The exponential learning-rate range test (Smith 2017; fastai's ``lr_find``)."""

    start_lr: float = positive(1e-7)
    end_lr: float = positive(10.0)
    num_steps: int = at_least(10, 100)  # more steps: a smoother curve, a longer test
    # Weight of the running average of the loss (bias-corrected): higher is smoother; the
    # stop reacts about 1 / (1 - smoothing) steps late (the suggestion's curve has no lag).
    smoothing: float = constrained(0.9, ge=0.0, lt=1.0)
    # Stop when the smoothed loss exceeds this multiple of its lowest value (it diverged).
    divergence_factor: float = constrained(4.0, gt=1.0)
    # How the suggestion is read off the curve: valley (the middle of the longest descent,
    # fastai's default), steepest (the fastest descent) or minimum (the lowest loss / 10).
    method: str = one_of("valley", *LR_FIND_METHODS)


@dataclass
class BatchSizeFindConfig:
    """Batch sizes in powers of two, each timed on the real training step."""

    min_batch_size: int = at_least(1, 8)
    max_batch_size: int | None = at_least(1, None, optional=True)  # None: the training rows
    steps: int = at_least(1, 20)  # optimizer steps per timed block
    # Timed blocks per batch size; the fastest counts (a block another process interrupted
    # is slower, never faster, so the best of several is the steadiest figure).
    repeats: int = at_least(1, 5)
    warmup_steps: int = non_negative(2)  # untimed steps first (allocator, caches)
    # Stop before a batch size whose peak memory exceeds this (MB); None: only an
    # out-of-memory error on a GPU stops the search.
    max_memory_mb: float | None = positive(None, optional=True)
    # Recommend the smallest batch size reaching this share of the best throughput.
    throughput_fraction: float = constrained(0.9, gt=0.0, le=1.0)
