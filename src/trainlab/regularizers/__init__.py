"""Regularizers by short name; several combine (``regularizer=[l2,dropout,mixup]``).

Each is a small object (:class:`~trainlab.regularizers.base.Regularizer`, one module each)
that may touch the model (dropout, dropconnect, droppath, spectral_norm), the loss (l1, l2,
elastic_net), the training batch (label_smoothing, input_noise, feature_dropout, mixup) or
the step (max_norm). :func:`build_regularization` applies the model changes and returns the
rest for the loop; call it before the optimizer is built, so the optimizer sees the final
parameters.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from torch import nn

from trainlab.regularizers.base import (
    AfterStep,
    BatchTransform,
    Regularizer,
    RegularizerContext,
    WeightPenalty,
)
from trainlab.regularizers.dropconnect import DropConnect
from trainlab.regularizers.dropout import Dropout
from trainlab.regularizers.droppath import DropPath
from trainlab.regularizers.elastic_net import ElasticNet
from trainlab.regularizers.feature_dropout import FeatureDropout
from trainlab.regularizers.input_noise import InputNoise
from trainlab.regularizers.l1 import L1
from trainlab.regularizers.l2 import L2
from trainlab.regularizers.label_smoothing import LabelSmoothing
from trainlab.regularizers.max_norm import MaxNorm
from trainlab.regularizers.mixup import Mixup
from trainlab.regularizers.spectral_norm import SpectralNorm

REGULARIZERS: dict[str, type[Regularizer]] = {
    cls.name: cls
    for cls in (
        L1,
        L2,
        ElasticNet,
        Dropout,
        DropConnect,
        DropPath,
        SpectralNorm,
        MaxNorm,
        LabelSmoothing,
        InputNoise,
        FeatureDropout,
        Mixup,
    )
}


@dataclass
class Regularization:
    """What the configured regularizers hand to the loop (the model is already changed)."""

    names: list[str] = field(default_factory=list)  # the regularizers applied, in order
    penalties: list[WeightPenalty] = field(default_factory=list)
    batch_transforms: list[BatchTransform] = field(default_factory=list)
    after_step: list[AfterStep] = field(default_factory=list)


def create(name: str, options: Any, context: RegularizerContext) -> Regularizer:
    """The regularizer ``name`` with its options; an unknown name lists the known ones."""
    try:
        return REGULARIZERS[name](options, context)
    except KeyError:
        known = ", ".join(sorted(REGULARIZERS))
        raise ValueError(f"unknown regularizer {name!r}; known: {known}") from None


def build_regularization(cfg: Any, model: nn.Module, context: RegularizerContext) -> Regularization:
    """Apply every configured regularizer (``cfg`` maps name -> options) to ``model`` and
    collect its penalties, batch transforms and after-step hooks.

    Model changes come first, so penalties and constraints see the final parameters (the
    original weight behind a spectral-norm parametrization). Batch transforms run in the order
    the regularizers are listed."""
    regularizers = [create(str(name), options, context) for name, options in cfg.items()]
    for regularizer in regularizers:
        regularizer.modify_model(model)
    built = Regularization(names=[r.name for r in regularizers])
    for regularizer in regularizers:
        if (penalty := regularizer.penalty(model)) is not None:
            built.penalties.append(penalty)
        if (transform := regularizer.batch_transform()) is not None:
            built.batch_transforms.append(transform)
        if (hook := regularizer.after_step(model)) is not None:
            built.after_step.append(hook)
    return built


def regularizer_problems(
    cfg: Any, context: RegularizerContext, make_model: Callable[[], Any]
) -> list[tuple[str, str]]:
    """``(name, why)`` for every configured regularizer that cannot work with this task or
    model; ``make_model`` builds the model (or returns None if it cannot be built)."""
    regularizers = [create(str(name), options, context) for name, options in cfg.items()]
    model = make_model() if any(r.needs_model for r in regularizers) else None
    problems = []
    for regularizer in regularizers:
        message = regularizer.problem(model)
        if message is not None:
            problems.append((regularizer.name, message))
    return problems


__all__ = [
    "REGULARIZERS",
    "AfterStep",
    "BatchTransform",
    "Regularization",
    "Regularizer",
    "RegularizerContext",
    "WeightPenalty",
    "build_regularization",
    "create",
    "regularizer_problems",
]
