"""``class_imbalance``: the training labels are dominated by some classes and either the run
is judged by plain accuracy (``trainer.monitor=val/acc``), which always predicting the
largest class already scores high on, or the model has done little more than that."""

from __future__ import annotations

import math

import numpy as np

from trainlab.doctor.findings import ERROR, WARNING, Finding
from trainlab.doctor.history import RunHistory
from trainlab.doctor.signals import epoch_series, fmt

CODE = "class_imbalance"
RATIO = 4.0  # the largest class has at least this many times the rows of the smallest
ADVICE = (
    "Judge the run by a metric the small classes count in (trainer.monitor=val/f1, val/auroc "
    "or val/recall), weight the loss (loss.class_weights=balanced, or loss=focal), and keep "
    "the split stratified (dataset.stratify=true)."
)


def detect(run: RunHistory) -> Finding | None:
    counts = run.json_param("data.class_counts")
    if not isinstance(counts, list) or len(counts) < 2 or min(counts) <= 0:
        return None
    counts_array = np.array(counts, dtype=float)
    ratio = float(counts_array.max() / counts_array.min())
    if ratio < RATIO:
        return None
    majority = run.param("data.val_majority_accuracy")
    accuracy = epoch_series(run, "val/acc")
    final_accuracy = (
        float(accuracy[-1]) if len(accuracy) and np.isfinite(accuracy[-1]) else math.nan
    )
    monitor = run.text("trainer.monitor")
    largest, smallest = int(counts_array.argmax()), int(counts_array.argmin())
    balanced_name, balanced = _balanced_metric(run, len(counts), smallest)
    margin = (
        (final_accuracy - majority) / (1 - majority)
        if math.isfinite(final_accuracy) and math.isfinite(majority) and majority < 1
        else math.nan
    )
    collapsed = math.isfinite(margin) and margin < 0.25 and (math.isnan(balanced) or balanced < 0.5)
    if monitor != "val/acc" and not collapsed:
        return None
    evidence = (
        f"the training labels are imbalanced: class {largest} has {int(counts_array.max())} "
        f"rows, class {smallest} {int(counts_array.min())} ({fmt(ratio)}:1)"
    )
    if math.isfinite(final_accuracy) and math.isfinite(majority):
        evidence += (
            f"; val/acc is {fmt(final_accuracy)} where always predicting class {largest} "
            f"scores {fmt(majority)}"
        )
    if math.isfinite(balanced):
        evidence += f"; {balanced_name} is {fmt(balanced)}"
    if monitor == "val/acc":
        evidence += "; the run is judged by plain accuracy (trainer.monitor=val/acc)"
    return Finding(
        CODE,
        ERROR if collapsed else WARNING,
        evidence + ".",
        ADVICE,
        {
            "class_counts": counts,
            "imbalance_ratio": ratio,
            "val_acc": final_accuracy,
            "majority_accuracy": majority,
            balanced_name or "balanced_metric": balanced,
            "monitor": monitor,
        },
    )


def _balanced_metric(run: RunHistory, classes: int, smallest: int) -> tuple[str, float]:
    """A validation metric in which the small classes count: macro recall (balanced
    accuracy) for several classes, the F1 of class 1 when class 1 is the rare one."""
    name = "val/recall" if classes > 2 else ("val/f1" if smallest == 1 else "")
    if not name:
        return "", math.nan
    values = epoch_series(run, name)
    if not len(values) or not np.isfinite(values[-1]):
        return name, math.nan
    label = f"{name} (macro: balanced accuracy)" if classes > 2 else f"{name} (class 1)"
    return label, float(values[-1])
