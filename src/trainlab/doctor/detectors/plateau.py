"""``plateau``: the training loss sat still for a long stretch at a level well above where it
ends (a saddle the optimizer took long to leave), or stalled for the rest of the run after the
schedule had cut the learning rate to almost nothing. A stall while the learning rate is still
warming up is not a plateau (the steps are small on purpose)."""

from __future__ import annotations

import math

import numpy as np

from trainlab.doctor.findings import WARNING, Finding
from trainlab.doctor.history import RunHistory
from trainlab.doctor.signals import fmt, loss_curve, reference_loss

CODE = "plateau"
TOLERANCE = 0.03  # a stretch whose smoothed loss stays within 3% of its level is flat
MIN_SHARE = 0.2  # ... and it covers at least this share of the run
ESCAPE = 0.9  # escaped: the run ended below this share of the stall's level
DECAYED_LR = 0.01  # the learning rate under this share of its peak
MIN_EPOCHS = 3
ADVICE = (
    "A stall the optimizer escapes late is a saddle or a flat start: use momentum "
    "(optimizer=sgd optimizer.momentum=0.9, or adam), a larger learning rate early (scheduler="
    "onecycle), a non-saturating activation (relu, gelu) or an initialisation matched to it "
    "(model.init=kaiming_normal). A stall after the learning rate was cut: decay later or "
    "less (scheduler=cosine, or scheduler=plateau, which cuts only when progress stops)."
)


def longest_flat(values: np.ndarray, tolerance: float) -> tuple[int, int]:
    """(start, end) indices of the longest stretch within ``tolerance`` of its first value."""
    best = (0, 0)
    for start in range(len(values)):
        level = values[start]
        if not math.isfinite(level) or level <= 0:
            continue
        low, high = level * (1 - tolerance), level * (1 + tolerance)
        end = start
        while end + 1 < len(values) and low <= values[end + 1] <= high:
            end += 1
        if end - start > best[1] - best[0]:
            best = (start, end)
    return best


def detect(run: RunHistory) -> Finding | None:
    epoch_loss = run.get("train/epoch_loss")
    curve = loss_curve(run)
    finite = np.isfinite(epoch_loss.values)
    if curve is None or curve.nonfinite_step is not None or finite.sum() < MIN_EPOCHS + 2:
        return None
    # Epoch means: each already averages a whole epoch of batches, so a flat stretch is flat.
    values, steps = epoch_loss.values[finite], epoch_loss.steps[finite]
    start, end = longest_flat(values, TOLERANCE)
    share = (end - start) / max(1, len(values) - 1)
    if share < MIN_SHARE or end - start < MIN_EPOCHS:
        return None
    level = float(np.median(values[start : end + 1]))
    final = float(values[-1])
    reference = reference_loss(run, curve)
    lrs = run.get("train/lr")
    first_step = int(steps[start - 1]) + 1 if start > 0 else 1
    stall_lr, peak_lr = _lr_during(lrs.steps, lrs.values, first_step, int(steps[end]))
    details = {
        "stall_start_epoch": start + 1,
        "stall_end_epoch": end + 1,
        "stall_share": share,
        "stall_loss": level,
        "final_loss": final,
    }
    escaped = final < ESCAPE * level and level >= 0.2 * reference
    # The rate was at its working level throughout the stall (not warming up, not decayed).
    lowest_lr = _lowest_lr_during(lrs.steps, lrs.values, first_step, int(steps[end]))
    warm = math.isfinite(lowest_lr) and lowest_lr >= 0.3 * peak_lr
    if escaped and (warm or math.isnan(stall_lr)):
        return Finding(
            CODE,
            WARNING,
            f"the training loss stayed at {fmt(level)} from epoch {start + 1} to {end + 1} "
            f"({fmt(100 * share)}% of the run"
            + (
                f"; a constant prediction scores {fmt(reference)}"
                if math.isfinite(reference)
                else ""
            )
            + f") before falling to {fmt(final)}"
            + (f", with the learning rate at {fmt(stall_lr)}" if math.isfinite(stall_lr) else "")
            + ".",
            ADVICE,
            details,
        )
    reaches_end = end >= len(values) - 1
    decayed = math.isfinite(stall_lr) and stall_lr <= DECAYED_LR * peak_lr
    if reaches_end and decayed and share >= 2 * MIN_SHARE and level >= 0.05 * reference:
        return _after_decay(level, share, start + 1, stall_lr, peak_lr, details)
    return None


def _after_decay(
    level: float,
    share: float,
    since: int,
    stall_lr: float,
    peak_lr: float,
    details: dict[str, float],
) -> Finding:
    return Finding(
        CODE,
        WARNING,
        f"the training loss has not moved from {fmt(level)} since epoch {since} (the last "
        f"{fmt(100 * share)}% of the run), while the learning rate was down to {fmt(stall_lr)} "
        f"from a peak of {fmt(peak_lr)}.",
        ADVICE,
        {**details, "stall_lr": stall_lr, "peak_lr": peak_lr},
    )


def _lowest_lr_during(steps: np.ndarray, lrs: np.ndarray, first: int, last: int) -> float:
    inside = (steps >= first) & (steps <= last)
    return float(np.min(lrs[inside])) if inside.any() else math.nan


def _lr_during(steps: np.ndarray, lrs: np.ndarray, first: int, last: int) -> tuple[float, float]:
    if len(lrs) == 0:
        return math.nan, math.nan
    inside = (steps >= first) & (steps <= last)
    during = float(np.median(lrs[inside])) if inside.any() else math.nan
    return during, float(np.nanmax(lrs))
