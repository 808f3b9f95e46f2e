"""Every regularizer of the registry: registered, configurable, and demonstrably doing what it
says (a penalty with a gradient, a model change, a batch transform that leaves validation
alone, a constraint that holds after a step).

The tests are parametrised over ``REGULARIZERS`` and the option files of
``conf/regularizer/``, so a new regularizer is checked the day it is added.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from omegaconf import DictConfig, OmegaConf
from torch import nn

from trainlab.config.compose import compose_config
from trainlab.config.errors import ConfigError
from trainlab.config.paths import config_dir
from trainlab.config.schema.regularizer import REGULARIZER_SCHEMAS
from trainlab.regularizers import (
    REGULARIZERS,
    Regularization,
    RegularizerContext,
    build_regularization,
)
from trainlab.regularizers.base import base_weight, soft_targets
from trainlab.regularizers.dropconnect import DropConnectWeight
from trainlab.regularizers.dropout import ActivationDropout
from trainlab.regularizers.feature_dropout import DropInputFeatures
from trainlab.regularizers.label_smoothing import SmoothTargets
from trainlab.regularizers.mixup import MixBatch
from trainlab.tracking.base import NullTracker
from trainlab.train.loop import EpochListener
from trainlab.train.recipe import JobContext, TrainingRecipe

DIGITS = RegularizerContext("classification", 10, (64,))
OPTIONS_FOLDER = config_dir() / "regularizer"

# Overrides a regularizer needs on the default config (digits + mlp).
NEEDS: dict[str, list[str]] = {"droppath": ["model=resmlp"]}

PENALTIES = ("l1", "l2", "elastic_net")
MODEL_CHANGES = ("dropout", "dropconnect", "droppath", "spectral_norm")
BATCH_TRANSFORMS = ("label_smoothing", "input_noise", "feature_dropout", "mixup")
AFTER_STEP = ("max_norm",)


def options(name: str, **values: object) -> DictConfig:
    """The schema defaults of regularizer ``name``, with ``values`` changed."""
    node = OmegaConf.structured(REGULARIZER_SCHEMAS[name])
    for key, value in values.items():
        node[key] = value
    return node


def mlp(hidden: int = 16, inputs: int = 64, outputs: int = 10) -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Linear(inputs, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.Tanh(),
        nn.Linear(hidden, outputs),
    )  # fmt: skip


def build(name: str, model: nn.Module, **values: object) -> Regularization:
    cfg = OmegaConf.create({name: options(name, **values)})
    return build_regularization(cfg, model, DIGITS)


# --- the registry, the schemas and the option files ---------------------------------------


def test_the_registry_the_schemas_and_the_option_files_agree() -> None:
    files = {path.stem for path in OPTIONS_FOLDER.glob("*.yaml")} - {"none"}
    assert set(REGULARIZERS) == set(REGULARIZER_SCHEMAS) == files
    assert set(REGULARIZERS) == {*PENALTIES, *MODEL_CHANGES, *BATCH_TRANSFORMS, *AFTER_STEP}


@pytest.mark.parametrize("name", sorted(REGULARIZERS))
def test_option_file_opens_with_its_command_and_a_description(name: str) -> None:
    lines = (OPTIONS_FOLDER / f"{name}.yaml").read_text().splitlines()
    assert lines[0].startswith("# trainlab train ") and name in lines[0], lines[0]
    assert lines[1].startswith("# ") and len(lines[1]) > 10 and "trainlab" not in lines[1]
    # Its options live under its own key, so combined regularizers never collide.
    assert f"  - /schema/regularizer/{name}@{name}" in lines


@pytest.mark.parametrize("name", sorted(REGULARIZERS))
def test_the_real_config_builds_a_regularizer_that_does_something(
    name: str, make_cfg: Callable[..., DictConfig]
) -> None:
    from trainlab.models import build_model

    cfg = make_cfg(f"regularizer=[{name}]", *NEEDS.get(name, []))
    assert list(cfg.regularizer) == [name]
    model = build_model(cfg.model, (64,), 10)
    before = str(model)
    built = build_regularization(cfg.regularizer, model, DIGITS)
    assert built.names == [name]
    touched = {
        "loss": bool(built.penalties),
        "model": str(model) != before,
        "batch": bool(built.batch_transforms),
        "step": bool(built.after_step),
    }
    assert sum(touched.values()) == 1, touched


def test_regularizer_none_builds_nothing(make_cfg: Callable[..., DictConfig]) -> None:
    cfg = make_cfg("regularizer=none")
    built = build_regularization(cfg.regularizer, mlp(), DIGITS)
    assert built == Regularization()


def test_an_unknown_regularizer_lists_the_known_ones() -> None:
    with pytest.raises(ValueError, match=r"known: .*dropout.*mixup"):
        build_regularization(OmegaConf.create({"dropot": {}}), mlp(), DIGITS)


# --- penalties: l1, l2, elastic_net --------------------------------------------------------


def _weights(model: nn.Module) -> list[torch.Tensor]:
    return [p for p in model.parameters() if p.ndim >= 2]


@pytest.mark.parametrize("name", PENALTIES)
def test_penalty_is_positive_and_its_gradient_shrinks_the_weights(name: str) -> None:
    model = mlp()
    (penalty,) = build(name, model).penalties
    value = penalty()
    assert value.item() > 0
    value.backward()
    for parameter in model.parameters():
        if parameter.ndim >= 2:
            assert parameter.grad is not None and parameter.grad.abs().sum() > 0
        else:  # biases are left alone by default
            assert parameter.grad is None
    # A step down the penalty's gradient makes the weights smaller.
    norm = sum(w.detach().abs().sum() for w in _weights(model))
    with torch.no_grad():
        for weight in _weights(model):
            weight -= 0.001 * weight.grad / penalty.weight  # type: ignore[operator]
    assert sum(w.detach().abs().sum() for w in _weights(model)) < norm


@pytest.mark.parametrize("name", PENALTIES)
def test_penalty_covers_biases_when_asked(name: str) -> None:
    model = mlp()
    (penalty,) = build(name, model, include_bias_and_norm=True).penalties
    assert len(penalty.parameters) == len(list(model.parameters()))


@pytest.mark.parametrize(
    ("name", "field"), [("l1", "weight"), ("l2", "weight"), ("elastic_net", "alpha")]
)
def test_a_zero_strength_penalty_is_not_built(name: str, field: str) -> None:
    assert build(name, mlp(), **{field: 0.0}).penalties == []


def test_l1_and_l2_equal_their_formulas() -> None:
    model = mlp()
    weights = _weights(model)
    (l1,) = build("l1", model, weight=0.01).penalties
    (l2,) = build("l2", model, weight=0.02).penalties
    assert l1().item() == pytest.approx(0.01 * sum(w.abs().sum().item() for w in weights))
    assert l2().item() == pytest.approx(0.02 * sum(w.square().sum().item() for w in weights))


@pytest.mark.parametrize("l1_ratio", [0.0, 0.3, 1.0])
def test_elastic_net_equals_its_l1_l2_mix_computed_by_hand(l1_ratio: float) -> None:
    model = mlp()
    alpha = 0.05
    (penalty,) = build("elastic_net", model, alpha=alpha, l1_ratio=l1_ratio).penalties
    l1 = sum(w.detach().abs().sum().item() for w in _weights(model))
    squared_l2 = sum(w.detach().square().sum().item() for w in _weights(model))
    expected = alpha * (l1_ratio * l1 + (1 - l1_ratio) / 2 * squared_l2)
    assert penalty().item() == pytest.approx(expected, rel=1e-5)


# --- model changes: dropout, dropconnect, droppath, spectral_norm ---------------------------


def _outputs(model: nn.Module, features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    return model(features), model(features)


@pytest.mark.parametrize("name", ["dropout", "dropconnect"])
def test_stochastic_in_train_mode_deterministic_in_eval_mode(name: str) -> None:
    features = torch.randn(32, 64)
    plain = mlp()
    model = mlp()  # the same weights (same seed)
    build(name, model, p=0.3)
    model.train()
    first, second = _outputs(model, features)
    assert not torch.allclose(first, second)
    model.eval()
    plain.eval()
    first, second = _outputs(model, features)
    assert torch.equal(first, second)
    # Eval mode is the unregularized network: same weights, nothing dropped.
    torch.testing.assert_close(first, plain(features))


def test_dropout_follows_every_hidden_activation_without_moving_parameters() -> None:
    model = mlp()
    keys = list(model.state_dict())
    build("dropout", model, p=0.25)
    wrapped = [m for m in model.modules() if isinstance(m, ActivationDropout)]
    assert len(wrapped) == 2
    assert all(isinstance(m[1], nn.Dropout) and m[1].p == 0.25 for m in wrapped)
    assert list(model.state_dict()) == keys  # checkpoints keep their keys


def test_dropout_overrides_the_models_own_rate(make_cfg: Callable[..., DictConfig]) -> None:
    from trainlab.models import build_model

    cfg = make_cfg("model.dropout=0.5", "regularizer=[dropout]", "regularizer.dropout.p=0.2")
    model = build_model(cfg.model, (64,), 10)
    build_regularization(cfg.regularizer, model, DIGITS)
    rates = [m.p for m in model.modules() if isinstance(m, nn.Dropout)]
    assert rates and set(rates) == {0.2}
    # The model's own dropout layers were reused, not doubled.
    assert not any(isinstance(m, ActivationDropout) for m in model.modules())


def test_dropconnect_masks_linear_weights_only_in_training() -> None:
    layer = nn.Linear(50, 40)
    mask = DropConnectWeight(0.5)
    weight = layer.weight.detach()
    dropped = mask(weight)
    zeros = (dropped == 0).float().mean().item()
    assert 0.35 < zeros < 0.65
    kept = dropped != 0
    torch.testing.assert_close(dropped[kept], weight[kept] * 2)
    mask.eval()
    assert torch.equal(mask(weight), weight)


def test_dropconnect_keeps_the_trainable_weight_the_optimizer_sees() -> None:
    model = mlp()
    build("dropconnect", model)
    names = [name for name, _ in model.named_parameters()]
    assert "0.parametrizations.weight.original" in names
    model(torch.randn(4, 64)).sum().backward()
    assert all(p.grad is not None for p in model.parameters())


def test_droppath_sets_the_linear_rule_on_residual_blocks(
    make_cfg: Callable[..., DictConfig],
) -> None:
    from trainlab.models import build_model
    from trainlab.models.layers import DropPath

    cfg = make_cfg("model=resmlp", "regularizer=[droppath]", "regularizer.droppath.p=0.4")
    cfg.model.hidden_sizes = [8, 8, 8, 8]  # make_cfg shrinks the model to one hidden layer
    model = build_model(cfg.model, (64,), 10)
    build_regularization(cfg.regularizer, model, DIGITS)
    rates = [m.probability for m in model.modules() if isinstance(m, DropPath)]
    assert rates == pytest.approx([0.1, 0.2, 0.3, 0.4])
    model.train()
    features = torch.randn(64, 64)
    assert not torch.allclose(model(features), model(features))


def test_droppath_on_a_model_without_residual_blocks_is_a_config_error() -> None:
    with pytest.raises(ConfigError) as raised:
        compose_config(["model=mlp", "regularizer=[droppath]"])
    (problem,) = raised.value.problems
    assert problem.key == "regularizer.droppath"
    assert "no residual blocks" in problem.message and "model=resmlp" in problem.message


@pytest.mark.parametrize("name", ["dropout", "dropconnect", "spectral_norm", "max_norm"])
def test_model_regularizers_pass_validation_on_every_model_family_they_fit(name: str) -> None:
    for model in ("mlp", "resmlp"):
        cfg = compose_config([f"model={model}", f"regularizer=[{name}]"])
        assert list(cfg.regularizer) == [name]


def test_dropout_on_a_linear_model_is_a_config_error() -> None:
    with pytest.raises(ConfigError) as raised:
        compose_config(["model=linear", "regularizer=[dropout]"])
    assert [p.key for p in raised.value.problems] == ["regularizer.dropout"]
    assert "no hidden" in raised.value.problems[0].message


def test_spectral_norm_bounds_the_largest_singular_value_at_one() -> None:
    model = mlp(hidden=32)
    with torch.no_grad():  # make the largest singular values far from 1 first
        for weight in _weights(model):
            weight.mul_(5.0)
    assert max(torch.linalg.matrix_norm(w, ord=2).item() for w in _weights(model)) > 2
    build("spectral_norm", model, n_power_iterations=5)
    model.train()
    for _ in range(20):  # the power iteration refines its estimate every training forward
        model(torch.randn(8, 64))
    model.eval()
    layers = [m for m in model.modules() if isinstance(m, nn.Linear)]
    for layer in layers:
        sigma = torch.linalg.matrix_norm(layer.weight.detach(), ord=2).item()
        assert sigma == pytest.approx(1.0, abs=1e-3)
    # The optimizer trains the unnormalised weight behind the parametrization.
    assert all(base_weight(layer).requires_grad for layer in layers)


# --- the step: max_norm ----------------------------------------------------------------------


def test_max_norm_keeps_every_units_incoming_weights_within_the_limit() -> None:
    model = mlp()
    (hook,) = build("max_norm", model, limit=0.5).after_step
    optimizer = torch.optim.SGD(model.parameters(), lr=10.0)  # a large step grows the weights
    model(torch.randn(16, 64)).square().sum().backward()
    optimizer.step()
    assert max(w.norm(dim=1).max().item() for w in _weights(model)) > 0.5
    small_row = _weights(model)[0][0].detach().clone() * 0
    with torch.no_grad():
        _weights(model)[0][0] = small_row + 0.01  # a row within the limit must stay as it is
    hook()
    for weight in _weights(model):
        assert weight.norm(dim=1).max().item() <= 0.5 + 1e-5
    torch.testing.assert_close(_weights(model)[0][0], small_row + 0.01)


def test_max_norm_constrains_the_weight_behind_spectral_norm() -> None:
    model = mlp()
    cfg = OmegaConf.create(
        {"spectral_norm": options("spectral_norm"), "max_norm": options("max_norm", limit=0.1)}
    )
    built = build_regularization(cfg, model, DIGITS)
    built.after_step[0]()
    for layer in (m for m in model.modules() if isinstance(m, nn.Linear)):
        assert base_weight(layer).norm(dim=1).max().item() <= 0.1 + 1e-5


# --- batch transforms: label_smoothing, input_noise, feature_dropout, mixup -----------------


@pytest.mark.parametrize("name", BATCH_TRANSFORMS)
def test_transforms_change_training_batches_and_never_validation(
    name: str, make_cfg: Callable[..., DictConfig], tmp_path: Path
) -> None:
    cfg = make_cfg(f"regularizer=[{name}]", "trainer.batch_size=512")
    recipe = TrainingRecipe(cfg, JobContext())
    recipe.setup()
    parts = recipe.parts
    raw_batches = list(parts.batcher.epoch(0))  # what the loop draws before any transform
    seen: list[tuple[bool, torch.Tensor]] = []
    targets_seen: list[tuple[bool, torch.Tensor]] = []
    parts.model.register_forward_pre_hook(
        lambda module, args: seen.append((module.training, args[0].detach().clone()))
    )
    parts.loss.module.register_forward_pre_hook(
        lambda module, args: targets_seen.append((parts.model.training, args[1].clone()))
    )
    recipe.train(NullTracker(tmp_path), EpochListener())

    trained = [(f, t) for (mode, f), (_, t) in zip(seen, targets_seen, strict=True) if mode]
    assert len(trained) == len(raw_batches) == 3
    for (features, targets), (raw_features, raw_targets) in zip(trained, raw_batches, strict=True):
        same_features = torch.equal(features, raw_features)
        same_targets = targets.shape == raw_targets.shape and torch.equal(
            targets.to(raw_targets.dtype), raw_targets
        )
        assert not (same_features and same_targets), f"{name} left a training batch unchanged"
    validation = [f for mode, f in seen if not mode]
    assert torch.equal(torch.cat(validation), parts.val_features)
    assert [t for mode, t in targets_seen if not mode][-1].equal(parts.val_targets)


def test_mixup_soft_targets_are_probabilities_summing_to_one() -> None:
    torch.manual_seed(0)
    mix = MixBatch(alpha=1.0, num_classes=10)
    features, labels = torch.randn(64, 8), torch.randint(0, 10, (64,))
    mixed_features, targets = mix(features, labels)
    assert targets.shape == (64, 10) and targets.dtype == torch.float32
    torch.testing.assert_close(targets.sum(-1), torch.ones(64))
    assert (targets >= 0).all() and not torch.equal(mixed_features, features)
    # Each row mixes two examples with the same weight as their targets: with lam the larger
    # share, the example's own label carries lam, its partner's 1 - lam.
    top = targets.max(-1).values
    assert ((top >= 0.5 - 1e-6) & (top <= 1 + 1e-6)).all()


def test_mixup_mixes_already_soft_and_binary_targets() -> None:
    torch.manual_seed(0)
    smoothed = SmoothTargets(0.1, 10)(torch.randn(16, 4), torch.randint(0, 10, (16,)))[1]
    _, mixed = MixBatch(0.4, 10)(torch.randn(16, 4), smoothed)
    torch.testing.assert_close(mixed.sum(-1), torch.ones(16))
    binary = torch.randint(0, 2, (16,)).float()
    _, mixed_binary = MixBatch(0.4, 2)(torch.randn(16, 4), binary)
    assert mixed_binary.shape == (16,) and ((mixed_binary >= 0) & (mixed_binary <= 1)).all()


def test_mixed_inputs_and_targets_use_one_mixing_weight() -> None:
    torch.manual_seed(3)
    features = torch.eye(6)  # one-hot inputs: each mixed row reveals its two sources
    labels = torch.arange(6)
    mixed_features, targets = MixBatch(alpha=0.5, num_classes=6)(features, labels)
    torch.testing.assert_close(mixed_features, targets)


def test_label_smoothing_spreads_the_share_over_all_classes() -> None:
    labels = torch.tensor([0, 3])
    _, targets = SmoothTargets(0.2, 5)(torch.zeros(2, 1), labels)
    torch.testing.assert_close(targets.sum(-1), torch.ones(2))
    assert targets[0, 0].item() == pytest.approx(0.8 + 0.2 / 5)
    assert targets[0, 1].item() == pytest.approx(0.2 / 5)
    _, binary = SmoothTargets(0.2, 2)(torch.zeros(2, 1), torch.tensor([1.0, 0.0]))
    torch.testing.assert_close(binary, torch.tensor([0.9, 0.1]))


@pytest.mark.parametrize("loss_smoothing", [0.0, 0.1])
def test_label_smoothing_compounds_with_cross_entropys_own(loss_smoothing: float) -> None:
    """The documented combination: smoothing a then b is smoothing 1 - (1 - a)(1 - b)."""
    torch.manual_seed(0)
    logits, labels = torch.randn(20, 7), torch.randint(0, 7, (20,))
    a = 0.2
    _, soft = SmoothTargets(a, 7)(logits, labels)
    combined = nn.CrossEntropyLoss(label_smoothing=loss_smoothing)(logits, soft)
    effective = 1 - (1 - a) * (1 - loss_smoothing)
    expected = nn.CrossEntropyLoss(label_smoothing=effective)(logits, labels)
    torch.testing.assert_close(combined, expected)


def test_label_smoothing_on_a_regression_task_is_a_config_error() -> None:
    with pytest.raises(ConfigError) as raised:
        compose_config(["dataset=diabetes", "regularizer=[label_smoothing]"])
    (problem,) = raised.value.problems
    assert problem.key == "regularizer.label_smoothing" and "regression" in problem.message


@pytest.mark.parametrize(
    ("input_shape", "batch", "mask_dims"),
    [
        ((12,), (200, 12), (0, 1)),
        ((5, 12), (200, 5, 12), (0, 2)),
        ((3, 4, 4), (200, 3, 4, 4), (0, 1)),
    ],
)
def test_feature_dropout_drops_whole_features(
    input_shape: tuple[int, ...], batch: tuple[int, ...], mask_dims: tuple[int, ...]
) -> None:
    torch.manual_seed(0)
    features = torch.rand(batch) + 1.0  # no zeros before dropping
    dropped, _ = DropInputFeatures(0.3, input_shape)(features, torch.zeros(batch[0]))
    zero = dropped == 0
    # A dropped feature is zero across the dimensions it spans (time steps, pixels).
    other = tuple(d for d in range(len(batch)) if d not in mask_dims)
    if other:
        assert torch.equal(zero.all(dim=other), zero.any(dim=other))
    assert 0.2 < zero.float().mean().item() < 0.4
    kept = ~zero
    assert torch.equal(dropped[kept], features[kept])  # kept values are not rescaled


def test_input_noise_has_the_configured_spread() -> None:
    (transform,) = build("input_noise", mlp(), std=0.5).batch_transforms
    features = torch.zeros(4000, 8)
    noisy, targets = transform(features, torch.zeros(4000))
    assert noisy.std().item() == pytest.approx(0.5, rel=0.05)
    assert torch.equal(targets, torch.zeros(4000))


def test_soft_targets_turns_labels_into_one_hot_rows() -> None:
    rows = soft_targets(torch.tensor([2, 0]), 3)
    assert torch.equal(rows, torch.tensor([[0.0, 0.0, 1.0], [1.0, 0.0, 0.0]]))
    floats = torch.tensor([0.3, 0.7])
    assert soft_targets(floats, 2) is floats


# --- all together -----------------------------------------------------------------------------


def test_every_regularizer_at_once_trains(
    make_cfg: Callable[..., DictConfig], tmp_path: Path
) -> None:
    every = ",".join(sorted(REGULARIZERS))
    cfg = make_cfg("model=resmlp", f"regularizer=[{every}]", "trainer.batch_size=512")
    recipe = TrainingRecipe(cfg, JobContext())
    recipe.setup()
    assert recipe.regularization.names == list(cfg.regularizer)
    tracker = NullTracker(tmp_path)
    recipe.train(tracker, EpochListener())
    penalties = [value for name, value, _ in tracker.metrics if name == "train/penalty"]
    assert penalties and all(math.isfinite(v) and v > 0 for v in penalties)
    assert math.isfinite(recipe.progress.history[-1]["val/loss"])
