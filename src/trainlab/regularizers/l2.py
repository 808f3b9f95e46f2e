"""L2 (ridge) penalty: ``weight * sum w^2`` added to the loss. Unlike AdamW's decoupled weight
decay it goes through the gradient, so adaptive optimizers rescale it."""

from __future__ import annotations

from torch import nn

from trainlab.regularizers.base import Regularizer, WeightPenalty, penalised_parameters


class L2(Regularizer):
    name = "l2"

    def penalty(self, model: nn.Module) -> WeightPenalty | None:
        parameters = penalised_parameters(model, self.options.include_bias_and_norm)
        if self.options.weight == 0 or not parameters:
            return None
        return WeightPenalty(self.name, parameters, float(self.options.weight), power=2)
