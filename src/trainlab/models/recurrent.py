"""Recurrent networks (plain RNN, LSTM, GRU) for sequences ``(time, features)``."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import nn

RECURRENT_CELLS: dict[str, Callable[..., nn.RNNBase]] = {
    "rnn": nn.RNN,
    "lstm": nn.LSTM,
    "gru": nn.GRU,
}


class RecurrentNet(nn.Module):
    """A stack of recurrent layers and a linear head on either the final hidden state (of each
    direction) or the mean of the outputs over time."""

    def __init__(self, cfg: Any, cell: str, input_shape: tuple[int, ...], num_outputs: int) -> None:
        super().__init__()
        if len(input_shape) != 2:
            raise ValueError(
                f"model={cfg.name} needs sequences shaped (time, features), got {input_shape}"
            )
        self.input_shape = tuple(input_shape)
        self.pooling = str(cfg.pooling)
        self.directions = 2 if cfg.bidirectional else 1
        layers = int(cfg.num_layers)
        self.rnn = RECURRENT_CELLS[cell](
            input_size=input_shape[1],
            hidden_size=int(cfg.hidden_size),
            num_layers=layers,
            batch_first=True,
            bidirectional=bool(cfg.bidirectional),
            # torch applies this between stacked layers only (and warns for a single layer).
            dropout=float(cfg.dropout) if layers > 1 else 0.0,
        )
        # The same rate before the head, so dropout acts on a single layer too. Built even at
        # rate 0 (a no-op) so `regularizer=dropout` has a layer to set.
        self.dropout = nn.Dropout(cfg.dropout)
        self.head = nn.Linear(self.directions * int(cfg.hidden_size), num_outputs)

    def forward(self, sequences: torch.Tensor) -> torch.Tensor:
        sequences = sequences.reshape(sequences.shape[0], *self.input_shape)
        outputs, hidden = self.rnn(sequences)
        if self.pooling == "mean":
            features = outputs.mean(dim=1)
        else:
            # The final state of each direction: for the backward direction that is its state
            # after reading the whole sequence back to front (outputs[:, -1] would be its first).
            final = hidden[0] if isinstance(hidden, tuple) else hidden  # LSTM: (h, c)
            last_layer = final[-self.directions :]  # (directions, N, hidden)
            features = last_layer.transpose(0, 1).flatten(1)
        return self.head(self.dropout(features))


def build_rnn(cfg: Any, input_shape: tuple[int, ...], num_outputs: int) -> nn.Module:
    """``model=rnn``: the recurrent cell chosen by ``model.cell``."""
    return RecurrentNet(cfg, str(cfg.cell), input_shape, num_outputs)


def build_lstm(cfg: Any, input_shape: tuple[int, ...], num_outputs: int) -> nn.Module:
    """``model=lstm``: long short-term memory cells."""
    return RecurrentNet(cfg, "lstm", input_shape, num_outputs)


def build_gru(cfg: Any, input_shape: tuple[int, ...], num_outputs: int) -> nn.Module:
    """``model=gru``: gated recurrent units."""
    return RecurrentNet(cfg, "gru", input_shape, num_outputs)
