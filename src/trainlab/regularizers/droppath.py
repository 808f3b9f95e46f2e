"""Stochastic depth (Huang et al., 2016): while training, skip a residual block's branch for a
random subset of the examples, so the network trains as an ensemble of shallower ones.

It acts on the model's :class:`~trainlab.models.layers.DropPath` layers (a residual block
computes ``shortcut(x) + drop_path(branch(x))``) and sets their rates by the linear rule: the
deepest block drops with probability ``p``, block ``i`` of ``n`` with ``p * i / n``. So
``regularizer.droppath.p`` overrides ``model.drop_path``. A model without residual blocks is a
validation error: skipping a plain layer would cut the network in two.
"""

from __future__ import annotations

from torch import nn

from trainlab.models.layers import DropPath as DropPathLayer
from trainlab.regularizers.base import Regularizer


def residual_branches(model: nn.Module) -> list[DropPathLayer]:
    """The DropPath layer of every residual block, shallowest first."""
    return [m for m in model.modules() if isinstance(m, DropPathLayer)]


class DropPath(Regularizer):
    name = "droppath"
    needs_model = True

    def problem(self, model: nn.Module | None) -> str | None:
        if model is None or residual_branches(model):
            return None
        return (
            "stochastic depth skips residual branches, and this model has no residual blocks; "
            "use model=resmlp, or dropout for a plain network."
        )

    def modify_model(self, model: nn.Module) -> None:
        layers = residual_branches(model)
        if not layers:
            raise ValueError(self.problem(model))
        for depth, layer in enumerate(layers, start=1):
            layer.probability = float(self.options.p) * depth / len(layers)
