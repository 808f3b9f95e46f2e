"""Models by short name: ``build_model(cfg.model, input_shape, num_outputs)``.

A builder gets the shape of one example (``(features,)``, ``(channels, H, W)`` or
``(time, features)``) and the number of outputs the loss needs; ``build_model`` then applies
the initialiser named by ``model.init`` (see :mod:`trainlab.models.init`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from torch import nn

from trainlab.models.cnn import build_cnn
from trainlab.models.init import INITIALISERS, initialise
from trainlab.models.linear import build_linear
from trainlab.models.mlp import build_mlp
from trainlab.models.recurrent import build_gru, build_lstm, build_rnn
from trainlab.models.resmlp import build_resmlp
from trainlab.models.transformer import build_transformer

ModelBuilder = Callable[[Any, tuple[int, ...], int], nn.Module]

MODEL_BUILDERS: dict[str, ModelBuilder] = {
    "linear": build_linear,
    "mlp": build_mlp,
    "resmlp": build_resmlp,
    "cnn": build_cnn,
    "rnn": build_rnn,
    "lstm": build_lstm,
    "gru": build_gru,
    "transformer": build_transformer,
}

# The activation whose gain the kaiming-style initialisers use, for models without an
# `activation` key: none for the linear model, tanh (the cell's output) for recurrent ones.
FIXED_ACTIVATIONS: dict[str, str] = {
    "linear": "linear",
    "rnn": "tanh",
    "lstm": "tanh",
    "gru": "tanh",
}


def build_model(cfg: Any, input_shape: tuple[int, ...], num_outputs: int) -> nn.Module:
    """The model named by ``cfg.name``, sized for the data, initialised by ``cfg.init``."""
    try:
        builder = MODEL_BUILDERS[cfg.name]
    except KeyError:
        known = ", ".join(sorted(MODEL_BUILDERS))
        raise ValueError(f"unknown model {cfg.name!r}; known: {known}") from None
    model = builder(cfg, tuple(input_shape), num_outputs)
    return initialise(model, str(cfg.init), activation_of(cfg))


def activation_of(cfg: Any) -> str:
    """The activation a model's initialisation gain follows: its ``activation`` key, else the
    fixed one of its family."""
    return str(cfg.activation) if "activation" in cfg else FIXED_ACTIVATIONS[cfg.name]


__all__ = ["FIXED_ACTIVATIONS", "INITIALISERS", "MODEL_BUILDERS", "activation_of", "build_model"]
