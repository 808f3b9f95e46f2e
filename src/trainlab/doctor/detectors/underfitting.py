"""``underfitting``: training and validation loss both stay close to the loss of a constant
prediction (the class priors, or the mean target) and have stopped improving: the model does
not capture the signal. Needs the run's ``data.*baseline_loss`` params."""

from __future__ import annotations

import math

import numpy as np

from trainlab.doctor.findings import ERROR, WARNING, Finding
from trainlab.doctor.history import RunHistory
from trainlab.doctor.signals import epoch_series, fmt

CODE = "underfitting"
MIN_EPOCHS = 3
WARNING_RATIO = 0.8  # the losses still at 80% of the constant prediction's
ERROR_RATIO = 0.95
FLAT = 0.05  # the last third of the epochs moved less than this share
ADVICE = (
    "Give the model more capacity (more or wider layers: model.hidden_sizes=[256,256], or a "
    "model suited to the data: cnn for images, lstm for sequences), train longer, regularize "
    "less, and check that the features carry the signal (`trainlab train debug=overfit_batch` "
    "tells whether the model can fit even one batch)."
)


def detect(run: RunHistory) -> Finding | None:
    val = epoch_series(run, "val/loss")
    train = epoch_series(run, "train/epoch_loss")
    baseline = run.param("data.baseline_loss")
    val_baseline = run.param("data.val_baseline_loss")
    if len(val) < MIN_EPOCHS or len(train) < MIN_EPOCHS:
        return None
    if not (math.isfinite(baseline) and math.isfinite(val_baseline)) or baseline <= 0:
        return None
    if not (np.isfinite(val[-1]) and np.isfinite(train[-1])):
        return None
    val_ratio, train_ratio = val[-1] / val_baseline, train[-1] / baseline
    ratio = min(val_ratio, train_ratio)
    if ratio < WARNING_RATIO:
        return None
    tail = val[-max(2, len(val) // 3) :]
    moved = abs(float(tail[0] - tail[-1])) / max(float(tail[0]), 1e-12)
    if moved > FLAT:
        return None  # still improving: not settled at a poor level (yet)
    metric = ""
    for name in ("val/acc", "val/r2"):
        values = epoch_series(run, name)
        if len(values) and np.isfinite(values[-1]):
            metric = f"; {name} {fmt(values[-1])}"
            if name == "val/acc" and math.isfinite(run.param("data.val_majority_accuracy")):
                majority = run.param("data.val_majority_accuracy")
                metric += f" (always predicting the largest class: {fmt(majority)})"
            break
    parameters = run.param("model.num_parameters")
    size = f"; the model has {int(parameters)} parameters" if math.isfinite(parameters) else ""
    return Finding(
        CODE,
        ERROR if ratio >= ERROR_RATIO else WARNING,
        f"after {len(val)} epochs the training loss is {fmt(train[-1])} and the validation "
        f"loss {fmt(val[-1])}, {fmt(100 * train_ratio)}% and {fmt(100 * val_ratio)}% of what a "
        f"constant prediction scores ({fmt(baseline)} / {fmt(val_baseline)}), and no longer "
        f"improving{metric}{size}.",
        ADVICE,
        {
            "train_loss": float(train[-1]),
            "val_loss": float(val[-1]),
            "train_ratio_to_baseline": float(train_ratio),
            "val_ratio_to_baseline": float(val_ratio),
        },
    )
