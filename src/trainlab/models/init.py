"""Weight initialisers by short name (``model.init``), applied to a model after it is built.

Every scheme except ``default`` re-initialises the weights of the layers that hold them
(linear, convolution, recurrent and attention projections) and sets their biases to zero;
normalisation layers keep weight 1 and bias 0, and embeddings (positions, [CLS]) keep their
own small random start. ``default`` leaves PyTorch's per-layer initialisation alone.

Which gain a scheme uses:

- ``xavier_*`` and ``orthogonal``: gain 1, the textbook formulas (Glorot & Bengio 2010:
  ``U(-a, a)`` with ``a = sqrt(6 / (fan_in + fan_out))``, or ``N(0, 2 / (fan_in + fan_out))``;
  Saxe et al. 2014: a (semi-)orthogonal matrix).
- ``kaiming_*`` and ``trunc_normal``: the gain of the model's activation (He et al. 2015),
  e.g. ``sqrt(2)`` for ReLU, so ``kaiming_normal`` draws ``N(0, gain^2 / fan_in)``.
  ``trunc_normal`` is that normal cut at two standard deviations and widened so the kept
  values still have standard deviation ``gain / sqrt(fan_in)`` (JAX's and Keras'
  ``truncated_normal`` variance scaling); it avoids the rare huge weights of a plain normal.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import nn

# (nonlinearity, parameter) for torch.nn.init.calculate_gain, by model activation.
# GELU, SiLU and ELU are ReLU-like (about half the pre-activations pass), so they take ReLU's
# gain. SELU wants LeCun's 1/fan_in variance (gain 1) to be self-normalising (Klambauer et al.
# 2017; PyTorch's calculate_gain('selu') = 3/4 is meant for a different purpose). PReLU
# starts as a leaky ReLU with slope 0.25. Recurrent cells end in tanh.
GAIN_OF_ACTIVATION: dict[str, tuple[str, float]] = {
    "linear": ("linear", 0.0),
    "relu": ("relu", 0.0),
    "leaky_relu": ("leaky_relu", 0.01),  # nn.LeakyReLU's default slope
    "prelu": ("leaky_relu", 0.25),
    "elu": ("relu", 0.0),
    "selu": ("linear", 0.0),
    "gelu": ("relu", 0.0),
    "silu": ("relu", 0.0),
    "tanh": ("tanh", 0.0),
    "sigmoid": ("sigmoid", 0.0),
}

# The standard deviation of a standard normal truncated to [-2, 2].
_TRUNCATED_STD = 0.87962566103423978


def gain(activation: str) -> float:
    """The recommended gain of an activation (``sqrt(2)`` for ReLU, ``5/3`` for tanh, ...)."""
    nonlinearity, parameter = GAIN_OF_ACTIVATION[activation]
    return nn.init.calculate_gain(nonlinearity, parameter)  # type: ignore[arg-type]


def _xavier_uniform(weight: torch.Tensor, activation: str) -> None:
    nn.init.xavier_uniform_(weight)


def _xavier_normal(weight: torch.Tensor, activation: str) -> None:
    nn.init.xavier_normal_(weight)


def _kaiming_uniform(weight: torch.Tensor, activation: str) -> None:
    nonlinearity, parameter = GAIN_OF_ACTIVATION[activation]
    nn.init.kaiming_uniform_(weight, a=parameter, mode="fan_in", nonlinearity=nonlinearity)  # type: ignore[arg-type]


def _kaiming_normal(weight: torch.Tensor, activation: str) -> None:
    nonlinearity, parameter = GAIN_OF_ACTIVATION[activation]
    nn.init.kaiming_normal_(weight, a=parameter, mode="fan_in", nonlinearity=nonlinearity)  # type: ignore[arg-type]


def _orthogonal(weight: torch.Tensor, activation: str) -> None:
    nn.init.orthogonal_(weight)


def _trunc_normal(weight: torch.Tensor, activation: str) -> None:
    fan_in, _ = nn.init._calculate_fan_in_and_fan_out(weight)
    spread = gain(activation) / math.sqrt(fan_in) / _TRUNCATED_STD
    nn.init.trunc_normal_(weight, mean=0.0, std=spread, a=-2 * spread, b=2 * spread)


INITIALISERS: dict[str, Callable[[torch.Tensor, str], None] | None] = {
    "default": None,  # PyTorch's own initialisation of each layer, untouched
    "xavier_uniform": _xavier_uniform,
    "xavier_normal": _xavier_normal,
    "kaiming_uniform": _kaiming_uniform,
    "kaiming_normal": _kaiming_normal,
    "orthogonal": _orthogonal,
    "trunc_normal": _trunc_normal,
}

# Layers whose weights the schemes initialise (MultiheadAttention holds its input projection
# directly; its output projection is an nn.Linear).
_WEIGHTED_LAYERS = (nn.Linear, nn.modules.conv._ConvNd, nn.RNNBase, nn.MultiheadAttention)


def initialise(model: nn.Module, scheme: str, activation: str = "linear") -> nn.Module:
    """Re-initialise ``model``'s weights with ``scheme`` (biases zero); ``activation`` is the
    model's activation, which sets the gain of the kaiming-style schemes. Returns the model."""
    try:
        initialiser = INITIALISERS[scheme]
    except KeyError:
        known = ", ".join(INITIALISERS)
        raise ValueError(f"unknown initialiser {scheme!r}; known: {known}") from None
    if activation not in GAIN_OF_ACTIVATION:
        known = ", ".join(GAIN_OF_ACTIVATION)
        raise ValueError(f"no initialisation gain for activation {activation!r}; known: {known}")
    if initialiser is None:
        return model
    with torch.no_grad():
        for layer in model.modules():
            if not isinstance(layer, _WEIGHTED_LAYERS):
                continue
            for name, parameter in layer.named_parameters(recurse=False):
                if name.startswith("bias") or "_bias" in name:
                    nn.init.zeros_(parameter)  # bias, in_proj_bias, bias_ih_l0, bias_k, ...
                elif parameter.ndim >= 2:
                    initialiser(parameter, activation)
    return model
