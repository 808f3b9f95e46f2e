"""Elastic net: a mix of L1 and L2, written as scikit-learn's ``ElasticNet`` does:
``alpha * (l1_ratio * sum |w| + (1 - l1_ratio) / 2 * sum w^2)``. The L1 part makes weights
sparse; the L2 part keeps correlated features sharing weight instead of one winning."""

from __future__ import annotations

import torch
from torch import nn

from trainlab.regularizers.base import Regularizer, WeightPenalty, penalised_parameters


class ElasticNetPenalty(WeightPenalty):
    def __init__(self, parameters: list[torch.Tensor], alpha: float, l1_ratio: float) -> None:
        super().__init__("elastic_net", parameters, alpha, power=1)
        self.l1_ratio = l1_ratio

    def __call__(self) -> torch.Tensor:
        l1 = torch.stack(torch._foreach_norm(self.parameters, 1)).sum()
        squared_l2 = torch.stack(torch._foreach_norm(self.parameters, 2)).square().sum()
        return self.weight * (self.l1_ratio * l1 + (1 - self.l1_ratio) / 2 * squared_l2)


class ElasticNet(Regularizer):
    name = "elastic_net"

    def penalty(self, model: nn.Module) -> WeightPenalty | None:
        parameters = penalised_parameters(model, self.options.include_bias_and_norm)
        if self.options.alpha == 0 or not parameters:
            return None
        return ElasticNetPenalty(
            parameters, float(self.options.alpha), float(self.options.l1_ratio)
        )
