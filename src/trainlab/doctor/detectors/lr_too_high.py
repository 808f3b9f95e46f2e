"""``lr_too_high``: the loss diverged (NaN or infinite), shot far above where it started, or
rose and never came back down. Steps that overshoot are the usual cause; the evidence adds the
update-to-weight ratio of the first sampled steps when the gradient monitor ran (healthy runs
change a layer by about 1e-3 of its size per step)."""

from __future__ import annotations

import math

import numpy as np

from trainlab.doctor.findings import ERROR, WARNING, Finding
from trainlab.doctor.history import RunHistory
from trainlab.doctor.signals import fmt, learning_rate_range, loss_curve, reference_loss

CODE = "lr_too_high"
RISE = 1.5  # the smoothed loss above this multiple of its start (or of the baseline): it rose
RECOVERED = 0.5  # ...and it recovered if it ended below this share of where it started
ADVICE = (
    "Lower the learning rate (3-10x; `trainlab lr-find` measures a good one, or train with "
    "optimizer.lr=auto), add a warm-up (scheduler.warmup_epochs=1), or clip gradients "
    "(trainer.clip_grad_norm=1.0)."
)


def early_update_ratio(run: RunHistory) -> float:
    """The largest layer's median update-to-weight ratio over the first tenth of samples."""
    gradients = run.gradients
    if gradients is None or gradients.samples == 0 or gradients.update_ratio.size == 0:
        return math.nan
    head = max(1, gradients.samples // 10)
    with np.errstate(all="ignore"):
        values = np.nanmedian(gradients.update_ratio[:, :head], axis=1)
    values = values[np.isfinite(values)]
    return float(values.max()) if len(values) else math.nan


def detect(run: RunHistory) -> Finding | None:
    curve = loss_curve(run)
    if curve is None:
        return None
    _, peak_lr, _ = learning_rate_range(run)
    ratio = early_update_ratio(run)
    steps_note = (
        f" The first sampled updates changed the weights by {fmt(ratio)} of their size per "
        "step (healthy: about 1e-3)."
        if math.isfinite(ratio) and ratio > 0.02
        else ""
    )
    lr_note = f" (learning rate {fmt(peak_lr)})" if math.isfinite(peak_lr) else ""
    details = {
        "initial_loss": curve.initial,
        "peak_loss": curve.peak,
        "peak_step": curve.peak_step,
        "final_loss": curve.final,
        "early_update_ratio": ratio,
        "peak_lr": peak_lr,
    }
    if curve.nonfinite_step is not None:
        last = curve.values[-1] if len(curve.values) else math.nan
        return Finding(
            CODE,
            ERROR,
            f"the loss or its gradient became NaN or infinite at step {curve.nonfinite_step}"
            f"{lr_note}; the "
            f"last finite loss was {fmt(last)} (it started at {fmt(curve.initial)})." + steps_note,
            ADVICE,
            {**details, "nonfinite_step": curve.nonfinite_step},
        )
    start = max(curve.initial, reference_loss(run, curve))
    if not math.isfinite(start) or start <= 0 or curve.peak < RISE * start:
        return None
    recovered = curve.final < RECOVERED * start
    severity = WARNING if recovered else ERROR
    outcome = (
        f"then recovered to {fmt(curve.final)}"
        if recovered
        else f"and ended at {fmt(curve.final)}, no better than where it started"
        if curve.final >= 0.9 * start
        else f"and ended at {fmt(curve.final)}"
    )
    return Finding(
        CODE,
        severity,
        f"the training loss rose from {fmt(curve.initial)} to {fmt(curve.peak)} "
        f"({fmt(curve.peak / curve.initial)}x) by step {curve.peak_step}{lr_note}, {outcome}."
        + steps_note,
        ADVICE,
        details,
    )
