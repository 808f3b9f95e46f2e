"""``overfitting``: the validation loss reached its lowest early and then climbed while the
training loss kept falling. The rise is measured against the loss of a constant prediction
(``data.val_baseline_loss``), so a drift of 0.01 on a loss of 0.1 is not called overfitting
but a climb back a third of the way to "predicting the priors" is."""

from __future__ import annotations

import math

import numpy as np

from trainlab.doctor.findings import ERROR, WARNING, Finding
from trainlab.doctor.history import RunHistory
from trainlab.doctor.signals import epoch_series, fmt

CODE = "overfitting"
MIN_EPOCHS = 5
RISE_ERROR = 0.15  # the climb as a share of the baseline loss
RISE_WARNING = 0.05
RELATIVE_WARNING = 0.15  # ... and as a share of the lowest validation loss
ADVICE = (
    "Keep the best epoch (checkpoints/best.pt already holds it; trainer.early_stopping."
    "enabled=true stops there), regularize (regularizer=[l2,dropout], mixup, label_smoothing), "
    "use more data or augmentation, or a smaller model."
)


def detect(run: RunHistory) -> Finding | None:
    val = epoch_series(run, "val/loss")
    train = epoch_series(run, "train/epoch_loss")
    if len(val) < MIN_EPOCHS or not np.isfinite(val).all():
        return None
    # Noise-robust: the lowest of a 3-epoch median against the median of the last fifth, so
    # one lucky or unlucky epoch is not a trend.
    steady = np.array([np.median(val[max(0, i - 1) : i + 2]) for i in range(len(val))])
    best = int(np.argmin(steady))
    lowest = float(steady[best])
    tail = max(3, len(val) // 5)
    final = float(np.median(val[-tail:]))
    rise = final - lowest
    baseline = run.param("data.val_baseline_loss")
    scale = baseline if math.isfinite(baseline) and baseline > 0 else max(float(val[0]), 1e-12)
    if best >= len(val) - tail or rise <= 0:
        return None
    share, relative = rise / scale, rise / max(lowest, 1e-12)
    if share < RISE_WARNING or relative < RELATIVE_WARNING:
        return None
    train_note = ""
    if len(train) == len(val) and np.isfinite(train).all():
        train_then = float(np.median(train[max(0, best - 2) : best + 3]))
        train_now = float(np.median(train[-tail:]))
        if train_now > train_then:
            return None  # both rose: not overfitting (the training went wrong)
        train_note = (
            f" while the training loss fell from {fmt(train_then)} to {fmt(train_now)} "
            f"(the gap grew from {fmt(lowest - train_then)} to {fmt(final - train_now)})"
        )
    metric_note = ""
    accuracy = epoch_series(run, "val/acc")
    if len(accuracy) == len(val) and np.isfinite(accuracy).all():
        metric_note = f"; val/acc {fmt(accuracy.max())} at best, {fmt(accuracy[-1])} at the end"
    return Finding(
        CODE,
        ERROR if share >= RISE_ERROR else WARNING,
        f"the validation loss was lowest around epoch {best + 1} ({fmt(lowest)}) and climbed "
        f"to {fmt(final)} over the last {tail} of {len(val)} epochs (+{fmt(100 * relative)}%)"
        + train_note
        + metric_note
        + ".",
        ADVICE,
        {
            "best_epoch": best + 1,
            "lowest_val_loss": lowest,
            "final_val_loss": final,
            "rise_share_of_baseline": share,
            "epochs": len(val),
        },
    )
