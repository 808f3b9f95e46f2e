"""The residual MLP: pre-norm residual blocks, so depth does not make training harder."""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

from trainlab.models.layers import DropPath, activation, feature_norm, sequential


class ResidualBlock(nn.Module):
    """``shortcut(x) + drop_path(branch(x))`` with branch = norm -> Linear -> activation ->
    dropout -> Linear. The shortcut is the identity, or a linear projection when the block
    changes the width (the sum needs equal widths)."""

    def __init__(self, cfg: Any, in_width: int, width: int, drop_path: float) -> None:
        super().__init__()
        self.shortcut: nn.Module = (
            nn.Identity() if in_width == width else nn.Linear(in_width, width, bias=False)
        )
        self.branch = sequential(
            feature_norm(cfg.norm, in_width),
            nn.Linear(in_width, width),
            activation(cfg.activation),
            nn.Dropout(cfg.dropout) if cfg.dropout > 0 else None,
            nn.Linear(width, width),
        )
        self.drop_path = DropPath(drop_path)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.shortcut(features) + self.drop_path(self.branch(features))


class ResMLP(nn.Module):
    """Residual blocks of the configured widths, a final norm and activation, a linear head."""

    def __init__(self, cfg: Any, input_shape: tuple[int, ...], num_outputs: int) -> None:
        super().__init__()
        widths = [math.prod(input_shape), *map(int, cfg.hidden_sizes)]
        depth = len(widths) - 1
        # The linear rule of stochastic depth (Huang et al., 2016): deeper blocks are skipped
        # more often, the last one with probability drop_path.
        self.blocks = nn.Sequential(
            *(
                ResidualBlock(cfg, widths[i], widths[i + 1], cfg.drop_path * (i + 1) / depth)
                for i in range(depth)
            )
        )
        self.head = sequential(
            feature_norm(cfg.norm, widths[-1]),
            activation(cfg.activation),
            nn.Linear(widths[-1], num_outputs),
        )

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.head(self.blocks(features.flatten(1)))


def build_resmlp(cfg: Any, input_shape: tuple[int, ...], num_outputs: int) -> nn.Module:
    """A residual MLP sized for ``input_shape`` (flattened) and ``num_outputs``."""
    return ResMLP(cfg, input_shape, num_outputs)
