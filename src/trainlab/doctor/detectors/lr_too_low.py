"""``lr_too_low``: the loss barely moves yet keeps creeping down, and the optimizer changes
every layer by a tiny share of its size per step (well under 1e-4, where healthy runs sit
near 1e-3). Without the gradient monitor the steady creep alone is reported as a warning."""

from __future__ import annotations

import math

import numpy as np

from trainlab.doctor.findings import ERROR, WARNING, Finding
from trainlab.doctor.history import RunHistory
from trainlab.doctor.signals import fmt, learning_rate_range, loss_curve, reference_loss

CODE = "lr_too_low"
SMALL_PROGRESS = 0.2  # covered less than this share of the way from its start to zero
TINY_UPDATE = 1e-4  # the most-changed layer moved less than this share of its size per step
ADVICE = (
    "Raise the learning rate (10x at a time; `trainlab lr-find` measures where the loss falls "
    "fastest, or train with optimizer.lr=auto); with SGD add momentum (optimizer.momentum=0.9)."
)


def typical_update_ratio(run: RunHistory) -> float:
    """The most-changed layer's median update-to-weight ratio over the run."""
    gradients = run.gradients
    if gradients is None or gradients.samples == 0 or gradients.update_ratio.size == 0:
        return math.nan
    with np.errstate(all="ignore"):
        values = np.nanmedian(gradients.update_ratio, axis=1)
    values = values[np.isfinite(values)]
    return float(values.max()) if len(values) else math.nan


def detect(run: RunHistory) -> Finding | None:
    curve = loss_curve(run)
    if curve is None or curve.nonfinite_step is not None or len(curve.values) < 20:
        return None
    start = curve.initial
    reference = reference_loss(run, curve)
    progress = (start - curve.final) / start if start > 0 else math.nan
    if not math.isfinite(progress) or progress >= SMALL_PROGRESS:
        return None
    if curve.peak > 1.2 * max(start, reference):
        return None  # it rose: that is not a learning rate too small
    # Still creeping down: the second half ends lower than it began, in small steps.
    half = len(curve.smoothed) // 2
    still_falling = curve.smoothed[-1] < curve.smoothed[half] < curve.smoothed[curve.window]
    ratio = typical_update_ratio(run)
    _, peak_lr, _ = learning_rate_range(run)
    # A ratio of exactly 0 means no gradient reached the weights: not a step-size problem.
    tiny = math.isfinite(ratio) and 0 < ratio < TINY_UPDATE
    if math.isfinite(ratio) and not tiny:
        return None
    if math.isnan(ratio) and not still_falling:
        return None  # no gradient monitor: only the steady creep tells
    evidence = (
        f"the training loss went from {fmt(start)} to only {fmt(curve.final)} in "
        f"{curve.total_steps} steps ({fmt(100 * progress)}% lower)"
        + (" and was still falling at the end" if still_falling else "")
        + (f"; learning rate {fmt(peak_lr)}" if math.isfinite(peak_lr) else "")
    )
    if tiny:
        evidence += (
            f"; the most-changed layer moved by {fmt(ratio)} of its size per step "
            "(healthy: about 1e-3)"
        )
    return Finding(
        CODE,
        ERROR if tiny else WARNING,
        evidence + ".",
        ADVICE,
        {
            "initial_loss": start,
            "final_loss": curve.final,
            "progress": progress,
            "update_ratio": ratio,
            "still_falling": bool(still_falling),
            "peak_lr": peak_lr,
        },
    )
