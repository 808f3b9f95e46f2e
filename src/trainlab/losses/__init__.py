"""Losses by short name. ``auto`` picks one from the task; each loss says how many outputs
the model needs and how the targets must be typed (prepared once, not per step).

Every classification loss accepts soft targets as well as hard ones, so the batch
regularizers (label_smoothing, mixup) can hand it probability rows ``(N, C)`` or, for a
single-logit loss, probabilities in [0, 1].
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from trainlab.data.datasets import CLASSIFICATION, DatasetInfo
from trainlab.losses.class_weights import balanced_class_weights, class_weights
from trainlab.losses.focal import FocalLoss
from trainlab.losses.quantile import QuantileLoss


@dataclass
class Loss:
    """A loss module plus the model head size and target dtype it expects."""

    name: str
    module: nn.Module
    num_outputs: int
    target_dtype: torch.dtype
    squeeze_output: bool  # a single-output head: (N, 1) -> (N,)

    def __call__(self, outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        if self.squeeze_output:
            outputs = outputs.squeeze(-1)
        return self.module(outputs, targets)


def resolve_loss_name(cfg: Any, info: DatasetInfo) -> str:
    """The concrete loss name; ``auto`` becomes cross_entropy, bce or mse from the task."""
    if cfg.name != "auto":
        return str(cfg.name)
    if info.task != CLASSIFICATION:
        return "mse"
    return "bce" if info.num_classes == 2 else "cross_entropy"


# (resolved name, options, dataset info, training targets or None) -> Loss
LossBuilder = Callable[[str, Any, DatasetInfo, np.ndarray | None], Loss]


def _class_logits(name: str, module: nn.Module, info: DatasetInfo) -> Loss:
    return Loss(name, module, info.num_classes, torch.int64, squeeze_output=False)


def _one_logit(name: str, module: nn.Module) -> Loss:
    return Loss(name, module, 1, torch.float32, squeeze_output=True)


def _cross_entropy(
    name: str, cfg: Any, info: DatasetInfo, train_targets: np.ndarray | None
) -> Loss:
    weights = class_weights(cfg.class_weights, info.num_classes, train_targets)
    module = nn.CrossEntropyLoss(weight=weights, label_smoothing=float(cfg.label_smoothing))
    return _class_logits(name, module, info)


def _bce(name: str, cfg: Any, info: DatasetInfo, train_targets: np.ndarray | None) -> Loss:
    pos_weight = None if cfg.pos_weight is None else torch.tensor(float(cfg.pos_weight))
    return _one_logit(name, nn.BCEWithLogitsLoss(pos_weight=pos_weight))


def _focal(name: str, cfg: Any, info: DatasetInfo, train_targets: np.ndarray | None) -> Loss:
    binary = info.num_classes == 2
    alpha = cfg.alpha
    if isinstance(alpha, int | float) and not isinstance(alpha, bool):
        if not binary:
            raise ValueError("a single focal alpha is for binary tasks; give one per class")
        weights: torch.Tensor | None = torch.tensor([1 - float(alpha), float(alpha)])
    else:
        weights = class_weights(alpha, info.num_classes, train_targets)
    module = FocalLoss(float(cfg.gamma), binary=binary, class_weights=weights)
    return _one_logit(name, module) if binary else _class_logits(name, module, info)


LOSS_BUILDERS: dict[str, LossBuilder] = {
    "cross_entropy": _cross_entropy,
    "bce": _bce,
    "bce_with_logits": _bce,
    "focal": _focal,
    "mse": lambda name, cfg, info, targets: _one_logit(name, nn.MSELoss()),
    "mae": lambda name, cfg, info, targets: _one_logit(name, nn.L1Loss()),
    "huber": lambda name, cfg, info, targets: _one_logit(
        name, nn.HuberLoss(delta=float(cfg.delta))
    ),
    "smooth_l1": lambda name, cfg, info, targets: _one_logit(
        name, nn.SmoothL1Loss(beta=float(cfg.beta))
    ),
    "quantile": lambda name, cfg, info, targets: _one_logit(
        name, QuantileLoss(float(cfg.quantile))
    ),
}


def build_loss(cfg: Any, info: DatasetInfo, train_targets: np.ndarray | None = None) -> Loss:
    """The configured loss for a dataset with ``info``. ``train_targets`` (the training
    split's labels) are needed only for ``class_weights=balanced`` / ``alpha=balanced``."""
    name = resolve_loss_name(cfg, info)
    try:
        builder = LOSS_BUILDERS[name]
    except KeyError:
        known = ", ".join(["auto", *sorted(LOSS_BUILDERS)])
        raise ValueError(f"unknown loss {name!r}; known: {known}") from None
    # ``auto`` has no options of its own: its choice is built with that loss's defaults.
    options = cfg if cfg.name != "auto" else _defaults_of(name)
    return builder(name, options, info, train_targets)


def _defaults_of(name: str) -> Any:
    from omegaconf import OmegaConf

    from trainlab.config.schema.loss import LOSS_SCHEMAS

    return OmegaConf.structured(LOSS_SCHEMAS[name])


__all__ = ["LOSS_BUILDERS", "Loss", "balanced_class_weights", "build_loss", "resolve_loss_name"]
