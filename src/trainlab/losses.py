"""Losses by short name. ``auto`` picks one from the task; each loss says how many outputs
the model needs and how the targets must be typed (prepared once, not per step)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from trainlab.data.datasets import CLASSIFICATION, DatasetInfo


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


def build_loss(cfg: Any, info: DatasetInfo) -> Loss:
    """The configured loss for a dataset with ``info``."""
    name = resolve_loss_name(cfg, info)
    if name == "cross_entropy":
        smoothing = float(getattr(cfg, "label_smoothing", 0.0))
        return Loss(
            name,
            nn.CrossEntropyLoss(label_smoothing=smoothing),
            info.num_classes,
            torch.int64,
            squeeze_output=False,
        )
    if name == "bce":
        pos_weight = getattr(cfg, "pos_weight", None)
        weight = None if pos_weight is None else torch.tensor(float(pos_weight))
        return Loss(
            name, nn.BCEWithLogitsLoss(pos_weight=weight), 1, torch.float32, squeeze_output=True
        )
    if name == "mse":
        return Loss(name, nn.MSELoss(), 1, torch.float32, squeeze_output=True)
    raise ValueError(f"unknown loss {name!r}; known: auto, cross_entropy, bce, mse")
