"""Optimizers by short name (a registry, as timm's), built on torch.optim and, for LAMB, Lion
and AdaBound, on the ``pytorch-optimizer`` package (imported only when one of them is built).

Parameter groups: weight decay applies to weight matrices only; biases and normalisation
parameters (every parameter with fewer than two dimensions) are exempt unless
``optimizer.decay_bias_and_norm=true``.

Kernels: ``optimizer.implementation`` (sgd, adam, adamw, adagrad) picks how torch runs the
update. ``auto`` takes torch's fused kernel (one vectorised kernel per parameter instead of
about seven elementwise ops, each with its own dispatch: about a fifth of a small model's
step on the CPU) wherever torch has one for the parameters' device and dtype, and torch's
default otherwise; ``fused``, ``foreach`` and ``for_loop`` ask for one explicitly. The fused
kernel computes the same update with a different rounding order, so its weights differ from
the default kernel's in the last bits (and chaotically more after many steps).

Weight decay is *coupled L2* (``weight_decay * w`` added to the gradient, which adaptive
optimizers then rescale) or *decoupled* (the weights shrink by ``lr * weight_decay * w``
outside the adaptive step, as in AdamW); ``OptimizerInfo.decoupled_decay`` says which.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

Groups = list[dict[str, Any]]


@dataclass(frozen=True)
class OptimizerInfo:
    """A registry entry: how to build the optimizer and how it applies weight decay."""

    name: str
    # (groups, cfg, **kernel options: fused / foreach, for the optimizers that take them)
    factory: Callable[..., torch.optim.Optimizer]
    decoupled_decay: bool  # True: AdamW-style decay; False: L2 added to the gradient
    package: str = "torch"  # where the implementation comes from


def _betas(cfg: Any) -> tuple[float, float]:
    first, second = cfg.betas
    return float(first), float(second)


def _sgd(groups: Groups, cfg: Any, **kernel: bool) -> torch.optim.Optimizer:
    return torch.optim.SGD(
        groups,
        lr=cfg.lr,
        momentum=cfg.momentum,
        nesterov=cfg.nesterov,
        dampening=cfg.dampening,
        **kernel,
    )


def _adam(groups: Groups, cfg: Any, **kernel: bool) -> torch.optim.Optimizer:
    return torch.optim.Adam(
        groups, lr=cfg.lr, betas=_betas(cfg), eps=cfg.eps, amsgrad=cfg.amsgrad, **kernel
    )


def _adamw(groups: Groups, cfg: Any, **kernel: bool) -> torch.optim.Optimizer:
    return torch.optim.AdamW(
        groups, lr=cfg.lr, betas=_betas(cfg), eps=cfg.eps, amsgrad=cfg.amsgrad, **kernel
    )


def _nadam(groups: Groups, cfg: Any) -> torch.optim.Optimizer:
    return torch.optim.NAdam(
        groups,
        lr=cfg.lr,
        betas=_betas(cfg),
        eps=cfg.eps,
        momentum_decay=cfg.momentum_decay,
        decoupled_weight_decay=False,
    )


def _radam(groups: Groups, cfg: Any) -> torch.optim.Optimizer:
    return torch.optim.RAdam(
        groups, lr=cfg.lr, betas=_betas(cfg), eps=cfg.eps, decoupled_weight_decay=False
    )


def _rmsprop(groups: Groups, cfg: Any) -> torch.optim.Optimizer:
    return torch.optim.RMSprop(
        groups,
        lr=cfg.lr,
        alpha=cfg.alpha,
        eps=cfg.eps,
        momentum=cfg.momentum,
        centered=cfg.centered,
    )


def _adagrad(groups: Groups, cfg: Any, **kernel: bool) -> torch.optim.Optimizer:
    return torch.optim.Adagrad(
        groups,
        lr=cfg.lr,
        lr_decay=cfg.lr_decay,
        initial_accumulator_value=cfg.initial_accumulator_value,
        eps=cfg.eps,
        **kernel,
    )


def _adadelta(groups: Groups, cfg: Any) -> torch.optim.Optimizer:
    return torch.optim.Adadelta(groups, lr=cfg.lr, rho=cfg.rho, eps=cfg.eps)


def _lamb(groups: Groups, cfg: Any) -> torch.optim.Optimizer:
    from pytorch_optimizer import Lamb

    # weight_decouple: the weights shrink by lr * weight_decay outside the trust-ratio step.
    optimizer: torch.optim.Optimizer = Lamb(
        groups, lr=cfg.lr, betas=_betas(cfg), eps=cfg.eps, weight_decouple=True
    )
    return optimizer


def _lion(groups: Groups, cfg: Any) -> torch.optim.Optimizer:
    from pytorch_optimizer import Lion

    optimizer: torch.optim.Optimizer = Lion(
        groups, lr=cfg.lr, betas=_betas(cfg), weight_decouple=True
    )
    return optimizer


def _adabound(groups: Groups, cfg: Any) -> torch.optim.Optimizer:
    from pytorch_optimizer import AdaBound

    # Coupled L2, as in the paper's reference implementation (pytorch-optimizer's default
    # would be decoupled).
    optimizer: torch.optim.Optimizer = AdaBound(
        groups,
        lr=cfg.lr,
        final_lr=cfg.final_lr,
        gamma=cfg.gamma,
        betas=_betas(cfg),
        eps=cfg.eps,
        ams_bound=cfg.amsbound,
        weight_decouple=False,
    )
    return optimizer


OPTIMIZERS: dict[str, OptimizerInfo] = {
    info.name: info
    for info in (
        OptimizerInfo("sgd", _sgd, decoupled_decay=False),
        OptimizerInfo("adam", _adam, decoupled_decay=False),
        OptimizerInfo("adamw", _adamw, decoupled_decay=True),
        OptimizerInfo("nadam", _nadam, decoupled_decay=False),
        OptimizerInfo("radam", _radam, decoupled_decay=False),
        OptimizerInfo("rmsprop", _rmsprop, decoupled_decay=False),
        OptimizerInfo("adagrad", _adagrad, decoupled_decay=False),
        OptimizerInfo("adadelta", _adadelta, decoupled_decay=False),
        OptimizerInfo("lamb", _lamb, decoupled_decay=True, package="pytorch-optimizer"),
        OptimizerInfo("lion", _lion, decoupled_decay=True, package="pytorch-optimizer"),
        OptimizerInfo("adabound", _adabound, decoupled_decay=False, package="pytorch-optimizer"),
    )
}


def list_optimizers() -> list[str]:
    """The short names of every registered optimizer, sorted."""
    return sorted(OPTIMIZERS)


def parameter_groups(
    model: nn.Module, weight_decay: float, decay_bias_and_norm: bool
) -> list[dict[str, Any]]:
    """Two groups: weights that decay, and biases/norm parameters that do not (unless asked).
    Without weight decay the split means nothing: one group, as a hand-written loop has
    (each group costs the optimizer a pass of its own per step)."""
    if weight_decay == 0:
        # weight_decay set explicitly: AdamW's own default is 0.01, not 0.
        return [{"params": [p for p in model.parameters() if p.requires_grad], "weight_decay": 0.0}]
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
        known = ", ".join(list_optimizers())
        raise ValueError(f"unknown optimizer {cfg.name!r}; known: {known}") from None
    groups = parameter_groups(model, cfg.weight_decay, cfg.decay_bias_and_norm)
    choice = cfg.get("implementation")  # None: an optimizer torch has one kernel for
    if choice is None:
        return info.factory(groups, cfg)
    if choice in ("auto", "fused"):
        problem = _fused_problem(cfg.name, [p for group in groups for p in group["params"]])
        if problem is not None:
            if choice == "auto":
                return info.factory(groups, cfg)  # torch's default kernel
            from trainlab.config.errors import ConfigError, Problem

            raise ConfigError(
                [
                    Problem(
                        "optimizer.implementation",
                        f"fused is not available for {cfg.name} here ({problem}); "
                        "use optimizer.implementation=auto",
                    )
                ]
            )
    return info.factory(groups, cfg, **KERNEL_OPTIONS[choice])


def _fused_problem(name: str, parameters: list[torch.Tensor]) -> str | None:
    """Why torch's fused kernel cannot update ``parameters``, or None when it can. Torch
    itself checks only at the first step, deep in the loop; asked here, before training."""
    try:
        from torch.optim.optimizer import _device_dtype_check_for_fused
    except ImportError:  # a torch that checks differently: keep its default kernel
        return "this torch version has no fused check"
    try:
        for parameter in parameters:
            # torch's fused Adagrad runs on the CPU only
            _device_dtype_check_for_fused(parameter, cuda_unsupported=name == "adagrad")
    except RuntimeError as error:
        return str(error).splitlines()[0]
    return None


# optimizer.implementation -> torch.optim keyword arguments
KERNEL_OPTIONS: dict[str, dict[str, bool]] = {
    "auto": {"fused": True},  # where _fused_problem finds none; else torch's default
    "fused": {"fused": True},
    "foreach": {"foreach": True},
    "for_loop": {"foreach": False},
}


def optimizer_kernel(optimizer: torch.optim.Optimizer) -> str:
    """The update kernel the optimizer runs: fused, foreach, for_loop or torch's default
    (what ``optimizer.implementation=auto`` resolved to)."""
    defaults = optimizer.defaults
    if defaults.get("fused"):
        return "fused"
    if defaults.get("foreach"):
        return "foreach"
    return "for_loop" if defaults.get("foreach") is False else "default"
