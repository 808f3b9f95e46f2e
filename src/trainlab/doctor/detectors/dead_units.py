"""``dead_units``: ReLU units that output zero for every example of a batch, sample after
sample, in the second half of the run: they pass no gradient and no longer learn. A layer
entirely dead, or half of all units dead, is an error (the network below it is cut off).
Also used live by the gradient monitor (:func:`from_gradients`)."""

from __future__ import annotations

import math

import numpy as np

from trainlab.doctor.findings import ERROR, WARNING, Finding
from trainlab.doctor.history import GradientHistory, RunHistory
from trainlab.doctor.signals import fmt, loss_curve, reference_loss

CODE = "dead_units"
LAYER_WARNING = 0.5  # a layer with this share of dead units
ALL_ERROR = 0.5  # this share of all monitored units
ADVICE = (
    "Lower the learning rate (a too-large step is the usual killer), use leaky_relu, gelu or "
    "elu (model.activation=...), an initialisation for ReLU (model.init=kaiming_normal), "
    "normalisation layers (model.norm=batch), or a wider / shallower network."
)


def from_gradients(gradients: GradientHistory) -> Finding | None:
    dead = gradients.dead_fraction
    if dead.size == 0 or dead.shape[1] == 0:
        return None
    late = dead[:, dead.shape[1] // 2 :]
    with np.errstate(all="ignore"):
        per_layer = np.nanmedian(late, axis=1)
    if not np.isfinite(per_layer).any():
        return None
    per_layer = np.nan_to_num(per_layer)
    overall = float(per_layer.mean())
    worst = int(per_layer.argmax())
    if per_layer[worst] < LAYER_WARNING:
        return None
    names = gradients.activations
    dead_layers = [
        f"{fmt(100 * per_layer[i])}% after activation {names[i]}"
        for i in np.flatnonzero(per_layer >= LAYER_WARNING)
    ]
    severity = ERROR if per_layer[worst] >= 0.999 or overall >= ALL_ERROR else WARNING
    since = int(gradients.steps[dead.shape[1] // 2])
    return Finding(
        CODE,
        severity,
        f"units that output zero for every example of a batch, from step {since} on: "
        f"{', '.join(dead_layers)}; {fmt(100 * overall)}% of all monitored units.",
        ADVICE,
        {
            "dead_fraction_by_activation": dict(zip(names, map(float, per_layer), strict=False)),
            "dead_fraction": overall,
        },
    )


def detect(run: RunHistory) -> Finding | None:
    """As :func:`from_gradients`, and an error whenever half of some layer is dead and the
    model learned nothing (its loss still at a constant prediction's)."""
    if run.gradients is None:
        return None
    finding = from_gradients(run.gradients)
    if finding is None or finding.severity == ERROR:
        return finding
    curve = loss_curve(run)
    reference = reference_loss(run, curve)
    if curve is not None and math.isfinite(reference) and curve.final >= 0.9 * reference:
        finding.severity = ERROR
        finding.evidence += (
            f" The training loss is still {fmt(curve.final)}, what a constant prediction "
            f"scores ({fmt(reference)})."
        )
    return finding
