"""``vanishing_gradients``: the layers near the input get gradients orders of magnitude
smaller (relative to their weights) than the layers near the output, or below
``trainer.gradient_monitor.vanishing_threshold``: they barely learn. Names the layers.
Also used live by the gradient monitor (:func:`from_gradients`)."""

from __future__ import annotations

import math

import numpy as np

from trainlab.doctor.findings import ERROR, WARNING, Finding
from trainlab.doctor.history import GradientHistory, RunHistory
from trainlab.doctor.signals import fmt, layer_profile, loss_curve, reference_loss

CODE = "vanishing_gradients"
DEFAULT_THRESHOLD = 1e-7
DEPTH_ERROR = 3.0  # log10: the first layer's relative gradient 1000x below the last's
DEPTH_WARNING = 2.5
DEPTH_STUCK = 1.5  # 30x: enough to blame when the model learned nothing at all
ADVICE = (
    "Use a non-saturating activation (model.activation=relu or gelu instead of sigmoid/tanh), "
    "an initialisation matched to it (model.init=kaiming_normal), normalisation layers "
    "(model.norm=layer or batch), residual connections (model=resmlp), or fewer layers; for "
    "sequences an LSTM or GRU instead of a plain RNN."
)


def from_gradients(
    gradients: GradientHistory, threshold: float = DEFAULT_THRESHOLD, stuck: bool = False
) -> Finding | None:
    """The checks on the monitor's samples; ``stuck``: the loss never left the constant
    prediction's, so a smaller gap between the layers already explains it."""
    profile = layer_profile(gradients)
    if profile is None:
        return None
    names = profile.layers
    with np.errstate(all="ignore"):
        tiny = profile.grad_norm < threshold
    output_alive = math.isfinite(profile.grad_norm[-1]) and profile.grad_norm[-1] >= threshold
    if tiny.any() and output_alive:
        vanished = [names[i] for i in np.flatnonzero(tiny)]
        return Finding(
            CODE,
            ERROR,
            f"layers {_list(vanished)}: typical gradient norm below {threshold:g} (the output "
            f"layer {names[-1]}: {fmt(float(profile.grad_norm[-1]))}), over steps "
            f"{int(gradients.steps[0])}..{int(gradients.steps[-1])}.",
            ADVICE,
            {"layers": vanished, "threshold": threshold},
        )
    least = DEPTH_STUCK if stuck else DEPTH_WARNING
    if not math.isfinite(profile.change) or profile.change < least:
        return None
    reference = profile.relative[-1]
    with np.errstate(all="ignore"):
        behind = np.log10(reference / profile.relative)
    # The layers 100x behind the output's, or three quarters of the way down if the whole
    # spread is smaller.
    cut = min(2.0, 0.75 * profile.change)
    starved = [names[i] for i in np.flatnonzero(behind >= cut)] or [names[0]]
    return Finding(
        CODE,
        ERROR if profile.change >= DEPTH_ERROR or stuck else WARNING,
        f"layers {_list(starved)}: relative gradient (norm / weight norm) "
        f"{fmt(profile.relative[0])} "
        f"in the first layer {names[0]} but {fmt(reference)} in the last, {names[-1]}: about "
        f"{fmt(10**profile.change)}x smaller across {profile.depth} layers (healthy: within "
        "about 10x)" + ("; the loss never left a constant prediction's" if stuck else "") + ".",
        ADVICE,
        {
            "layers": starved,
            "depth_change_log10": profile.change,
            "first_relative_gradient": float(profile.relative[0]),
            "last_relative_gradient": float(reference),
        },
    )


def _list(names: list[str], at_most: int = 4) -> str:
    shown = ", ".join(names[:at_most])
    return shown + (f" and {len(names) - at_most} more" if len(names) > at_most else "")


def detect(run: RunHistory) -> Finding | None:
    if run.gradients is None:
        return None
    threshold = run.param("trainer.gradient_monitor.vanishing_threshold", DEFAULT_THRESHOLD)
    curve = loss_curve(run)
    reference = reference_loss(run, curve)
    stuck = curve is not None and math.isfinite(reference) and curve.final >= 0.9 * reference
    return from_gradients(run.gradients, threshold, stuck=stuck)
