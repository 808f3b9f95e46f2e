"""``unnormalized_inputs``: the training inputs, as the model sees them (after
``dataset.normalize``), are large or on very different scales — measured at setup as the
run's ``data.feature_*`` params. Big inputs saturate activations and make the first layer's
gradients huge; mixed scales make one step size wrong for every feature but one."""

from __future__ import annotations

import math

from trainlab.doctor.findings import ERROR, WARNING, Finding
from trainlab.doctor.history import RunHistory
from trainlab.doctor.signals import fmt, loss_curve, reference_loss

CODE = "unnormalized_inputs"
LARGE_RMS = 10.0  # a feature whose root-mean-square passes this is large for a network
SPREAD = 100.0  # features whose spreads differ by more than this are on different scales
OFFSET = 10.0  # a feature whose mean is this many spreads away from 0
EXTREME_RMS, EXTREME_SPREAD = 100.0, 1e4
ADVICE = (
    "Normalise the inputs with statistics of the training split: dataset.normalize=zscore "
    "(robust if there are outliers, minmax for bounded data); for your own data, scale it "
    "before training or leave normalize at its default."
)


def detect(run: RunHistory) -> Finding | None:
    rms = run.param("data.feature_rms_max")
    spread = run.param("data.feature_std_ratio")
    offset = run.param("data.feature_offset_max")
    if not math.isfinite(rms):
        return None
    large = rms > LARGE_RMS
    mixed = math.isfinite(spread) and spread > SPREAD
    shifted = math.isfinite(offset) and offset > OFFSET
    if not (large or mixed or shifted):
        return None
    parts = []
    if large:
        parts.append(f"a feature's root-mean-square value reaches {fmt(rms)} (normalised: 1)")
    if mixed:
        parts.append(f"the features' spreads differ by {fmt(spread)}x")
    if shifted:
        parts.append(f"a feature's mean sits {fmt(offset)} spreads away from 0")
    normalize = run.text("dataset.normalize")
    curve = loss_curve(run)
    reference = reference_loss(run, curve)
    start_ratio = curve.initial / reference if curve is not None and reference > 0 else math.nan
    impaired = math.isfinite(start_ratio) and start_ratio > 3.0
    extreme = rms > EXTREME_RMS or (math.isfinite(spread) and spread > EXTREME_SPREAD)
    evidence = "; ".join(parts)
    if normalize:
        evidence += f" (dataset.normalize={normalize})"
    if impaired:
        evidence += (
            f"; the untrained model's loss was {fmt(curve.initial)}, {fmt(start_ratio)}x that "  # type: ignore[union-attr]
            f"of a constant prediction ({fmt(reference)})"
        )
    return Finding(
        CODE,
        ERROR if extreme or impaired else WARNING,
        evidence + ".",
        ADVICE,
        {
            "feature_rms_max": rms,
            "feature_std_ratio": spread,
            "feature_offset_max": offset,
            "initial_loss_over_baseline": start_ratio,
        },
    )
