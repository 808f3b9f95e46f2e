"""Validation metrics by task: the keys a run logs are the keys ``metric_names`` promises (it
drives monitor validation), and the values agree with scikit-learn."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn import metrics as sk

from trainlab.config.compose import compose_config
from trainlab.metrics import (
    CLASSIFICATION_METRICS,
    MINIMISED,
    compute_metrics,
    metric_names,
    mode_for,
)

CASES = [("classification", 10, 10), ("classification", 2, 1), ("classification", 2, 2)]


def _classification(num_classes: int, outputs: int, rows: int = 300) -> tuple[torch.Tensor, ...]:
    """Logits that are right more often than not, and their labels."""
    generator = torch.Generator().manual_seed(0)
    labels = torch.randint(0, num_classes, (rows,), generator=generator)
    logits = torch.randn(rows, num_classes, generator=generator)
    logits[torch.arange(rows), labels] += 1.0
    if outputs == 1:  # one logit: the log-odds of class 1
        return (logits[:, 1] - logits[:, 0]).unsqueeze(-1), labels
    return logits, labels


@pytest.mark.parametrize(("task", "num_classes", "outputs"), [*CASES, ("regression", 0, 1)])
def test_logged_keys_are_exactly_the_promised_metric_names(
    task: str, num_classes: int, outputs: int
) -> None:
    if task == "regression":
        logits, targets = torch.randn(50, 1), torch.randn(50)
    else:
        logits, targets = _classification(num_classes, outputs)
    computed = compute_metrics(logits, targets, task, num_classes)
    assert {"val/loss", *computed, "train/epoch_loss"} == set(metric_names(task, num_classes))
    assert all(value.ndim == 0 for value in computed.values())


def test_classification_reports_precision_and_recall() -> None:
    assert {"val/precision", "val/recall"} <= set(CLASSIFICATION_METRICS)
    assert mode_for("val/precision", "auto") == mode_for("val/recall", "auto") == "max"
    assert not {"val/precision", "val/recall"} & MINIMISED


def test_multiclass_metrics_agree_with_scikit_learn() -> None:
    logits, labels = _classification(10, 10)
    computed = compute_metrics(logits, labels, "classification", 10)
    predicted = logits.argmax(-1).numpy()
    truth = labels.numpy()
    expected = {
        "val/acc": sk.accuracy_score(truth, predicted),
        "val/f1": sk.f1_score(truth, predicted, average="macro"),
        "val/precision": sk.precision_score(truth, predicted, average="macro", zero_division=0),
        "val/recall": sk.recall_score(truth, predicted, average="macro"),
        "val/auroc": sk.roc_auc_score(
            truth, logits.softmax(-1).numpy(), multi_class="ovr", average="macro"
        ),
    }
    for key, value in expected.items():
        assert computed[key].item() == pytest.approx(value, abs=1e-5), key


@pytest.mark.parametrize("outputs", [1, 2])
def test_binary_precision_and_recall_are_those_of_class_1(outputs: int) -> None:
    """Like val/f1 for two classes: the positive class, from one logit (bce) or two."""
    logits, labels = _classification(2, outputs)
    computed = compute_metrics(logits, labels, "classification", 2)
    if outputs == 1:
        predicted = (logits.squeeze(-1) > 0).long().numpy()
    else:
        predicted = logits.argmax(-1).numpy()
    truth = labels.numpy()
    assert computed["val/precision"].item() == pytest.approx(sk.precision_score(truth, predicted))
    assert computed["val/recall"].item() == pytest.approx(sk.recall_score(truth, predicted))
    assert computed["val/f1"].item() == pytest.approx(sk.f1_score(truth, predicted))


def test_macro_recall_exposes_an_ignored_minority_class() -> None:
    """Accuracy looks fine when a rare class is never predicted; macro recall does not."""
    labels = torch.tensor([0] * 90 + [1] * 5 + [2] * 5)
    logits = torch.tensor([[2.0, 0.0, 0.0]]).repeat(100, 1)  # always class 0
    computed = compute_metrics(logits, labels, "classification", 3)
    assert computed["val/acc"].item() == pytest.approx(0.9)
    assert computed["val/recall"].item() == pytest.approx(1 / 3, abs=1e-5)


def test_regression_metrics_agree_with_scikit_learn() -> None:
    rng = np.random.default_rng(0)
    truth = rng.normal(size=200)
    predicted = truth + rng.normal(scale=0.3, size=200)
    outputs = torch.tensor(predicted, dtype=torch.float32).unsqueeze(-1)
    computed = compute_metrics(outputs, torch.tensor(truth, dtype=torch.float32), "regression", 0)
    assert computed["val/mse"].item() == pytest.approx(
        sk.mean_squared_error(truth, predicted), rel=1e-4
    )
    assert computed["val/mae"].item() == pytest.approx(
        sk.mean_absolute_error(truth, predicted), rel=1e-4
    )
    assert computed["val/r2"].item() == pytest.approx(sk.r2_score(truth, predicted), rel=1e-4)


@pytest.mark.parametrize("monitor", ["val/precision", "val/recall"])
def test_the_new_metrics_can_be_monitored(monitor: str) -> None:
    cfg = compose_config([f"trainer.monitor={monitor}"])
    assert cfg.trainer.monitor == monitor


def test_precision_cannot_be_monitored_on_a_regression_task() -> None:
    from trainlab.config.errors import ConfigError

    with pytest.raises(ConfigError) as raised:
        compose_config(["dataset=diabetes", "trainer.monitor=val/precision"])
    assert any(p.key == "trainer.monitor" for p in raised.value.problems)


@pytest.mark.parametrize("seed", range(6))
def test_classification_metrics_equal_torchmetrics_with_ties_and_absent_classes(seed: int) -> None:
    """trainlab computes the classification metrics from one confusion count and a rank
    AUROC; they must equal torchmetrics' own functions, also when scores tie (rounded
    probabilities) and when a class never occurs (the last one here)."""
    from torchmetrics.functional import classification as tm

    generator = torch.Generator().manual_seed(seed)
    classes, rows = 5, 120 + 37 * seed
    labels = torch.randint(0, classes - 1, (rows,), generator=generator)
    logits = torch.randn(rows, classes, generator=generator)
    logits[torch.arange(rows), labels] += 1.0
    logits[:, classes - 1] = -10.0  # never predicted, never a label
    probabilities = logits.softmax(-1)
    tied = (probabilities * 10).round() / 10 + 1e-7 * torch.arange(classes)  # many ties
    ours = compute_metrics(tied.log(), labels, "classification", classes)
    tied = tied.log().softmax(-1)  # what compute_metrics sees after its own softmax
    expected = {
        "val/acc": tm.multiclass_accuracy(tied, labels, classes, average="micro"),
        "val/f1": tm.multiclass_f1_score(tied, labels, classes, average="macro"),
        "val/precision": tm.multiclass_precision(tied, labels, classes, average="macro"),
        "val/recall": tm.multiclass_recall(tied, labels, classes, average="macro"),
    }
    for key, value in expected.items():
        assert ours[key].item() == pytest.approx(value.item(), abs=1e-5), key
    # AUROC: torchmetrics scores a class without positives as 0 and averages it in; that
    # class's AUROC is undefined, so trainlab averages over the classes that have examples.
    per_class = tm.multiclass_auroc(tied, labels, classes, average="none")
    present = sorted(set(labels.tolist()))
    assert ours["val/auroc"].item() == pytest.approx(per_class[present].mean().item(), abs=1e-5)


@pytest.mark.parametrize("seed", range(4))
def test_binary_metrics_equal_torchmetrics_with_ties(seed: int) -> None:
    from torchmetrics.functional import classification as tm

    generator = torch.Generator().manual_seed(seed)
    rows = 90 + 41 * seed
    labels = torch.randint(0, 2, (rows,), generator=generator)
    logit = torch.randn(rows, generator=generator) + labels * 1.5
    logit = (logit * 2).round() / 2  # ties
    ours = compute_metrics(logit.unsqueeze(-1), labels, "classification", 2)
    scores = logit.sigmoid()
    expected = {
        "val/acc": tm.binary_accuracy(scores, labels),
        "val/f1": tm.binary_f1_score(scores, labels),
        "val/precision": tm.binary_precision(scores, labels),
        "val/recall": tm.binary_recall(scores, labels),
        "val/auroc": tm.binary_auroc(scores, labels),
    }
    for key, value in expected.items():
        assert ours[key].item() == pytest.approx(value.item(), abs=1e-5), key
    assert ours["val/auroc"].item() == pytest.approx(
        sk.roc_auc_score(labels.numpy(), scores.numpy()), abs=1e-6
    )


def test_auroc_is_undefined_without_both_classes() -> None:
    from trainlab.metrics import rank_auroc

    scores = torch.tensor([[0.1], [0.4], [0.8]])
    assert rank_auroc(scores, torch.tensor([[True], [True], [True]])).isnan().all()
    assert rank_auroc(scores, torch.tensor([[False], [True], [True]])).item() == 1.0
    assert rank_auroc(scores, torch.tensor([[True], [False], [False]])).item() == 0.0
