"""Measures shared by the detectors: the smoothed training-loss curve, the per-epoch
series, the layer-by-layer gradient profile. All relative (ratios to the run's own start,
to the loss of a constant prediction, between layers), so the same thresholds hold for a
cross-entropy of 2.3 and a mean squared error of 0.01.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from trainlab.doctor.history import GradientHistory, RunHistory

NONFINITE_MESSAGE = "training diverged"  # the non-finite guard's halt message


def rolling_median(values: np.ndarray, window: int) -> np.ndarray:
    """A trailing median of ``window`` points (fewer at the start): robust to single spikes."""
    if len(values) == 0:
        return values
    window = max(1, min(window, len(values)))
    padded = np.concatenate([np.full(window - 1, np.nan), values])
    strided = np.lib.stride_tricks.sliding_window_view(padded, window)
    with np.errstate(all="ignore"):
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            return np.nanmedian(strided, axis=1)


@dataclass
class LossCurve:
    """The training loss per step, smoothed, with its landmarks."""

    steps: np.ndarray  # steps of the finite points
    values: np.ndarray  # the finite raw losses
    smoothed: np.ndarray  # trailing median over ``window`` steps
    window: int
    initial: float  # the loss of the untrained model (mean of the first steps)
    final: float  # the smoothed loss at the end
    lowest: float
    lowest_step: int
    peak: float  # the highest loss held for 2 of 3 consecutive steps, after the first step
    peak_step: int
    nonfinite_step: int | None  # the first step whose loss was NaN or infinite
    total_steps: int

    def at_fraction(self, fraction: float) -> float:
        """The smoothed loss ``fraction`` of the way through the run."""
        index = min(len(self.smoothed) - 1, max(0, round(fraction * (len(self.smoothed) - 1))))
        return float(self.smoothed[index])


def loss_curve(run: RunHistory) -> LossCurve | None:
    """The training-loss curve, or None when the run logged fewer than 3 steps."""
    series = run.get("train/loss")
    if len(series) == 0:
        return None
    # The first step whose loss or gradient was NaN or infinite (what the guard halts on);
    # later points of a halted run are not part of the curve.
    bad_steps = (
        [int(series.steps[~np.isfinite(series.values)][0])]
        if (~np.isfinite(series.values)).any()
        else []
    )
    norms = run.get("train/grad_norm")
    if (~np.isfinite(norms.values)).any():
        bad_steps.append(int(norms.steps[~np.isfinite(norms.values)][0]))
    nonfinite_step = min(bad_steps) if bad_steps else None
    if nonfinite_step is None and run.status == "FAILED" and NONFINITE_MESSAGE in run.error:
        nonfinite_step = int(series.steps[-1]) + 1
    before = series.steps < nonfinite_step if nonfinite_step is not None else series.steps > 0
    finite = np.isfinite(series.values) & before
    steps, values = series.steps[finite], series.values[finite]
    if len(values) < 3:
        if nonfinite_step is None:
            return None
        steps = series.steps[: max(1, len(values))]
        values = values if len(values) else np.array([math.nan])
    window = int(np.clip(len(values) // 25, 3, 50))
    smoothed = rolling_median(values, window)
    # A rise must last: the median of three consecutive steps ignores a single bad batch.
    short = rolling_median(values, 3)
    peak_index = 1 + int(np.nanargmax(short[1:])) if len(short) > 1 else 0
    lowest_index = int(np.nanargmin(smoothed)) if np.isfinite(smoothed).any() else 0
    return LossCurve(
        steps=steps,
        values=values,
        smoothed=smoothed,
        window=window,
        initial=float(values[0]),  # the untrained model's loss on the first batch
        final=float(smoothed[-1]),
        lowest=float(smoothed[lowest_index]),
        lowest_step=int(steps[lowest_index]),
        peak=float(short[peak_index]),
        peak_step=int(steps[peak_index]),
        nonfinite_step=nonfinite_step,
        total_steps=int(series.steps[-1]),
    )


def reference_loss(run: RunHistory, curve: LossCurve | None = None) -> float:
    """What "no learning" scores: the loss of the best constant prediction on the training
    rows (``data.baseline_loss``), else the untrained model's loss."""
    baseline = run.param("data.baseline_loss")
    if math.isfinite(baseline) and baseline > 0:
        return baseline
    return curve.initial if curve is not None else math.nan


def epoch_series(run: RunHistory, name: str) -> np.ndarray:
    """A per-epoch metric in epoch order (NaNs kept)."""
    return run.get(name).values


def learning_rate_range(run: RunHistory) -> tuple[float, float, float]:
    """(first, peak, last) learning rate the run used."""
    lrs = run.get("train/lr").values
    lrs = lrs[np.isfinite(lrs)]
    if len(lrs) == 0:
        lr = run.param("optimizer.lr")
        return lr, lr, lr
    return float(lrs[0]), float(lrs.max()), float(lrs[-1])


@dataclass
class LayerProfile:
    """Each layer's typical relative gradient (gradient norm / weight norm), input to output,
    and how it changes across the network (log10 units of a straight-line fit: +3 means the
    first layer's is a thousand times smaller than the last's)."""

    layers: list[str]
    relative: np.ndarray
    grad_norm: np.ndarray
    change: float  # fitted log10(relative) of the last layer minus that of the first

    @property
    def depth(self) -> int:
        return len(self.layers)


def layer_profile(gradients: GradientHistory, samples: slice | None = None) -> LayerProfile | None:
    """The profile over the chosen samples (all by default); None without at least two layers
    that have a nonzero gradient."""
    if gradients.samples == 0 or len(gradients.layers) < 2:
        return None
    grad = gradients.grad_norm[:, samples] if samples is not None else gradients.grad_norm
    weight = gradients.weight_norm[:, samples] if samples is not None else gradients.weight_norm
    with np.errstate(all="ignore"):
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            relative = np.nanmedian(grad / np.where(weight > 0, weight, np.nan), axis=1)
            grad_median = np.nanmedian(grad, axis=1)
    usable = np.isfinite(relative) & (relative > 0)
    if usable.sum() < 2:
        return LayerProfile(gradients.layers, relative, grad_median, math.nan)
    positions = np.arange(len(relative))[usable]
    logs = np.log10(relative[usable])
    slope = np.polyfit(positions, logs, 1)[0]
    change = float(slope * (len(relative) - 1))
    return LayerProfile(gradients.layers, relative, grad_median, change)


def fmt(value: float) -> str:
    """A number for evidence text: 3 significant digits."""
    if value is None or not math.isfinite(value):
        return str(value)
    return f"{value:.3g}"
