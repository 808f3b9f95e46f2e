"""Every initialiser (``model.init``) draws weights with the statistics of its formula, zeroes
biases, and is applied to every model of the registry.

The formulas are written out here, independently of ``torch.nn.init``; statistics are
measured on a large layer so a tolerance of a few per cent is many standard errors wide.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import pytest
import torch
from torch import nn

from test_models import SHAPES_OF, model_config
from trainlab.config.schema.model import ACTIVATIONS, INITIALISERS, MODEL_SCHEMAS
from trainlab.models import FIXED_ACTIVATIONS, MODEL_BUILDERS, activation_of, build_model
from trainlab.models.init import GAIN_OF_ACTIVATION, gain, initialise
from trainlab.models.init import INITIALISERS as INITIALISER_REGISTRY

FAN_IN, FAN_OUT = 1024, 512  # a weight of shape (FAN_OUT, FAN_IN): half a million values
TOLERANCE = 0.02  # relative, on standard deviations

# Gains written out from He et al. (2015) and PyTorch's table, not computed by torch.
EXPECTED_GAIN = {
    "linear": 1.0,
    "relu": math.sqrt(2),
    "leaky_relu": math.sqrt(2 / (1 + 0.01**2)),
    "prelu": math.sqrt(2 / (1 + 0.25**2)),
    "elu": math.sqrt(2),
    "selu": 1.0,  # LeCun normal: what self-normalising networks need
    "gelu": math.sqrt(2),
    "silu": math.sqrt(2),
    "tanh": 5 / 3,
    "sigmoid": 1.0,
}


def initialised_weight(scheme: str, activation: str = "relu") -> torch.Tensor:
    torch.manual_seed(0)
    layer = nn.Sequential(nn.Linear(FAN_IN, FAN_OUT))
    initialise(layer, scheme, activation)
    assert torch.count_nonzero(layer[0].bias) == 0
    return layer[0].weight.detach()


def _xavier_uniform(weight: torch.Tensor, activation: str) -> None:
    bound = math.sqrt(6 / (FAN_IN + FAN_OUT))
    assert weight.abs().max() <= bound
    assert weight.std().item() == pytest.approx(bound / math.sqrt(3), rel=TOLERANCE)


def _xavier_normal(weight: torch.Tensor, activation: str) -> None:
    assert weight.std().item() == pytest.approx(math.sqrt(2 / (FAN_IN + FAN_OUT)), rel=TOLERANCE)
    assert weight.mean().abs().item() < 1e-3


def _kaiming_uniform(weight: torch.Tensor, activation: str) -> None:
    std = EXPECTED_GAIN[activation] / math.sqrt(FAN_IN)
    assert weight.abs().max() <= std * math.sqrt(3) + 1e-6  # U(-b, b) has std b / sqrt(3)
    assert weight.std().item() == pytest.approx(std, rel=TOLERANCE)


def _kaiming_normal(weight: torch.Tensor, activation: str) -> None:
    std = EXPECTED_GAIN[activation] / math.sqrt(FAN_IN)
    assert weight.std().item() == pytest.approx(std, rel=TOLERANCE)
    assert weight.abs().max() > 3 * std  # a normal, not cut off


def _orthogonal(weight: torch.Tensor, activation: str) -> None:
    # (FAN_OUT, FAN_IN) with FAN_OUT < FAN_IN: orthonormal rows.
    gram = weight @ weight.T
    assert torch.allclose(gram, torch.eye(FAN_OUT), atol=1e-4)


def _trunc_normal(weight: torch.Tensor, activation: str) -> None:
    std = EXPECTED_GAIN[activation] / math.sqrt(FAN_IN)
    # Cut at two standard deviations of the underlying normal, widened by 1/0.8796 so the
    # truncated values keep the target std.
    bound = 2 * std / 0.8796256610342398
    assert weight.abs().max() <= bound + 1e-6
    assert weight.abs().max() > 0.95 * bound
    assert weight.std().item() == pytest.approx(std, rel=TOLERANCE)


def _default(weight: torch.Tensor, activation: str) -> None:
    raise AssertionError("checked by its own test")


FORMULAS: dict[str, Callable[[torch.Tensor, str], None]] = {
    "xavier_uniform": _xavier_uniform,
    "xavier_normal": _xavier_normal,
    "kaiming_uniform": _kaiming_uniform,
    "kaiming_normal": _kaiming_normal,
    "orthogonal": _orthogonal,
    "trunc_normal": _trunc_normal,
    "default": _default,
}
GAIN_FOLLOWING = ("kaiming_uniform", "kaiming_normal", "trunc_normal")


def test_every_initialiser_is_in_the_schema_and_has_a_formula_here() -> None:
    assert tuple(INITIALISER_REGISTRY) == INITIALISERS
    assert set(FORMULAS) == set(INITIALISERS), "add the new initialiser's formula to FORMULAS"


def test_every_activation_has_a_gain() -> None:
    assert set(ACTIVATIONS) | set(FIXED_ACTIVATIONS.values()) <= set(GAIN_OF_ACTIVATION)
    for activation, expected in EXPECTED_GAIN.items():
        assert gain(activation) == pytest.approx(expected), activation
    assert set(EXPECTED_GAIN) == set(GAIN_OF_ACTIVATION)


@pytest.mark.parametrize("scheme", [s for s in INITIALISERS if s != "default"])
def test_weights_follow_the_formula(scheme: str) -> None:
    FORMULAS[scheme](initialised_weight(scheme), "relu")


@pytest.mark.parametrize("activation", sorted(EXPECTED_GAIN))
@pytest.mark.parametrize("scheme", GAIN_FOLLOWING)
def test_kaiming_style_schemes_follow_the_activation_gain(scheme: str, activation: str) -> None:
    FORMULAS[scheme](initialised_weight(scheme, activation), activation)


@pytest.mark.parametrize("scheme", ["xavier_uniform", "xavier_normal", "orthogonal"])
def test_textbook_schemes_ignore_the_activation(scheme: str) -> None:
    assert torch.equal(initialised_weight(scheme, "relu"), initialised_weight(scheme, "tanh"))


def test_default_leaves_pytorch_initialisation_alone() -> None:
    torch.manual_seed(0)
    untouched = nn.Linear(FAN_IN, FAN_OUT)
    torch.manual_seed(0)
    layer = nn.Linear(FAN_IN, FAN_OUT)
    initialise(layer, "default", "relu")
    assert torch.equal(layer.weight, untouched.weight)
    assert torch.equal(layer.bias, untouched.bias)
    assert torch.count_nonzero(layer.bias) > 0


def test_convolution_fan_in_counts_the_kernel() -> None:
    torch.manual_seed(0)
    conv = nn.Conv2d(64, 128, kernel_size=3)
    initialise(conv, "kaiming_normal", "relu")
    expected = math.sqrt(2) / math.sqrt(64 * 3 * 3)
    assert conv.weight.std().item() == pytest.approx(expected, rel=TOLERANCE)
    assert conv.bias is not None and torch.count_nonzero(conv.bias) == 0


def test_recurrent_and_attention_weights_are_initialised_and_biases_zeroed() -> None:
    torch.manual_seed(0)
    lstm = nn.LSTM(input_size=32, hidden_size=64, num_layers=2)
    initialise(lstm, "orthogonal")
    recurrent = lstm.weight_hh_l1  # (4 * hidden, hidden): orthonormal columns
    assert torch.allclose(recurrent.T @ recurrent, torch.eye(64), atol=1e-4)
    assert all(torch.count_nonzero(p) == 0 for n, p in lstm.named_parameters() if "bias" in n)

    attention = nn.MultiheadAttention(embed_dim=64, num_heads=4)
    initialise(attention, "xavier_normal")
    assert torch.count_nonzero(attention.in_proj_bias) == 0
    assert torch.count_nonzero(attention.out_proj.bias) == 0
    std = math.sqrt(2 / (64 + 3 * 64))  # the (3d, d) input projection is one matrix
    assert attention.in_proj_weight.std().item() == pytest.approx(std, rel=0.05)


def test_an_unknown_scheme_names_the_known_ones() -> None:
    with pytest.raises(ValueError, match="known: default, xavier_uniform"):
        initialise(nn.Linear(2, 2), "xavier", "relu")


# ---- through build_model, over the whole registry ------------------------------------------


def _model_cases() -> list[object]:
    return [
        pytest.param(name, scheme, id=f"{name}-{scheme}")
        for name in MODEL_BUILDERS
        for scheme in INITIALISERS
    ]


@pytest.mark.parametrize(("name", "scheme"), _model_cases())
def test_every_initialiser_applies_to_every_model(name: str, scheme: str) -> None:
    torch.manual_seed(0)
    shape = SHAPES_OF.get(name, [(20,)])[0]
    model = build_model(model_config(name, init=scheme), shape, 3)
    parameters = dict(model.named_parameters())
    assert all(torch.isfinite(p).all() for p in parameters.values())
    assert torch.isfinite(model(torch.randn(4, *shape))).all()
    weighted = (nn.Linear, nn.modules.conv._ConvNd, nn.RNNBase, nn.MultiheadAttention)
    biases = [
        p
        for layer in model.modules()
        if isinstance(layer, weighted)
        for n, p in layer.named_parameters(recurse=False)
        if "bias" in n
    ]
    assert biases, "every model has some bias"
    zero = [torch.count_nonzero(b).item() == 0 for b in biases]
    assert all(zero) if scheme != "default" else not all(zero)
    # Normalisation layers start as the identity whatever the scheme.
    for layer in model.modules():
        if isinstance(layer, nn.LayerNorm):
            assert torch.equal(layer.weight, torch.ones_like(layer.weight))


@pytest.mark.parametrize("activation", ["relu", "tanh", "selu", "leaky_relu"])
def test_the_model_activation_sets_the_kaiming_gain(activation: str) -> None:
    torch.manual_seed(0)
    cfg = model_config("mlp", hidden_sizes=[1024], activation=activation, init="kaiming_normal")
    assert activation_of(cfg) == activation
    first = build_model(cfg, (FAN_IN,), 2)[0]
    expected = EXPECTED_GAIN[activation] / math.sqrt(FAN_IN)
    assert first.weight.std().item() == pytest.approx(expected, rel=TOLERANCE)


def test_every_model_knows_its_activation_for_the_gain() -> None:
    for name in MODEL_SCHEMAS:
        assert activation_of(model_config(name)) in GAIN_OF_ACTIVATION


def test_initialisation_is_reproducible_from_the_seed() -> None:
    def weights() -> list[torch.Tensor]:
        torch.manual_seed(3)
        model = build_model(model_config("resmlp", init="trunc_normal"), (20,), 2)
        return [p.detach().clone() for p in model.parameters()]

    assert all(torch.equal(a, b) for a, b in zip(weights(), weights(), strict=True))
