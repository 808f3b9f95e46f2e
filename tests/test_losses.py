"""Every loss of the registry: registered, built for its task, correct against a formula or
PyTorch's own loss, accepting the soft targets the batch regularizers make, and rejected by
validation on a task it cannot train.

Parametrised over ``LOSS_SCHEMAS`` and ``conf/loss/``, so a new loss is checked the day it is
added.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
from omegaconf import DictConfig, OmegaConf
from torch import nn
from torch.nn import functional as F

from trainlab.config.compose import compose_config
from trainlab.config.errors import ConfigError
from trainlab.config.paths import config_dir
from trainlab.config.schema.loss import (
    BINARY_LOSSES,
    CLASSIFICATION_LOSSES,
    LOSS_SCHEMAS,
    REGRESSION_LOSSES,
)
from trainlab.data.datasets import DatasetInfo
from trainlab.losses import LOSS_BUILDERS, Loss, balanced_class_weights, build_loss
from trainlab.losses.focal import FocalLoss
from trainlab.losses.quantile import QuantileLoss

OPTIONS_FOLDER = config_dir() / "loss"
TEN_CLASSES = DatasetInfo("classification", 10, (64,))
TWO_CLASSES = DatasetInfo("classification", 2, (2,))
REGRESSION = DatasetInfo("regression", 0, (10,))
CONCRETE = sorted(set(LOSS_SCHEMAS) - {"auto"})


def loss_options(name: str, **values: object) -> DictConfig:
    node = OmegaConf.structured(LOSS_SCHEMAS[name])
    for key, value in values.items():
        node[key] = value
    return node


def info_for(name: str) -> DatasetInfo:
    if name in REGRESSION_LOSSES:
        return REGRESSION
    return TWO_CLASSES if name in BINARY_LOSSES else TEN_CLASSES


def batch(loss: Loss, info: DatasetInfo, rows: int = 32) -> tuple[torch.Tensor, torch.Tensor]:
    """Model outputs and targets typed as the loss wants them."""
    torch.manual_seed(0)
    outputs = torch.randn(rows, loss.num_outputs, requires_grad=True)
    if loss.target_dtype == torch.int64:
        return outputs, torch.randint(0, info.num_classes, (rows,))
    if info.task == "classification":
        return outputs, torch.randint(0, 2, (rows,)).float()
    return outputs, torch.randn(rows)


# --- the registry, the schemas and the option files ---------------------------------------


def test_the_registry_the_schemas_and_the_option_files_agree() -> None:
    files = {path.stem for path in OPTIONS_FOLDER.glob("*.yaml")}
    assert set(LOSS_SCHEMAS) == files
    assert set(LOSS_BUILDERS) == set(CONCRETE)
    assert set(CLASSIFICATION_LOSSES) | set(REGRESSION_LOSSES) == set(CONCRETE)


@pytest.mark.parametrize("name", sorted(LOSS_SCHEMAS))
def test_option_file_opens_with_its_command_and_a_description(name: str) -> None:
    lines = (OPTIONS_FOLDER / f"{name}.yaml").read_text().splitlines()
    assert lines[0].startswith("# trainlab train ") and f"loss={name}" in lines[0], lines[0]
    assert lines[1].startswith("# ") and "trainlab" not in lines[1]
    assert f"  - /schema/loss/{name}@_here_" in lines


@pytest.mark.parametrize("name", CONCRETE)
def test_every_loss_builds_for_its_task_and_has_a_gradient(name: str) -> None:
    info = info_for(name)
    loss = build_loss(loss_options(name), info, np.arange(40) % max(info.num_classes, 1))
    assert loss.name == name
    outputs, targets = batch(loss, info)
    value = loss(outputs, targets)
    assert value.ndim == 0 and torch.isfinite(value)
    value.backward()
    assert outputs.grad is not None and outputs.grad.abs().sum() > 0


@pytest.mark.parametrize("name", [n for n in CONCRETE if n in CLASSIFICATION_LOSSES])
def test_classification_losses_accept_soft_targets(name: str) -> None:
    """Hard targets and their one-hot (or 0/1 float) form give the same loss, and mixed
    targets (what mixup and label smoothing hand over) are accepted."""
    info = info_for(name)
    loss = build_loss(loss_options(name), info)
    outputs, targets = batch(loss, info)
    if loss.target_dtype == torch.int64:
        soft = F.one_hot(targets, info.num_classes).float()
        mixed = 0.7 * soft + 0.3 * soft.flip(0)
    else:
        soft = targets.clone()
        mixed = 0.7 * soft + 0.3 * soft.flip(0)
    torch.testing.assert_close(loss(outputs, soft), loss(outputs, targets))
    assert torch.isfinite(loss(outputs, mixed))


def test_auto_picks_the_loss_from_the_task() -> None:
    auto = loss_options("auto")
    assert build_loss(auto, TEN_CLASSES).name == "cross_entropy"
    assert build_loss(auto, TWO_CLASSES).name == "bce"
    assert build_loss(auto, REGRESSION).name == "mse"


def test_bce_with_logits_is_bce_under_pytorchs_name() -> None:
    outputs, targets = torch.randn(20, 1), torch.randint(0, 2, (20,)).float()
    bce = build_loss(loss_options("bce", pos_weight=3.0), TWO_CLASSES)
    alias = build_loss(loss_options("bce_with_logits", pos_weight=3.0), TWO_CLASSES)
    torch.testing.assert_close(alias(outputs, targets), bce(outputs, targets))
    assert isinstance(alias.module, nn.BCEWithLogitsLoss) and alias.num_outputs == 1


# --- focal -------------------------------------------------------------------------------------


def test_focal_with_gamma_0_and_no_alpha_equals_cross_entropy() -> None:
    torch.manual_seed(1)
    logits, labels = torch.randn(50, 10), torch.randint(0, 10, (50,))
    focal = build_loss(loss_options("focal", gamma=0.0, alpha=None), TEN_CLASSES)
    torch.testing.assert_close(focal(logits, labels), F.cross_entropy(logits, labels))
    soft = torch.softmax(torch.randn(50, 10), -1)
    torch.testing.assert_close(focal(logits, soft), F.cross_entropy(logits, soft))


def test_binary_focal_with_gamma_0_and_no_alpha_equals_bce() -> None:
    torch.manual_seed(1)
    logits, targets = torch.randn(50, 1), torch.randint(0, 2, (50,)).float()
    focal = build_loss(loss_options("focal", gamma=0.0, alpha=None), TWO_CLASSES)
    assert focal.num_outputs == 1 and focal.target_dtype == torch.float32
    expected = F.binary_cross_entropy_with_logits(logits.squeeze(-1), targets)
    torch.testing.assert_close(focal(logits, targets), expected)


@pytest.mark.parametrize("binary", [True, False])
def test_focal_down_weights_easy_examples(binary: bool) -> None:
    focal = FocalLoss(gamma=2.0, binary=binary)
    plain = FocalLoss(gamma=0.0, binary=binary)
    if binary:
        easy, hard, target = torch.tensor([4.0]), torch.tensor([-1.0]), torch.tensor([1.0])
    else:
        easy, hard = torch.tensor([[4.0, 0.0, 0.0]]), torch.tensor([[0.0, 1.0, 0.0]])
        target = torch.tensor([0])
    easy_ratio = focal(easy, target) / plain(easy, target)
    hard_ratio = focal(hard, target) / plain(hard, target)
    assert easy_ratio < 0.01 < hard_ratio < 1


def test_binary_focal_alpha_weighs_class_1_by_alpha_and_class_0_by_one_minus_alpha() -> None:
    logits = torch.tensor([[0.3], [-0.2]])
    positive, negative = torch.tensor([1.0, 1.0]), torch.tensor([0.0, 0.0])
    weighted = build_loss(loss_options("focal", gamma=1.0, alpha=0.25), TWO_CLASSES)
    plain = build_loss(loss_options("focal", gamma=1.0), TWO_CLASSES)
    torch.testing.assert_close(weighted(logits, positive), 0.25 * plain(logits, positive))
    torch.testing.assert_close(weighted(logits, negative), 0.75 * plain(logits, negative))


def test_focal_per_class_alpha_scales_each_class() -> None:
    weights = [float(c + 1) for c in range(10)]
    logits, labels = torch.randn(30, 10), torch.randint(0, 10, (30,))
    focal = build_loss(loss_options("focal", gamma=2.0, alpha=weights), TEN_CLASSES)
    plain = FocalLoss(gamma=2.0, binary=False)
    per_example = torch.stack([plain(logits[i : i + 1], labels[i : i + 1]) for i in range(30)])
    expected = (per_example * torch.tensor(weights)[labels]).mean()
    torch.testing.assert_close(focal(logits, labels), expected)


# --- class weights -----------------------------------------------------------------------------


def test_balanced_class_weights_equal_n_over_k_times_count() -> None:
    targets = np.array([0] * 6 + [1] * 3 + [2] * 1)
    weights = balanced_class_weights(targets, 3)
    expected = [10 / (3 * 6), 10 / (3 * 3), 10 / (3 * 1)]
    torch.testing.assert_close(weights, torch.tensor(expected))
    # Each class then carries the same total weight.
    totals = [weights[c].item() * int((targets == c).sum()) for c in range(3)]
    assert totals == pytest.approx([10 / 3] * 3)


def test_balanced_weights_agree_with_scikit_learn() -> None:
    from sklearn.utils.class_weight import compute_class_weight

    targets = np.random.default_rng(0).choice(4, size=97, p=[0.5, 0.3, 0.15, 0.05])
    expected = compute_class_weight("balanced", classes=np.arange(4), y=targets)
    weights = balanced_class_weights(targets, 4)
    torch.testing.assert_close(weights, torch.tensor(expected, dtype=torch.float32))


def test_cross_entropy_balanced_weights_come_from_the_training_targets() -> None:
    train_targets = np.array([0] * 8 + [1] * 2)
    info = DatasetInfo("classification", 2, (3,))
    loss = build_loss(loss_options("cross_entropy", class_weights="balanced"), info, train_targets)
    assert isinstance(loss.module, nn.CrossEntropyLoss)
    torch.testing.assert_close(loss.module.weight, torch.tensor([10 / 16, 10 / 4]))
    with pytest.raises(ValueError, match="training targets"):
        build_loss(loss_options("cross_entropy", class_weights="balanced"), info)


def test_cross_entropy_takes_a_list_of_class_weights_and_label_smoothing() -> None:
    weights = [1.0, 2.0, 3.0]
    info = DatasetInfo("classification", 3, (4,))
    options = loss_options("cross_entropy", class_weights=weights, label_smoothing=0.1)
    loss = build_loss(options, info)
    logits, labels = torch.randn(12, 3), torch.randint(0, 3, (12,))
    expected = F.cross_entropy(logits, labels, weight=torch.tensor(weights), label_smoothing=0.1)
    torch.testing.assert_close(loss(logits, labels), expected)


def test_the_real_config_builds_balanced_weights_in_the_recipe(
    make_cfg: Callable[..., DictConfig],
) -> None:
    from trainlab.train.recipe import JobContext, TrainingRecipe

    cfg = make_cfg("dataset=blobs_imbalanced", "loss=cross_entropy", "loss.class_weights=balanced")
    recipe = TrainingRecipe(cfg, JobContext())
    recipe.setup()
    labels = recipe.parts.batcher.targets.numpy()
    counts = np.bincount(labels, minlength=2)
    expected = len(labels) / (2 * counts)
    torch.testing.assert_close(recipe.loss.module.weight, torch.tensor(expected).float())
    assert expected[1] > expected[0]  # the rare class weighs more


# --- regression losses -----------------------------------------------------------------------


def test_regression_losses_match_their_formulas() -> None:
    predictions = torch.tensor([[0.0], [1.0], [5.0]])
    targets = torch.tensor([0.5, 1.0, 1.0])
    error = (targets - predictions.squeeze(-1)).abs()

    def value(name: str, **options: object) -> float:
        return build_loss(loss_options(name, **options), REGRESSION)(predictions, targets).item()

    assert value("mse") == pytest.approx(error.square().mean().item())
    assert value("mae") == pytest.approx(error.mean().item())
    huber = torch.where(error <= 2.0, 0.5 * error**2, 2.0 * (error - 0.5 * 2.0))
    assert value("huber", delta=2.0) == pytest.approx(huber.mean().item())
    smooth = torch.where(error < 2.0, 0.5 * error**2 / 2.0, error - 0.5 * 2.0)
    assert value("smooth_l1", beta=2.0) == pytest.approx(smooth.mean().item())


@pytest.mark.parametrize("quantile", [0.1, 0.5, 0.9])
def test_quantile_loss_is_the_pinball_loss(quantile: float) -> None:
    predictions, targets = torch.tensor([1.0, 2.0, 3.0]), torch.tensor([2.0, 2.0, 0.0])
    # Under-prediction by 1 costs q; over-prediction by 3 costs 3 (1 - q).
    expected = (quantile * 1 + 0 + (1 - quantile) * 3) / 3
    assert QuantileLoss(quantile)(predictions, targets).item() == pytest.approx(expected)


def test_quantile_loss_at_one_half_is_half_the_absolute_error() -> None:
    predictions, targets = torch.randn(40), torch.randn(40)
    half_mae = 0.5 * (predictions - targets).abs().mean()
    torch.testing.assert_close(QuantileLoss(0.5)(predictions, targets), half_mae)


@pytest.mark.parametrize("quantile", [0.2, 0.8])
def test_minimising_the_quantile_loss_finds_the_quantile(quantile: float) -> None:
    targets = torch.from_numpy(np.random.default_rng(0).exponential(size=2000)).float()
    estimate = torch.zeros((), requires_grad=True)
    optimizer = torch.optim.Adam([estimate], lr=0.05)
    for _ in range(600):
        optimizer.zero_grad()
        QuantileLoss(quantile)(estimate.expand_as(targets), targets).backward()
        optimizer.step()
    assert estimate.item() == pytest.approx(torch.quantile(targets, quantile).item(), abs=0.05)


# --- validation ----------------------------------------------------------------------------------

REGRESSION_DATA = ["dataset=diabetes"]


def _problem(overrides: list[str], key: str) -> str:
    with pytest.raises(ConfigError) as raised:
        compose_config(overrides)
    named = [p for p in raised.value.problems if p.key == key]
    assert named, raised.value.problems
    return named[0].message


@pytest.mark.parametrize("name", REGRESSION_LOSSES)
def test_regression_losses_on_classification_are_rejected(name: str) -> None:
    message = _problem([f"loss={name}"], "loss")
    assert "regression loss" in message and "classification" in message
    assert "loss=cross_entropy" in message


@pytest.mark.parametrize("name", CLASSIFICATION_LOSSES)
def test_classification_losses_on_regression_are_rejected(name: str) -> None:
    message = _problem([*REGRESSION_DATA, f"loss={name}"], "loss")
    assert "needs class labels" in message and "regression" in message and "mse" in message


@pytest.mark.parametrize("name", BINARY_LOSSES)
def test_binary_losses_on_ten_classes_are_rejected(name: str) -> None:
    message = _problem([f"loss={name}"], "loss")
    assert "two classes" in message and "10" in message and "cross_entropy" in message


# (overrides, the key the problem names, fragments its message must contain)
BAD_LOSS_OPTIONS = [
    pytest.param(
        ["loss=cross_entropy", "loss.class_weights=[1,2]"],
        "loss.class_weights",
        ["2 weights", "10 classes", "balanced"],
        id="weights-length",
    ),
    pytest.param(
        ["loss=cross_entropy", "loss.class_weights=balnced"],
        "loss.class_weights",
        ["'balnced'", "Did you mean 'balanced'?"],
        id="weights-typo",
    ),
    pytest.param(
        ["loss=cross_entropy", "loss.class_weights=2.0"],
        "loss.class_weights",
        ["one weight per class"],
        id="weights-number",
    ),
    pytest.param(
        ["dataset=moons", "loss=cross_entropy", "loss.class_weights=[1,-1]"],
        "loss.class_weights",
        [">= 0"],
        id="weights-negative",
    ),
    pytest.param(
        ["loss=focal", "loss.alpha=0.25"],
        "loss.alpha",
        ["binary", "10 classes", "balanced"],
        id="alpha-number-multiclass",
    ),
    pytest.param(
        ["dataset=moons", "loss=focal", "loss.alpha=1.5"],
        "loss.alpha",
        ["[0, 1]"],
        id="alpha-out-of-range",
    ),
    pytest.param(
        ["loss=focal", "loss.alpha=[1,2,3]"],
        "loss.alpha",
        ["3 weights", "10 classes"],
        id="alpha-length",
    ),
    pytest.param(["loss=focal", "loss.gamma=-1"], "loss.gamma", [">= 0"], id="gamma-negative"),
    pytest.param(
        ["dataset=diabetes", "loss=quantile", "loss.quantile=1.0"],
        "loss.quantile",
        ["(0, 1)"],
        id="quantile-1",
    ),
    pytest.param(
        ["dataset=diabetes", "loss=huber", "loss.delta=0"],
        "loss.delta",
        ["> 0"],
        id="huber-delta-0",
    ),
]


@pytest.mark.parametrize(("overrides", "key", "fragments"), BAD_LOSS_OPTIONS)
def test_bad_loss_options_are_reported_with_the_key_and_what_to_do(
    overrides: list[str], key: str, fragments: list[str]
) -> None:
    message = _problem(overrides, key)
    for fragment in fragments:
        assert fragment in message, message


@pytest.mark.parametrize(
    "overrides",
    [
        ["loss=cross_entropy", "loss.class_weights=balanced"],
        ["loss=cross_entropy", "loss.class_weights=[1,1,1,1,1,1,1,1,1,2]"],
        ["dataset=moons", "loss=focal", "loss.alpha=0.25"],
        ["dataset=moons", "loss=focal", "loss.alpha=[1,3]"],
        ["loss=focal", "loss.alpha=balanced", "loss.gamma=0"],
        ["dataset=moons", "loss=bce_with_logits", "loss.pos_weight=2"],
        ["dataset=diabetes", "loss=quantile", "loss.quantile=0.9"],
        ["dataset=diabetes", "loss=smooth_l1", "loss.beta=0"],
    ],
)
def test_good_loss_options_are_accepted(overrides: list[str]) -> None:
    cfg = compose_config(overrides)
    chosen = next(o.split("=")[1] for o in overrides if o.startswith("loss="))
    assert cfg.loss.name == chosen


def test_a_loss_trains_end_to_end_with_mixup_and_label_smoothing(
    make_cfg: Callable[..., DictConfig], tmp_path: Path
) -> None:
    from trainlab.tracking.base import NullTracker
    from trainlab.train.loop import EpochListener
    from trainlab.train.recipe import JobContext, TrainingRecipe

    cfg = make_cfg(
        "loss=focal", "loss.alpha=balanced", "regularizer=[label_smoothing,mixup]",
        "trainer.batch_size=512",
    )  # fmt: skip
    recipe = TrainingRecipe(cfg, JobContext())
    recipe.setup()
    progress = recipe.train(NullTracker(tmp_path), EpochListener())
    assert np.isfinite(progress.history[-1]["val/loss"])
