"""Building blocks shared by the model families: activations, normalisations, dropout, DropPath."""

from __future__ import annotations

import torch
from torch import nn

ACTIVATION_LAYERS: dict[str, type[nn.Module]] = {
    "relu": nn.ReLU,
    "leaky_relu": nn.LeakyReLU,
    "prelu": nn.PReLU,  # one learned negative slope, initialised at 0.25
    "elu": nn.ELU,
    "selu": nn.SELU,
    "gelu": nn.GELU,
    "silu": nn.SiLU,
    "tanh": nn.Tanh,
    "sigmoid": nn.Sigmoid,
}


def activation(name: str) -> nn.Module:
    """A fresh activation layer by short name (PReLU has a parameter, so never share one)."""
    try:
        return ACTIVATION_LAYERS[name]()
    except KeyError:
        known = ", ".join(ACTIVATION_LAYERS)
        raise ValueError(f"unknown activation {name!r}; known: {known}") from None


def feature_norm(kind: str, width: int) -> nn.Module | None:
    """A normalisation over the features of ``(N, width)`` activations, or None for ``none``."""
    if kind == "none":
        return None
    if kind == "batch":
        return nn.BatchNorm1d(width)
    if kind == "layer":
        return nn.LayerNorm(width)
    if kind == "rms":
        return nn.RMSNorm(width)
    raise ValueError(f"unknown norm {kind!r}; known: none, batch, layer, rms")


def has_shift(norm_kind: str) -> bool:
    """True if the normalisation subtracts a mean and adds its own learned shift, which makes
    the bias of the layer before it redundant (its gradient is zero or nearly so)."""
    return norm_kind in ("batch", "layer", "group", "instance")


def dropout(kind: str, probability: float) -> nn.Module | None:
    """Standard dropout, or alpha dropout (keeps SELU's zero mean and unit variance)."""
    if probability == 0:
        return None
    if kind == "standard":
        return nn.Dropout(probability)
    if kind == "alpha":
        return nn.AlphaDropout(probability)
    raise ValueError(f"unknown dropout type {kind!r}; known: standard, alpha")


class DropPath(nn.Module):
    """Stochastic depth: while training, skip a residual branch for a random subset of the
    examples (each with ``probability``) and scale the kept ones by ``1 / (1 - probability)``,
    so the expected output is unchanged and evaluation needs no rescaling."""

    def __init__(self, probability: float) -> None:
        super().__init__()
        if not 0 <= probability < 1:
            raise ValueError(f"drop-path probability must be in [0, 1), got {probability}")
        self.probability = probability

    def forward(self, branch: torch.Tensor) -> torch.Tensor:
        if not self.training or self.probability == 0:
            return branch
        keep = 1 - self.probability
        shape = (branch.shape[0],) + (1,) * (branch.ndim - 1)
        mask = branch.new_empty(shape).bernoulli_(keep)
        return branch * mask / keep

    def extra_repr(self) -> str:
        return f"probability={self.probability}"


def sequential(*layers: nn.Module | None) -> nn.Sequential:
    """``nn.Sequential`` of the layers that are not None (optional norms and dropouts)."""
    return nn.Sequential(*(layer for layer in layers if layer is not None))
