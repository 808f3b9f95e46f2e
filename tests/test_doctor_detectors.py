"""The training doctor's detectors on synthetic metric histories: each fires on the pattern a
training guide describes, stays quiet on a healthy run, and ranks causes before symptoms.

The histories are built as the loop logs them (``(name, value, step)`` points, the data
profile's ``data.*`` params, the gradient monitor's summary), so the detectors see exactly
the shapes a real run gives them. The preset runs (tests/test_pathologies.py) check the same
detectors end to end through the CLI and a real store.
"""

from __future__ import annotations

import json
import math
from typing import Any

import numpy as np
import pytest

from trainlab.doctor import CODES, RunHistory, diagnose
from trainlab.doctor.detectors import DETECTORS, MODULES
from trainlab.doctor.findings import ERROR, HEALTHY, INFO, WARNING
from trainlab.doctor.report import to_json

STEPS_PER_EPOCH = 20
BASELINE = 2.3  # cross-entropy of ten balanced classes: the constant prediction's loss


def history(
    step_losses: np.ndarray,
    val_losses: np.ndarray | None = None,
    params: dict[str, Any] | None = None,
    gradients: dict[str, Any] | None = None,
    grad_norms: np.ndarray | None = None,
    lrs: np.ndarray | None = None,
    val_acc: np.ndarray | None = None,
    extra_epoch: dict[str, np.ndarray] | None = None,
    status: str = "FINISHED",
    error: str = "",
) -> RunHistory:
    """A run logged as the loop logs it: per-step loss, lr and grad norm, per-epoch means."""
    points: list[tuple[str, float, int]] = []
    count = len(step_losses)
    grad_norms = np.full(count, 0.5) if grad_norms is None else grad_norms
    lrs = np.full(count, 1e-3) if lrs is None else lrs
    for step in range(1, count + 1):
        points += [
            ("train/loss", float(step_losses[step - 1]), step),
            ("train/grad_norm", float(grad_norms[step - 1]), step),
            ("train/lr", float(lrs[step - 1]), step),
        ]
    epochs = count // STEPS_PER_EPOCH
    for epoch in range(1, epochs + 1):
        step = epoch * STEPS_PER_EPOCH
        chunk = step_losses[step - STEPS_PER_EPOCH : step]
        points.append(("train/epoch_loss", float(np.mean(chunk)), step))
        points.append(("epoch", float(epoch), step))
        if val_losses is not None:
            points.append(("val/loss", float(val_losses[epoch - 1]), step))
        if val_acc is not None:
            points.append(("val/acc", float(val_acc[epoch - 1]), step))
        for name, values in (extra_epoch or {}).items():
            points.append((name, float(values[epoch - 1]), step))
    all_params = {
        "data.baseline_loss": BASELINE,
        "data.val_baseline_loss": BASELINE,
        "data.feature_rms_max": 1.0,
        "data.feature_std_ratio": 1.0,
        "data.feature_offset_max": 0.0,
        "data.class_counts": json.dumps([100] * 10),
        "data.val_majority_accuracy": 0.1,
        "trainer.monitor": "val/loss",
        "dataset.normalize": "zscore",
        **(params or {}),
    }
    return RunHistory.from_points(points, all_params, gradients, status, error, run_id="synthetic")


def decaying(
    start: float, end: float, steps: int, noise: float = 0.02, seed: int = 0
) -> np.ndarray:
    """An exponential fall from ``start`` to ``end`` with multiplicative batch noise."""
    rng = np.random.default_rng(seed)
    curve = end + (start - end) * np.exp(-np.linspace(0, 6, steps))
    return curve * (1 + noise * rng.standard_normal(steps))


def monitor_summary(
    relative: list[float],
    samples: int = 8,
    update_ratio: float = 1e-3,
    dead: list[float] | None = None,
) -> dict[str, Any]:
    """A gradient-monitor artifact: weight norm 1 per layer, so grad norm = relative grad."""
    layers = [str(2 * i) for i in range(len(relative))]
    return {
        "steps": [25 * (i + 1) for i in range(samples)],
        "layers": layers,
        "grad_norm": [[r] * samples for r in relative],
        "weight_norm": [[1.0] * samples for _ in relative],
        "update_ratio": [[update_ratio] * samples for _ in relative],
        "activations": [str(2 * i + 1) for i in range(len(dead or []))],
        "dead_fraction": [[d] * samples for d in (dead or [])],
    }


def healthy_run(**overrides: Any) -> RunHistory:
    steps = 20 * STEPS_PER_EPOCH
    arguments: dict[str, Any] = {
        "step_losses": decaying(2.3, 0.05, steps),
        "val_losses": decaying(2.2, 0.12, 20, noise=0.01),
        "gradients": monitor_summary([0.02, 0.03, 0.08], dead=[0.02, 0.05]),
    }
    arguments.update(overrides)
    return history(**arguments)


def codes(run: RunHistory, *severities: str) -> list[str]:
    return [f.code for f in diagnose(run).findings if f.severity in severities]


# --- the registry ----------------------------------------------------------------------------


def test_every_required_code_has_a_detector() -> None:
    required = {
        "lr_too_high",
        "lr_too_low",
        "exploding_gradients",
        "vanishing_gradients",
        "dead_units",
        "overfitting",
        "underfitting",
        "unnormalized_inputs",
        "plateau",
        "class_imbalance",
    }
    assert set(DETECTORS) == required
    assert set(CODES) == required | {HEALTHY}
    assert all(module.__doc__ and module.ADVICE for module in MODULES)


def test_a_healthy_run_is_healthy_with_evidence() -> None:
    diagnosis = diagnose(healthy_run())
    assert diagnosis.primary == HEALTHY
    assert not diagnosis.problems
    (finding,) = diagnosis.findings
    assert finding.severity == INFO
    assert "2.3" in finding.evidence and "epoch 20" in finding.evidence


def test_json_has_primary_and_findings_with_the_four_fields() -> None:
    run = healthy_run(step_losses=np.full(400, 2.3) * np.linspace(1.0, 0.999, 400))
    data = json.loads(to_json(diagnose(run)))
    assert data["primary"] == data["findings"][0]["code"]
    for finding in data["findings"]:
        assert {"code", "severity", "evidence", "advice"} <= set(finding)
        assert finding["severity"] in ("error", "warning", "info")


def test_thresholds_are_relative_to_the_loss_scale() -> None:
    """The same run measured in units 1000x larger (a loss summed instead of averaged) gets
    the same diagnosis: every threshold is a ratio."""
    steps = 40 * STEPS_PER_EPOCH
    val = np.concatenate([np.linspace(2.0, 0.4, 10), np.linspace(0.4, 1.4, 30)])
    train = decaying(2.3, 0.02, steps)
    for scale in (1.0, 1000.0):
        run = history(
            train * scale,
            val * scale,
            params={
                "data.baseline_loss": BASELINE * scale,
                "data.val_baseline_loss": BASELINE * scale,
            },
        )
        assert diagnose(run).primary == "overfitting", scale


# --- lr_too_high -----------------------------------------------------------------------------


def test_a_nan_loss_is_lr_too_high_naming_the_step() -> None:
    losses = decaying(2.3, 1.0, 200)
    losses[57:] = math.nan
    finding = diagnose(history(losses)).findings[0]
    assert (finding.code, finding.severity) == ("lr_too_high", ERROR)
    assert "step 58" in finding.evidence


def test_a_failed_run_halted_by_the_nonfinite_guard_is_lr_too_high() -> None:
    losses = decaying(2.3, 1.0, 40)
    run = history(losses, status="FAILED", error="NonFiniteError: training diverged: the first ...")
    assert diagnose(run).primary == "lr_too_high"


def test_a_loss_that_shoots_up_and_stays_is_lr_too_high() -> None:
    losses = np.full(200, 2.31)
    losses[0] = 2.3
    losses[2:6] = [40.0, 120.0, 80.0, 10.0]
    finding = diagnose(
        history(losses, gradients=monitor_summary([0.0] * 3, update_ratio=0.4))
    ).findings[0]
    assert (finding.code, finding.severity) == ("lr_too_high", ERROR)
    assert "0.4 of their size" in finding.evidence


def test_a_spike_the_run_recovers_from_is_only_a_warning() -> None:
    losses = decaying(2.3, 0.05, 400)
    losses[100:104] = 9.0
    finding = next(f for f in diagnose(history(losses)).findings if f.code == "lr_too_high")
    assert finding.severity == WARNING


def test_one_bad_batch_is_not_a_rise() -> None:
    losses = decaying(2.3, 0.05, 400)
    losses[50] = 30.0  # a single outlier batch
    assert "lr_too_high" not in codes(history(losses), ERROR, WARNING)


# --- lr_too_low ------------------------------------------------------------------------------


def test_a_loss_creeping_down_with_tiny_updates_is_lr_too_low() -> None:
    losses = np.linspace(2.31, 2.29, 200)
    run = history(losses, gradients=monitor_summary([0.05, 0.05, 0.1], update_ratio=2e-6))
    finding = diagnose(run).findings[0]
    assert (finding.code, finding.severity) == ("lr_too_low", ERROR)
    assert "2e-06" in finding.evidence


def test_the_same_slow_loss_with_normal_updates_is_not_the_learning_rate() -> None:
    losses = np.linspace(2.31, 2.29, 200)
    run = history(losses, gradients=monitor_summary([0.05, 0.05, 0.1], update_ratio=2e-3))
    assert "lr_too_low" not in codes(run, ERROR, WARNING)


# --- gradients -------------------------------------------------------------------------------


def test_a_gradient_norm_past_the_threshold_is_exploding() -> None:
    norms = np.geomspace(0.5, 5e4, 200)
    finding = next(
        f
        for f in diagnose(history(decaying(2.3, 1.0, 200), grad_norms=norms)).findings
        if f.code == "exploding_gradients"
    )
    assert finding.severity == ERROR and "> 1000" in finding.evidence


def test_gradients_growing_towards_the_input_are_exploding() -> None:
    run = healthy_run(gradients=monitor_summary([30.0, 8.0, 2.0, 0.5, 0.1]))
    finding = diagnose(run).findings[0]
    assert finding.code == "exploding_gradients"
    assert "layer 0" in finding.evidence and "grow towards the input" in finding.evidence


def test_gradients_shrinking_towards_the_input_are_vanishing_naming_the_layers() -> None:
    run = healthy_run(
        step_losses=np.full(400, 2.3),
        gradients=monitor_summary([1e-7 * 3, 1e-5, 1e-3, 1e-1]),
    )
    finding = diagnose(run).findings[0]
    assert finding.code == "vanishing_gradients"
    assert finding.evidence.startswith("layers 0, 2")


def test_a_healthy_spread_of_gradients_over_layers_is_no_finding() -> None:
    for relative in ([0.01, 0.03, 0.3], [0.2, 0.1, 0.05], [0.005, 0.5]):
        run = healthy_run(gradients=monitor_summary(relative))
        assert codes(run, ERROR, WARNING) == [], relative


def test_a_dead_relu_layer_is_dead_units() -> None:
    run = healthy_run(
        step_losses=np.full(400, 2.3), gradients=monitor_summary([0.0, 0.0, 0.1], dead=[0.1, 1.0])
    )
    finding = diagnose(run).findings[0]
    assert (finding.code, finding.severity) == ("dead_units", ERROR)
    assert "100% after activation 3" in finding.evidence


def test_a_few_dead_units_are_normal() -> None:
    assert "dead_units" not in codes(
        healthy_run(gradients=monitor_summary([0.02, 0.05], dead=[0.3])), ERROR, WARNING
    )


# --- overfitting, underfitting, plateau --------------------------------------------------------


def test_validation_loss_climbing_while_training_falls_is_overfitting() -> None:
    steps = 40 * STEPS_PER_EPOCH
    val = np.concatenate([np.linspace(2.0, 0.4, 10), np.linspace(0.4, 1.4, 30)])
    finding = diagnose(history(decaying(2.3, 0.02, steps), val)).findings[0]
    assert (finding.code, finding.severity) == ("overfitting", ERROR)
    assert "epoch 10" in finding.evidence


def test_a_noisy_but_flat_validation_loss_is_not_overfitting() -> None:
    rng = np.random.default_rng(3)
    val = np.concatenate([np.linspace(2.0, 0.3, 10), 0.3 + 0.04 * rng.standard_normal(30)])
    run = history(decaying(2.3, 0.05, 40 * STEPS_PER_EPOCH), val)
    assert "overfitting" not in codes(run, ERROR, WARNING)


def test_both_losses_stuck_at_the_constant_prediction_is_underfitting() -> None:
    losses = 2.3 + 0.3 * np.exp(-np.linspace(0, 8, 400))
    finding = diagnose(history(losses, np.full(20, 2.3))).findings[0]
    assert (finding.code, finding.severity) == ("underfitting", ERROR)
    assert "constant prediction" in finding.evidence


def test_a_hard_problem_half_learned_is_not_underfitting() -> None:
    run = history(
        decaying(0.69, 0.35, 400),
        decaying(0.69, 0.36, 20, noise=0.0),
        params={"data.baseline_loss": 0.693, "data.val_baseline_loss": 0.693},
    )
    assert codes(run, ERROR, WARNING) == []


def test_a_long_stall_before_the_loss_falls_is_a_plateau() -> None:
    stall = np.full(30 * STEPS_PER_EPOCH, 2.3)
    fall = decaying(2.3, 0.1, 30 * STEPS_PER_EPOCH, noise=0.0)
    run = history(np.concatenate([stall, fall]), lrs=np.full(60 * STEPS_PER_EPOCH, 0.5))
    finding = diagnose(run).findings[0]
    assert (finding.code, finding.severity) == ("plateau", WARNING)
    assert "from epoch 1" in finding.evidence


def test_a_flat_start_while_the_learning_rate_warms_up_is_not_a_plateau() -> None:
    steps = 60 * STEPS_PER_EPOCH
    losses = np.concatenate(
        [np.full(20 * STEPS_PER_EPOCH, 2.3), decaying(2.3, 0.1, 40 * STEPS_PER_EPOCH, noise=0.0)]
    )
    lrs = np.concatenate(
        [np.linspace(1e-5, 1e-3, 20 * STEPS_PER_EPOCH), np.full(40 * STEPS_PER_EPOCH, 1e-3)]
    )
    assert "plateau" not in codes(history(losses, lrs=lrs[:steps]), ERROR, WARNING)


def test_symptoms_of_a_found_cause_drop_to_info() -> None:
    losses = np.linspace(2.31, 2.30, 400)
    run = history(
        losses, np.full(20, 2.3), gradients=monitor_summary([0.05, 0.1], update_ratio=1e-6)
    )
    diagnosis = diagnose(run)
    assert diagnosis.primary == "lr_too_low"
    underfitting = next(f for f in diagnosis.findings if f.code == "underfitting")
    assert underfitting.severity == INFO and "consequence of lr_too_low" in underfitting.evidence


# --- data: inputs and classes ----------------------------------------------------------------


def test_raw_inputs_on_wild_scales_are_unnormalized() -> None:
    run = healthy_run(
        step_losses=np.concatenate([[60.0, 40.0], decaying(20.0, 0.5, 398)]),
        params={
            "data.feature_rms_max": 1060.0,
            "data.feature_std_ratio": 2.6e5,
            "dataset.normalize": "none",
        },
    )
    finding = diagnose(run).findings[0]
    assert (finding.code, finding.severity) == ("unnormalized_inputs", ERROR)
    assert "1.06e+03" in finding.evidence and "dataset.normalize=none" in finding.evidence


def test_mildly_unscaled_inputs_of_a_run_that_trains_well_are_a_warning() -> None:
    run = healthy_run(params={"data.feature_rms_max": 12.8, "data.feature_std_ratio": 247.0})
    finding = diagnose(run).findings[0]
    assert (finding.code, finding.severity) == ("unnormalized_inputs", WARNING)


def test_accuracy_no_better_than_the_majority_class_is_class_imbalance() -> None:
    run = history(
        decaying(0.75, 0.19, 400),
        decaying(0.7, 0.19, 20, noise=0.0),
        val_acc=np.full(20, 0.955),
        params={
            "data.class_counts": json.dumps([950, 48]),
            "data.val_majority_accuracy": 0.955,
            "data.baseline_loss": 0.19,
            "data.val_baseline_loss": 0.19,
            "trainer.monitor": "val/acc",
        },
        extra_epoch={"val/f1": np.zeros(20)},
    )
    finding = diagnose(run).findings[0]
    assert (finding.code, finding.severity) == ("class_imbalance", ERROR)
    assert "19.8:1" in finding.evidence and "val/f1" in finding.evidence


def test_imbalanced_data_judged_by_f1_and_learned_well_is_no_finding() -> None:
    run = healthy_run(
        val_acc=np.linspace(0.96, 0.995, 20),
        params={
            "data.class_counts": json.dumps([950, 48]),
            "data.val_majority_accuracy": 0.955,
            "trainer.monitor": "val/f1",
        },
        extra_epoch={"val/f1": np.linspace(0.5, 0.9, 20)},
    )
    assert "class_imbalance" not in codes(run, ERROR, WARNING, INFO)


# --- the live monitor says what the doctor says ---------------------------------------------


@pytest.mark.parametrize(
    "relative, code",
    [
        ([30.0, 8.0, 2.0, 0.5, 0.1], "exploding_gradients"),
        ([1e-9, 1e-6, 1e-3, 0.1], "vanishing_gradients"),
    ],
)
def test_the_gradient_monitor_warns_with_the_doctors_detectors(
    relative: list[float], code: str
) -> None:
    import torch

    from trainlab.train.gradient_monitor import GradientMonitor

    model = torch.nn.Sequential(*[torch.nn.Linear(2, 2) for _ in relative])
    monitor = GradientMonitor(
        model,
        every_n_steps=1,
        vanishing_threshold=1e-7,
        exploding_threshold=1e3,
        warn_every_n_steps=1,
    )
    for step in range(1, 6):
        monitor.steps.append(step)
        monitor._grad_norms.append(torch.tensor(relative))
        monitor._weight_norms.append(torch.ones(len(relative)))
        monitor._update_ratios.append(torch.full((len(relative),), 1e-3))
    warnings = monitor.check()
    expected = next(
        f for f in diagnose(healthy_run(gradients=monitor.summary())).findings if f.code == code
    )
    assert warnings and warnings[0] == expected.headline()


def test_the_first_non_finite_gradient_counts_like_the_guard_reports_it() -> None:
    """The guard halts on a non-finite loss *or* gradient; the doctor names the same step and
    the last finite loss before it. MLflow stores an infinite value as the largest float."""
    from trainlab.doctor.history import _from_store

    losses = np.array([2.3, 48.0, 1e7, 3.3e15, 1.6e33, math.nan, math.nan])
    norms = np.array(
        [0.4, 45.0, 1e5, 2e11, _from_store(1.7976931348623157e308), math.nan, math.nan]
    )
    finding = diagnose(history(losses, grad_norms=norms)).findings[0]
    assert finding.code == "lr_too_high"
    assert "at step 5" in finding.evidence and "3.3e+15" in finding.evidence
