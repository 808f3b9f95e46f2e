"""``exploding_gradients``: gradients far too large, in one of three ways —

- across depth: each layer's relative gradient (gradient norm / weight norm) grows from the
  output towards the input, by orders of magnitude (healthy networks stay within about one);
- in size: the total gradient norm passed ``trainer.gradient_monitor.exploding_threshold``;
- over time: the total norm climbed a hundredfold above its level at the start.

Also used live by the gradient monitor (:func:`from_gradients`).
"""

from __future__ import annotations

import math

import numpy as np

from trainlab.doctor.findings import ERROR, WARNING, Finding
from trainlab.doctor.history import GradientHistory, RunHistory
from trainlab.doctor.signals import fmt, layer_profile, rolling_median

CODE = "exploding_gradients"
DEFAULT_THRESHOLD = 1e3
DEPTH_ERROR = 2.0  # log10: the first layer's relative gradient 100x the last's
DEPTH_WARNING = 1.3  # 20x
GROWTH = 100.0  # the total norm this many times its level at the start
ADVICE = (
    "Clip gradients (trainer.clip_grad_norm=1.0), lower the learning rate, and make the "
    "network easier to differentiate: fewer layers, residual connections (model=resmlp), "
    "layer instead of batch normalisation (model.norm=layer), or an initialisation matched to "
    "the activation (model.init=kaiming_normal)."
)


def from_gradients(
    gradients: GradientHistory, threshold: float = DEFAULT_THRESHOLD
) -> Finding | None:
    """The depth and size checks on the gradient monitor's samples alone."""
    total = _monitor_totals(gradients)
    if len(total) and np.isfinite(total).any() and float(np.nanmax(total)) > threshold:
        worst = int(np.nanargmax(total))
        return Finding(
            CODE,
            ERROR,
            f"total norm {fmt(float(total[worst]))} > {threshold:g} at step "
            f"{int(gradients.steps[worst])}.",
            ADVICE,
            {"max_grad_norm": float(total[worst]), "step": int(gradients.steps[worst])},
        )
    profile = layer_profile(gradients)
    if profile is None or not math.isfinite(profile.change) or profile.depth < 3:
        return None
    if -profile.change < DEPTH_WARNING:
        return None
    first, last = profile.relative[0], profile.relative[-1]
    return Finding(
        CODE,
        ERROR if -profile.change >= DEPTH_ERROR else WARNING,
        f"gradients grow towards the input: relative gradient (norm / weight norm) "
        f"{fmt(first)} in layer {profile.layers[0]} but {fmt(last)} in {profile.layers[-1]}, "
        f"about {fmt(10**-profile.change)}x across {profile.depth} layers (healthy: "
        "within about 10x).",
        ADVICE,
        {
            "depth_change_log10": profile.change,
            "first_layer": profile.layers[0],
            "first_relative_gradient": float(first),
            "last_relative_gradient": float(last),
        },
    )


def _monitor_totals(gradients: GradientHistory) -> np.ndarray:
    if gradients.samples == 0 or gradients.grad_norm.size == 0:
        return np.zeros(0)
    with np.errstate(all="ignore"):
        return np.sqrt(np.nansum(gradients.grad_norm**2, axis=0))


def detect(run: RunHistory) -> Finding | None:
    """The most severe of the size, growth and depth checks."""
    threshold = run.param("trainer.gradient_monitor.exploding_threshold", DEFAULT_THRESHOLD)
    candidates = [_size_and_growth(run, threshold)]
    if run.gradients is not None:
        candidates.append(from_gradients(run.gradients, threshold))
    found = [c for c in candidates if c is not None]
    errors = [c for c in found if c.severity == ERROR]
    ranked = errors or found
    return ranked[0] if ranked else None


def _size_and_growth(run: RunHistory, threshold: float) -> Finding | None:
    norms = run.get("train/grad_norm")
    finite = np.isfinite(norms.values)
    if finite.sum() < 3:
        return None
    values, steps = norms.values[finite], norms.steps[finite]
    worst = int(np.argmax(values))
    if values[worst] > threshold:
        return Finding(
            CODE,
            ERROR,
            f"total norm {fmt(values[worst])} > {threshold:g} at step {int(steps[worst])} "
            f"(it was {fmt(values[0])} at step {int(steps[0])}).",
            ADVICE,
            {"max_grad_norm": float(values[worst]), "step": int(steps[worst])},
        )
    window = int(np.clip(len(values) // 25, 3, 50))
    smoothed = rolling_median(values, window)
    early = float(np.median(values[:window]))
    late_peak = int(np.argmax(smoothed))
    if early > 0 and smoothed[late_peak] > GROWTH * early:
        return Finding(
            CODE,
            WARNING,
            f"the total gradient norm grew from {fmt(early)} at the start to "
            f"{fmt(float(smoothed[late_peak]))} around step {int(steps[late_peak])} "
            f"({fmt(float(smoothed[late_peak]) / early)}x).",
            ADVICE,
            {"early_grad_norm": early, "peak_grad_norm": float(smoothed[late_peak])},
        )
    return None
