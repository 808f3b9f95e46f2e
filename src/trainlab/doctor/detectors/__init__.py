"""The detectors, one module each, in the order the doctor ranks findings of equal severity:
causes before the symptoms they produce (unnormalised inputs make gradients explode and units
die; a too-large step kills units and stalls the loss; dead units starve the layers below of
gradient; ...). Each module has ``CODE`` and ``detect(run) -> Finding | None``."""

from __future__ import annotations

from collections.abc import Callable
from types import ModuleType

from trainlab.doctor.detectors import (
    class_imbalance,
    dead_units,
    exploding_gradients,
    lr_too_high,
    lr_too_low,
    overfitting,
    plateau,
    underfitting,
    unnormalized_inputs,
    vanishing_gradients,
)
from trainlab.doctor.findings import Finding
from trainlab.doctor.history import RunHistory

Detector = Callable[[RunHistory], Finding | None]

MODULES: tuple[ModuleType, ...] = (
    unnormalized_inputs,
    lr_too_high,
    exploding_gradients,
    dead_units,
    vanishing_gradients,
    lr_too_low,
    class_imbalance,
    plateau,
    overfitting,
    underfitting,
)
DETECTORS: dict[str, Detector] = {module.CODE: module.detect for module in MODULES}

__all__ = ["DETECTORS", "MODULES", "Detector"]
