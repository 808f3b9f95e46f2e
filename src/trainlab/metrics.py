"""Validation metrics by task, computed with torchmetrics on the whole validation split.

Classification: accuracy, F1, precision, recall and AUROC; for two classes F1, precision and
recall are those of class 1 (the positive class), for more they are macro averages (every
class counts the same, however rare). Regression: MSE, MAE and R^2.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

CLASSIFICATION_METRICS = (
    "val/loss",
    "val/acc",
    "val/f1",
    "val/precision",
    "val/recall",
    "val/auroc",
)
REGRESSION_METRICS = ("val/loss", "val/mse", "val/mae", "val/r2")
# Metrics where smaller is better; everything else is maximised when trainer.mode=auto.
MINIMISED = frozenset({"val/loss", "val/mse", "val/mae", "train/epoch_loss"})


def metric_names(task: str, num_classes: int) -> tuple[str, ...]:
    """The per-epoch metric keys a run of this task logs, ``train/epoch_loss`` included."""
    names = CLASSIFICATION_METRICS if task == "classification" else REGRESSION_METRICS
    return (*names, "train/epoch_loss")


def mode_for(monitor: str, mode: str) -> str:
    """``min`` or ``max``: the configured mode, or the metric's natural one for ``auto``."""
    if mode != "auto":
        return mode
    return "min" if monitor in MINIMISED else "max"


def compute_metrics(
    outputs: torch.Tensor, targets: torch.Tensor, task: str, num_classes: int
) -> dict[str, torch.Tensor]:
    """Task metrics of a whole validation pass, as 0-d tensors (no host sync here)."""
    from torchmetrics.functional import classification, regression

    if task != "classification":
        predictions = outputs.squeeze(-1)
        return {
            "val/mse": regression.mean_squared_error(predictions, targets),
            "val/mae": regression.mean_absolute_error(predictions, targets),
            "val/r2": regression.r2_score(predictions, targets),
        }
    if num_classes == 2:
        # One logit (bce) or two (cross_entropy): either way, the probability of class 1.
        probabilities = (
            outputs.squeeze(-1).sigmoid() if outputs.shape[-1] == 1 else outputs.softmax(-1)[:, 1]
        )
        return {
            "val/acc": classification.binary_accuracy(probabilities, targets),
            "val/f1": classification.binary_f1_score(probabilities, targets),
            "val/precision": classification.binary_precision(probabilities, targets),
            "val/recall": classification.binary_recall(probabilities, targets),
            "val/auroc": classification.binary_auroc(probabilities, targets),
        }
    probabilities = outputs.softmax(-1)
    return {
        "val/acc": classification.multiclass_accuracy(
            probabilities, targets, num_classes=num_classes, average="micro"
        ),
        "val/f1": classification.multiclass_f1_score(
            probabilities, targets, num_classes=num_classes, average="macro"
        ),
        "val/precision": classification.multiclass_precision(
            probabilities, targets, num_classes=num_classes, average="macro"
        ),
        "val/recall": classification.multiclass_recall(
            probabilities, targets, num_classes=num_classes, average="macro"
        ),
        "val/auroc": classification.multiclass_auroc(
            probabilities, targets, num_classes=num_classes, average="macro"
        ),
    }
