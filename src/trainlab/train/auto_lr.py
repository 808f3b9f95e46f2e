"""``optimizer.lr=auto``: run the learning-rate range test on the configured run first, then
train with its suggestion. The suggestion becomes ``optimizer.lr`` in the config the run is
built from (so the schedule, the params and a resumed run all see the number); the run also
gets the param ``lr_find.suggested_lr``, the tag ``trainlab.lr=auto`` and the test's plot and
curve under ``lr_find/``."""

from __future__ import annotations

import sys
from typing import Any

from omegaconf import DictConfig


class LrFindError(ValueError):
    """The range test could not suggest a learning rate (it stopped after too few steps)."""


def resolve_auto_lr(cfg: DictConfig, context: Any, label: str = "") -> tuple[DictConfig, Any]:
    """(the config with the suggested lr, the range test's result)."""
    from trainlab.tools.lr_find import find_lr, with_lr

    try:
        _, result = find_lr(cfg, context)
    except ValueError as error:
        raise LrFindError(f"optimizer.lr=auto: {error}") from None
    prefix = f"[{label}] " if label else ""
    print(
        f"{prefix}optimizer.lr=auto: the range test suggests {result.suggestion.lr:.3g} "
        f"({result.suggestion.method}: {result.suggestion.explanation}).",
        file=sys.stderr,
        flush=True,
    )
    return with_lr(cfg, result.suggestion.lr), result


def record_auto_lr(tracker: Any, result: Any, cfg: DictConfig) -> None:
    """The test's suggestion, curve and plot in the training run."""
    from trainlab.tools.lr_find import log_result, plot_to_temp

    title = f"lr-find: {cfg.model.name} on {cfg.dataset.name}, {cfg.optimizer.name}"
    log_result(tracker, result, plot_to_temp(result, title))
    tracker.set_tags({"trainlab.lr": "auto"})
