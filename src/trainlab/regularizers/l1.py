"""L1 (lasso) penalty: ``weight * sum |w|``; drives weights to exactly zero (sparse models)."""

from __future__ import annotations

from torch import nn

from trainlab.regularizers.base import Regularizer, WeightPenalty, penalised_parameters


class L1(Regularizer):
    name = "l1"

    def penalty(self, model: nn.Module) -> WeightPenalty | None:
        parameters = penalised_parameters(model, self.options.include_bias_and_norm)
        if self.options.weight == 0 or not parameters:
            return None
        return WeightPenalty(self.name, parameters, float(self.options.weight), power=1)
