"""Optimizers by short name (a registry, as timm's), built on torch.optim.

Parameter groups: weight decay applies to weight matrices only; biases and normalisation
parameters (every parameter with fewer than two dimensions) are exempt unless
``optimizer.decay_bias_and_norm=true``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn


@dataclass(frozen=True)
class OptimizerInfo:
    """A registry entry: how to build the optimizer and how it applies weight decay."""

    name: str
    factory: Callable[[list[dict[str, Any]], Any], torch.optim.Optimizer]
    decoupled_decay: bool  # True: AdamW-style decay; False: L2 added to the gradient


def _sgd(groups: list[dict[str, Any]], cfg: Any) -> torch.optim.Optimizer:
    return torch.optim.SGD(
        groups, lr=cfg.lr, momentum=cfg.momentum, nesterov=cfg.nesterov, dampening=cfg.dampening
    )


def _adam(groups: list[dict[str, Any]], cfg: Any) -> torch.optim.Optimizer:
    return torch.optim.Adam(
        groups, lr=cfg.lr, betas=tuple(cfg.betas), eps=cfg.eps, amsgrad=cfg.amsgrad
    )


def _adamw(groups: list[dict[str, Any]], cfg: Any) -> torch.optim.Optimizer:
    return torch.optim.AdamW(
        groups, lr=cfg.lr, betas=tuple(cfg.betas), eps=cfg.eps, amsgrad=cfg.amsgrad
    )


OPTIMIZERS: dict[str, OptimizerInfo] = {
    info.name: info
    for info in (
        OptimizerInfo("sgd", _sgd, decoupled_decay=False),
        OptimizerInfo("adam", _adam, decoupled_decay=False),
        OptimizerInfo("adamw", _adamw, decoupled_decay=True),
    )
}


def parameter_groups(
    model: nn.Module, weight_decay: float, decay_bias_and_norm: bool
) -> list[dict[str, Any]]:
    """Two groups: weights that decay, and biases/norm parameters that do not (unless asked)."""
    decay: list[nn.Parameter] = []
    no_decay: list[nn.Parameter] = []
    for parameter in model.parameters():
        if not parameter.requires_grad:
            continue
        (decay if parameter.ndim >= 2 or decay_bias_and_norm else no_decay).append(parameter)
    groups = [{"params": decay, "weight_decay": weight_decay}]
    if no_decay:
        groups.append({"params": no_decay, "weight_decay": 0.0})
    return groups


def build_optimizer(cfg: Any, model: nn.Module) -> torch.optim.Optimizer:
    """The optimizer named by ``cfg.name`` over ``model``'s parameters."""
    try:
        info = OPTIMIZERS[cfg.name]
    except KeyError:
        known = ", ".join(sorted(OPTIMIZERS))
        raise ValueError(f"unknown optimizer {cfg.name!r}; known: {known}") from None
    groups = parameter_groups(model, cfg.weight_decay, cfg.decay_bias_and_norm)
    return info.factory(groups, cfg)
