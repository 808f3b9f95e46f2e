"""A small Transformer encoder for sequences ``(time, features)``."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn


class TransformerNet(nn.Module):
    """Project each time step to ``d_model``, add a learned position embedding, run a pre-norm
    ``nn.TransformerEncoder``, pool (mean over time, or a learned [CLS] token), linear head."""

    def __init__(self, cfg: Any, input_shape: tuple[int, ...], num_outputs: int) -> None:
        super().__init__()
        if len(input_shape) != 2:
            raise ValueError(
                f"model=transformer needs sequences shaped (time, features), got {input_shape}"
            )
        self.input_shape = tuple(input_shape)
        time_steps, features = input_shape
        d_model = int(cfg.d_model)
        self.pooling = str(cfg.pooling)
        self.embed = nn.Linear(features, d_model)
        # Only created when used: a parameter that never gets a gradient would only confuse.
        self.cls_token = nn.Parameter(torch.zeros(1, 1, d_model)) if self.pooling == "cls" else None
        length = time_steps + (1 if self.cls_token is not None else 0)
        self.position = nn.Parameter(torch.zeros(1, length, d_model))
        # Small random positions (as BERT and ViT) so steps are told apart from the start.
        nn.init.trunc_normal_(self.position, std=0.02)
        if self.cls_token is not None:
            nn.init.trunc_normal_(self.cls_token, std=0.02)
        layer = nn.TransformerEncoderLayer(
            d_model=d_model,
            nhead=int(cfg.heads),
            dim_feedforward=int(cfg.dim_feedforward),
            dropout=float(cfg.dropout),
            activation=str(cfg.activation),
            batch_first=True,
            norm_first=True,  # pre-norm: trains stably without a learning-rate warm-up
        )
        self.encoder = nn.TransformerEncoder(
            layer, num_layers=int(cfg.layers), enable_nested_tensor=False
        )
        self.norm = nn.LayerNorm(d_model)  # pre-norm blocks leave the output unnormalised
        self.head = nn.Linear(d_model, num_outputs)

    def forward(self, sequences: torch.Tensor) -> torch.Tensor:
        sequences = sequences.reshape(sequences.shape[0], *self.input_shape)
        tokens = self.embed(sequences)
        if self.cls_token is not None:
            tokens = torch.cat([self.cls_token.expand(tokens.shape[0], -1, -1), tokens], dim=1)
        encoded = self.norm(self.encoder(tokens + self.position))
        pooled = encoded[:, 0] if self.cls_token is not None else encoded.mean(dim=1)
        return self.head(pooled)


def build_transformer(cfg: Any, input_shape: tuple[int, ...], num_outputs: int) -> nn.Module:
    """A Transformer encoder sized for sequences of ``input_shape`` = (time, features)."""
    return TransformerNet(cfg, input_shape, num_outputs)
