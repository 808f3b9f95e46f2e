"""Schemas of the ``model`` group: the network architecture and its initialisation.

Combinations that need the dataset (a CNN needs images, a Transformer sequences) or several
fields at once (d_model divisible by heads) are checked in ``config/combinations.py``.
"""

from __future__ import annotations

from dataclasses import dataclass

from omegaconf import MISSING

from trainlab.config.constraints import at_least, constrained, fraction, one_of

ACTIVATIONS = ("relu", "leaky_relu", "prelu", "elu", "selu", "gelu", "silu", "tanh", "sigmoid")
# The names of trainlab.models.init.INITIALISERS (kept here so validation needs no torch).
INITIALISERS = (
    "default",
    "xavier_uniform",
    "xavier_normal",
    "kaiming_uniform",
    "kaiming_normal",
    "orthogonal",
    "trunc_normal",
)
FEATURE_NORMS = ("none", "batch", "layer", "rms")
IMAGE_NORMS = ("none", "batch", "group", "instance")
RECURRENT_CELLS = ("rnn", "lstm", "gru")


@dataclass
class ModelConfig:
    """Options every model shares."""

    name: str = MISSING
    # Weight initialiser applied after building; biases start at zero (except `default`).
    init: str = one_of("default", *INITIALISERS)


@dataclass
class LinearConfig(ModelConfig):
    """One linear layer: logistic regression (classes) or linear regression (numbers)."""

    name: str = "linear"


@dataclass
class MLPConfig(ModelConfig):
    """A multi-layer perceptron: Linear -> norm -> activation -> dropout, repeated."""

    name: str = "mlp"
    hidden_sizes: list[int] = constrained([128, 128], ge=1)  # width of each hidden layer
    activation: str = one_of("relu", *ACTIVATIONS)
    norm: str = one_of("none", *FEATURE_NORMS)
    dropout: float = fraction(0.0)  # probability of zeroing a hidden unit while training
    dropout_type: str = one_of("standard", "standard", "alpha")  # alpha needs activation=selu


@dataclass
class ResMLPConfig(ModelConfig):
    """Residual MLP blocks (pre-norm), projection shortcuts where the width changes."""

    name: str = "resmlp"
    hidden_sizes: list[int] = constrained([128, 128], ge=1)  # width of each residual block
    activation: str = one_of("gelu", *ACTIVATIONS)
    norm: str = one_of("layer", *FEATURE_NORMS)
    dropout: float = fraction(0.0)  # inside each block's branch
    drop_path: float = fraction(0.0)  # chance of skipping the last block per example


@dataclass
class CNNConfig(ModelConfig):
    """Conv blocks, global average pooling and a linear head, for images (C, H, W)."""

    name: str = "cnn"
    channels: list[int] = constrained([16, 32], ge=1)  # output channels of each conv block
    kernel_size: int = at_least(1, 3)
    activation: str = one_of("relu", *ACTIVATIONS)
    norm: str = one_of("batch", *IMAGE_NORMS)
    norm_groups: int = at_least(1, 8)  # groups of norm=group; must divide every channel count
    dropout: float = fraction(0.0)  # spatial: zeroes whole feature maps
    pool: str = one_of("max", "max", "avg", "none")  # 2x2 downsampling after each block


@dataclass
class RecurrentConfig(ModelConfig):
    """Options of every recurrent model (rnn, lstm, gru)."""

    hidden_size: int = at_least(1, 64)  # units per layer and direction
    num_layers: int = at_least(1, 1)
    bidirectional: bool = False  # also read each sequence backwards (the whole is known)
    dropout: float = fraction(0.0)  # between stacked layers and before the head
    pooling: str = one_of("last", "last", "mean")  # final hidden state, or mean over time


@dataclass
class RNNConfig(RecurrentConfig):
    """A recurrent network whose cell is chosen by `cell`."""

    name: str = "rnn"
    cell: str = one_of("lstm", *RECURRENT_CELLS)


@dataclass
class LSTMConfig(RecurrentConfig):
    """A recurrent network of LSTM cells."""

    name: str = "lstm"


@dataclass
class GRUConfig(RecurrentConfig):
    """A recurrent network of GRU cells."""

    name: str = "gru"


@dataclass
class TransformerConfig(ModelConfig):
    """A small pre-norm Transformer encoder with learned positions, for sequences (T, F)."""

    name: str = "transformer"
    d_model: int = at_least(1, 64)  # width of every token; must be divisible by heads
    heads: int = at_least(1, 4)
    layers: int = at_least(1, 2)
    dim_feedforward: int = at_least(1, 128)
    dropout: float = fraction(0.1)
    activation: str = one_of("relu", "relu", "gelu")
    pooling: str = one_of("mean", "mean", "cls")  # mean over time steps, or a learned [CLS]


MODEL_SCHEMAS: dict[str, type[ModelConfig]] = {
    "linear": LinearConfig,
    "mlp": MLPConfig,
    "resmlp": ResMLPConfig,
    "cnn": CNNConfig,
    "rnn": RNNConfig,
    "lstm": LSTMConfig,
    "gru": GRUConfig,
    "transformer": TransformerConfig,
}
