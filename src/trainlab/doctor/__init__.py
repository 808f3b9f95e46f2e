"""The training doctor: reads what a run measured and says what went wrong, with the
numbers that show it and what to do (``trainlab diagnose RUN_ID``, and the end of every run).

Detectors are small and general (relative thresholds, trends and ratios against the run's own
start, its layers and the loss of a constant prediction), one module each under
:mod:`trainlab.doctor.detectors`.
"""

from __future__ import annotations

import math

from trainlab.doctor.detectors import DETECTORS
from trainlab.doctor.findings import (
    ERROR,
    HEALTHY,
    INFO,
    SEVERITIES,
    WARNING,
    Diagnosis,
    Finding,
)
from trainlab.doctor.history import RunHistory
from trainlab.doctor.signals import epoch_series, fmt, loss_curve, reference_loss

CODES = (*DETECTORS, HEALTHY)
# Findings that describe an outcome rather than a cause: when a cause was found at error
# level, they are its consequence and drop to "info" (still listed, not ranked as problems).
SYMPTOMS = ("plateau", "underfitting")


def diagnose(run: RunHistory) -> Diagnosis:
    """Every detector's finding, most important first; ``healthy`` when none is a problem."""
    order = list(DETECTORS)
    findings = [found for detect in DETECTORS.values() if (found := detect(run)) is not None]
    causes = [f.code for f in findings if f.severity == ERROR and f.code not in SYMPTOMS]
    for finding in findings:
        if causes and finding.code in SYMPTOMS:
            finding.severity = INFO
            finding.evidence += f" (a consequence of {causes[0]})"
    if not any(f.severity in (ERROR, WARNING) for f in findings):
        findings.append(healthy_finding(run))
    rank = {code: index for index, code in enumerate([*order, HEALTHY])}
    findings.sort(key=lambda f: (SEVERITIES.index(f.severity), rank.get(f.code, len(rank))))
    if findings and findings[0].severity == INFO and findings[0].code != HEALTHY:
        healthy = [f for f in findings if f.code == HEALTHY]
        findings = healthy + [f for f in findings if f.code != HEALTHY]
    return Diagnosis(findings, run.run_id)


def healthy_finding(run: RunHistory) -> Finding:
    """What went right, in numbers, for a run with nothing to fix."""
    parts = []
    curve = loss_curve(run)
    if curve is not None:
        parts.append(f"the training loss fell from {fmt(curve.initial)} to {fmt(curve.final)}")
        reference = reference_loss(run, curve)
        if math.isfinite(reference) and reference > 0:
            parts[-1] += f" ({fmt(100 * curve.final / reference)}% of a constant prediction's)"
    val = epoch_series(run, "val/loss")
    if len(val):
        best = int(val.argmin()) if (val == val).any() else 0
        parts.append(f"val/loss lowest at epoch {best + 1} of {len(val)} ({fmt(val[best])})")
    monitor = run.text("trainer.monitor")
    if monitor and monitor != "val/loss":
        values = epoch_series(run, monitor)
        if len(values):
            parts.append(f"{monitor} {fmt(values[-1])} at the end")
    if run.gradients is not None:
        parts.append("gradients and updates in healthy ranges")
    evidence = "; ".join(parts) or "nothing in the recorded metrics points to a problem"
    return Finding(
        HEALTHY,
        INFO,
        evidence[0].upper() + evidence[1:] + ".",
        "Nothing to fix. To do better, compare variations in a sweep (its table ranks them): "
        "`trainlab train -m optimizer.lr=0.01,0.003,0.001`.",
    )


__all__ = ["CODES", "Diagnosis", "Finding", "RunHistory", "diagnose"]
