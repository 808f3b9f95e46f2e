"""Every model of the registry builds for data it suits, gives one row of outputs per example,
and passes gradients to every parameter; the model options compose from ``conf/model/`` and
combinations that cannot work are refused before anything runs.

Parametrised over ``MODEL_BUILDERS`` and over every choice of every model field, so a new model
or a new choice (an activation, a norm) is tested the day it is added.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest
import torch
from omegaconf import DictConfig, OmegaConf

from helpers import config_groups
from trainlab.config.constraints import constraint_of
from trainlab.config.schema.model import MODEL_SCHEMAS
from trainlab.models import MODEL_BUILDERS, build_model
from trainlab.models.layers import DropPath

BATCH = 8

# The example shapes each kind of model reads; a model not listed flattens any example.
IMAGE = (1, 8, 8)
SEQUENCE = (12, 3)
FLAT = (20,)
SHAPES_OF = {"cnn": [IMAGE], "rnn": [SEQUENCE], "lstm": [SEQUENCE], "gru": [SEQUENCE]}
SHAPES_OF["transformer"] = [SEQUENCE]
ANY_SHAPE = [FLAT, IMAGE, SEQUENCE]

# A dataset that suits each model, for composing the real configs.
DATASET_FOR = {
    "cnn": ["dataset=digits", "dataset.shape=image"],
    "rnn": ["dataset=sine_sequences"],
    "lstm": ["dataset=sine_sequences"],
    "gru": ["dataset=sine_sequences"],
    "transformer": ["dataset=sine_sequences"],
}


def model_config(name: str, **changes: Any) -> DictConfig:
    """The schema's defaults for model ``name``, small, with ``changes`` applied."""
    cfg = OmegaConf.structured(MODEL_SCHEMAS[name])
    small = {"hidden_sizes": [16, 12], "channels": [4, 8], "hidden_size": 8, "d_model": 16}
    small |= {"dim_feedforward": 16, "norm_groups": 2}
    for key, value in {**small, **changes}.items():
        if key in cfg:
            cfg[key] = value
    return cfg


def check_forward_and_backward(
    model: torch.nn.Module, shape: tuple[int, ...], outputs: int
) -> None:
    model.train()
    batch = torch.randn(BATCH, *shape)
    result = model(batch)
    assert result.shape == (BATCH, outputs)
    assert torch.isfinite(result).all()
    result.square().mean().backward()
    unreached = [
        name
        for name, parameter in model.named_parameters()
        if parameter.grad is None or not torch.any(parameter.grad != 0)
    ]
    assert not unreached, f"no gradient reaches {unreached}"


def test_every_model_has_a_schema_a_builder_and_an_option_file() -> None:
    assert set(MODEL_BUILDERS) == set(MODEL_SCHEMAS)
    assert set(config_groups()["model"]) == set(MODEL_SCHEMAS)
    for name, schema in MODEL_SCHEMAS.items():
        assert schema().name == name


def _build_cases() -> list[Any]:
    return [
        pytest.param(name, shape, outputs, id=f"{name}-{'x'.join(map(str, shape))}-{outputs}")
        for name in MODEL_BUILDERS
        for shape in SHAPES_OF.get(name, ANY_SHAPE)
        for outputs in (1, 3)
    ]


@pytest.mark.parametrize(("name", "shape", "outputs"), _build_cases())
def test_every_model_builds_runs_and_trains(
    name: str, shape: tuple[int, ...], outputs: int
) -> None:
    torch.manual_seed(0)
    model = build_model(model_config(name), shape, outputs)
    check_forward_and_backward(model, shape, outputs)


def _choice_cases() -> list[Any]:
    """(model, field, choice) for every field of every model schema that takes a choice."""
    cases = []
    for name, schema in MODEL_SCHEMAS.items():
        for field in dataclasses.fields(schema):
            constraint = constraint_of(field)
            if field.name == "init" or constraint is None or not constraint.choices:
                continue
            for choice in constraint.choices:
                cases.append(
                    pytest.param(name, field.name, choice, id=f"{name}-{field.name}={choice}")
                )
    return cases


@pytest.mark.parametrize(("name", "field", "choice"), _choice_cases())
def test_every_choice_of_every_model_builds_and_trains(name: str, field: str, choice: str) -> None:
    torch.manual_seed(0)
    # Dropout and drop-path on, so their layers are built and exercised too.
    changes: dict[str, Any] = {field: choice, "dropout": 0.1, "drop_path": 0.2}
    if field == "dropout_type" and choice == "alpha":
        changes["activation"] = "selu"
    shape = SHAPES_OF.get(name, [FLAT])[0]
    model = build_model(model_config(name, **changes), shape, 3)
    check_forward_and_backward(model, shape, 3)


@pytest.mark.parametrize("name", ["rnn", "lstm", "gru"])
@pytest.mark.parametrize("pooling", ["last", "mean"])
def test_recurrent_models_stack_and_read_both_ways(name: str, pooling: str) -> None:
    torch.manual_seed(0)
    cfg = model_config(name, num_layers=2, bidirectional=True, pooling=pooling, dropout=0.1)
    model = build_model(cfg, SEQUENCE, 2)
    check_forward_and_backward(model, SEQUENCE, 2)


def test_the_last_state_of_a_bidirectional_rnn_depends_on_the_first_step() -> None:
    """The backward direction's final state has read the sequence back to its first step."""
    torch.manual_seed(0)
    model = build_model(model_config("gru", bidirectional=True, pooling="last"), SEQUENCE, 1)
    model.eval()
    batch = torch.randn(2, *SEQUENCE, requires_grad=True)
    model(batch).sum().backward()
    assert batch.grad is not None
    assert batch.grad[:, 0].abs().sum() > 0 and batch.grad[:, -1].abs().sum() > 0


def test_the_transformer_cls_token_exists_only_when_pooled_on() -> None:
    with_cls = build_model(model_config("transformer", pooling="cls"), SEQUENCE, 1)
    with_mean = build_model(model_config("transformer", pooling="mean"), SEQUENCE, 1)
    assert "cls_token" in dict(with_cls.named_parameters())
    assert "cls_token" not in dict(with_mean.named_parameters())
    assert with_cls.position.shape == (1, SEQUENCE[0] + 1, 16)


def test_models_accept_flattened_rows_of_the_right_size() -> None:
    for name, shape in [("cnn", IMAGE), ("lstm", SEQUENCE), ("transformer", SEQUENCE)]:
        model = build_model(model_config(name), shape, 2).eval()
        shaped = torch.randn(3, *shape)
        assert torch.allclose(model(shaped), model(shaped.flatten(1)))


def test_resmlp_projects_the_shortcut_only_where_the_width_changes() -> None:
    model = build_model(model_config("resmlp", hidden_sizes=[16, 16, 8]), (20,), 2)
    shortcuts = [type(block.shortcut) for block in model.blocks]
    assert shortcuts == [torch.nn.Linear, torch.nn.Identity, torch.nn.Linear]


def test_resmlp_drop_path_grows_with_depth_up_to_the_configured_rate() -> None:
    model = build_model(model_config("resmlp", hidden_sizes=[8] * 4, drop_path=0.4), (8,), 1)
    rates = [block.drop_path.probability for block in model.blocks]
    assert rates == pytest.approx([0.1, 0.2, 0.3, 0.4])


def test_cnn_pooling_stops_at_small_maps_and_group_norm_is_built() -> None:
    cfg = model_config("cnn", channels=[4, 4, 4, 4], norm="group", norm_groups=2)
    model = build_model(cfg, IMAGE, 10)
    pools = [m for m in model.modules() if isinstance(m, torch.nn.MaxPool2d)]
    assert len(pools) == 2  # 8x8 -> 4x4 -> 2x2, then no further
    assert any(isinstance(m, torch.nn.GroupNorm) for m in model.modules())
    check_forward_and_backward(model, IMAGE, 10)


def test_layers_before_a_shifting_norm_have_no_bias() -> None:
    """A bias right before batch norm is cancelled by the mean subtraction: it is left out."""
    mlp = build_model(model_config("mlp", norm="batch"), FLAT, 2)
    cnn = build_model(model_config("cnn", norm="batch"), IMAGE, 2)
    hidden = [m for m in mlp.modules() if isinstance(m, torch.nn.Linear)][:-1]
    assert all(layer.bias is None for layer in hidden)
    assert all(m.bias is None for m in cnn.modules() if isinstance(m, torch.nn.Conv2d))


def test_the_default_mlp_keeps_its_layout() -> None:
    """Linear -> activation per hidden layer (checkpoint keys of earlier runs stay valid)."""
    model = build_model(model_config("mlp", hidden_sizes=[16, 12]), FLAT, 2)
    assert [type(m).__name__ for m in model] == ["Linear", "ReLU", "Linear", "ReLU", "Linear"]


def test_drop_path_skips_whole_examples_and_keeps_the_mean() -> None:
    torch.manual_seed(0)
    layer = DropPath(0.25)
    branch = torch.ones(4000, 5)
    dropped = layer(branch)
    kept_rows = (dropped != 0).all(dim=1)
    assert ((dropped == 0).all(dim=1) | kept_rows).all()  # all of a row, or none of it
    assert kept_rows.float().mean().item() == pytest.approx(0.75, abs=0.03)
    assert dropped.mean().item() == pytest.approx(1.0, abs=0.05)
    layer.eval()
    assert torch.equal(layer(branch), branch)


def test_an_unknown_model_names_the_known_ones() -> None:
    with pytest.raises(ValueError, match=r"known: .*mlp"):
        build_model(OmegaConf.create({"name": "mpl", "init": "default"}), FLAT, 1)


# ---- the real config files ------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(MODEL_SCHEMAS))
def test_every_model_option_composes_validates_and_builds_for_its_data(name: str) -> None:
    from trainlab.config.compose import compose_config
    from trainlab.data.datasets import describe

    cfg = compose_config([f"model={name}", *DATASET_FOR.get(name, [])])
    assert cfg.model.name == name
    info = describe(cfg.dataset)
    outputs = info.num_classes if info.num_classes > 2 else 1
    model = build_model(cfg.model, info.input_shape, outputs)
    check_forward_and_backward(model, info.input_shape, outputs)


@pytest.mark.parametrize("name", sorted(MODEL_SCHEMAS))
def test_every_model_option_file_opens_with_its_command_and_a_description(name: str) -> None:
    from trainlab.config.paths import config_dir

    lines = (config_dir() / "model" / f"{name}.yaml").read_text().splitlines()
    assert lines[0].startswith(f"# trainlab train model={name}")
    assert lines[1].startswith("# ") and len(lines[1]) > 20
    assert any("init:" in line for line in lines)


def _problems(*overrides: str) -> dict[str, str]:
    from trainlab.config.compose import compose_config
    from trainlab.config.errors import ConfigError

    with pytest.raises(ConfigError) as caught:
        compose_config(list(overrides))
    return {problem.key: problem.message for problem in caught.value.problems}


@pytest.mark.parametrize(
    ("overrides", "key", "advice"),
    [
        pytest.param(["model=cnn"], "model", "dataset.shape=image", id="cnn-on-flat-digits"),
        pytest.param(["model=cnn", "dataset=sine_sequences"], "model", "image", id="cnn-on-seq"),
        pytest.param(["model=lstm"], "model", "dataset=sine_sequences", id="lstm-on-flat"),
        pytest.param(
            ["model=transformer", "dataset=digits", "dataset.shape=image"],
            "model",
            "dataset=sine_sequences",
            id="transformer-on-images",
        ),
        pytest.param(
            ["model=transformer", "dataset=sine_sequences", "model.d_model=30", "model.heads=4"],
            "model.heads",
            "divisible",
            id="d_model-not-divisible-by-heads",
        ),
        pytest.param(
            ["model.dropout_type=alpha", "model.dropout=0.1"],
            "model.dropout_type",
            "model.activation=selu",
            id="alpha-dropout-without-selu",
        ),
        pytest.param(
            [
                "model=cnn",
                "dataset=digits",
                "dataset.shape=image",
                "model.norm=group",
                "model.channels=[12,32]",
            ],
            "model.norm_groups",
            "12",
            id="group-norm-uneven",
        ),
    ],
)
def test_combinations_that_cannot_work_are_refused_with_advice(
    overrides: list[str], key: str, advice: str
) -> None:
    problems = _problems(*overrides)
    assert key in problems, problems
    assert advice in problems[key]


def test_alpha_dropout_with_selu_is_accepted() -> None:
    from trainlab.config.compose import compose_config

    cfg = compose_config(["model.dropout_type=alpha", "model.activation=selu", "model.dropout=0.1"])
    model = build_model(cfg.model, (64,), 10)
    assert any(isinstance(m, torch.nn.AlphaDropout) for m in model.modules())


@pytest.mark.parametrize(
    ("override", "allowed"),
    [
        ("model.init=xavier", "xavier_uniform"),
        ("model.activation=swish", "silu"),
        ("model.norm=group", "rms"),
    ],
)
def test_a_bad_model_choice_lists_the_allowed_ones(override: str, allowed: str) -> None:
    problems = _problems(override)
    key = override.split("=")[0]
    assert allowed in problems[key]
