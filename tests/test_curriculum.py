"""Curriculum learning: the pacing functions, the rows each epoch really trains on (the
easiest share first, growing per the pace), the loss scores after the warm-up, the dataset
scores, and that the state comes back from a checkpoint."""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
from omegaconf import DictConfig

from trainlab.config.errors import ConfigError
from trainlab.data.datasets import load
from trainlab.tracking.base import NullTracker
from trainlab.train.curriculum import PACES, pace_fraction, per_example_losses
from trainlab.train.loop import EpochListener, Progress
from trainlab.train.recipe import JobContext, TrainingRecipe

FRACTION = "train/curriculum_fraction"


@pytest.mark.parametrize("pace", sorted(PACES))
def test_every_pace_starts_at_the_start_fraction_and_reaches_one(pace: str) -> None:
    values = [pace_fraction(pace, epoch, 8, 0.2, 4) for epoch in range(12)]
    assert values[0] == pytest.approx(0.2)
    assert values[8:] == pytest.approx([1.0] * 4)
    assert all(a <= b + 1e-12 for a, b in itertools.pairwise(values))
    assert values[4] < 1.0


def test_the_paces_differ_as_their_names_say() -> None:
    middle = {pace: pace_fraction(pace, 4, 8, 0.2, 4) for pace in PACES}
    assert middle["linear"] == pytest.approx(0.6)
    assert middle["root"] == pytest.approx(math.sqrt(0.04 + 0.96 * 0.5))  # fast start
    assert middle["exponential"] == pytest.approx(0.2**0.5)  # slow start
    assert middle["exponential"] < middle["linear"] < middle["root"]
    steps = [pace_fraction("step", epoch, 8, 0.2, 4) for epoch in range(9)]
    assert steps == pytest.approx([0.2, 0.2, 0.4, 0.4, 0.6, 0.6, 0.8, 0.8, 1.0])  # 4 jumps


def _recipe(make_cfg: Callable[..., DictConfig], *overrides: str) -> TrainingRecipe:
    cfg = make_cfg(*overrides)
    epochs = [o.split("=")[1] for o in overrides if o.startswith("trainer.max_epochs=")]
    if epochs:  # make_cfg shrinks every run to one epoch
        cfg.trainer.max_epochs = int(epochs[-1])
    recipe = TrainingRecipe(cfg, JobContext())
    recipe.setup()
    return recipe


def _rows_seen_per_epoch(recipe: TrainingRecipe) -> list[set[int]]:
    """Train, recording which training rows each epoch's forward passes saw."""
    features = recipe.parts.batcher.features
    lookup = {tuple(row.tolist()): index for index, row in enumerate(features)}
    assert len(lookup) == len(features)  # rows are told apart by their features
    seen: list[set[int]] = []

    def record(module: torch.nn.Module, inputs: tuple[torch.Tensor, ...]) -> None:
        if module.training:
            seen[-1].update(lookup[tuple(row.tolist())] for row in inputs[0])

    class NewEpoch(EpochListener):
        def on_epoch_end(
            self, progress: Progress, metrics: dict[str, float], improved: bool
        ) -> None:
            seen.append(set())

    seen.append(set())
    handle = recipe.parts.model.register_forward_pre_hook(record)
    try:
        recipe.train(NullTracker(), NewEpoch())
    finally:
        handle.remove()
    return seen[:-1]


SCORE = (
    "dataset=moons",
    "dataset.n_samples=400",
    "curriculum=score",
    "curriculum.start_fraction=0.25",
    "curriculum.pace_epochs=3",
    "trainer.max_epochs=5",
)


def test_score_curriculum_trains_the_easiest_share_first_and_grows(
    make_cfg: Callable[..., DictConfig],
) -> None:
    recipe = _recipe(make_cfg, *SCORE)
    count = len(recipe.parts.batcher.targets)
    steps_per_epoch = len(recipe.parts.batcher)
    seen = _rows_seen_per_epoch(recipe)

    # The dataset's score of every training row, easiest first.
    arrays = load(recipe.cfg.dataset)
    from trainlab.data.split import split_and_normalize

    split = split_and_normalize(arrays, recipe.cfg.dataset, recipe.cfg.seed)
    assert split.train_difficulty is not None
    ranking = np.argsort(split.train_difficulty, kind="stable")
    expected = [0.25, 0.5, 0.75, 1.0, 1.0]  # linear over 3 epochs
    for epoch, fraction in enumerate(expected):
        easiest = set(ranking[: math.ceil(fraction * count)].tolist())
        assert seen[epoch] == easiest, f"epoch {epoch + 1} trained on other rows"
    # Each epoch keeps its length: the small pool is drawn several times over.
    assert recipe.progress.step == 5 * steps_per_epoch


def test_curriculum_fraction_is_logged_per_epoch(make_cfg: Callable[..., DictConfig]) -> None:
    recipe = _recipe(
        make_cfg,
        *SCORE[:-1],
        "trainer.max_epochs=6",
        "curriculum.pace=step",
        "curriculum.pace_steps=2",
        "curriculum.pace_epochs=4",
        "curriculum.warmup_epochs=1",
    )
    tracker = NullTracker()
    recipe.train(tracker, EpochListener())
    logged = [value for name, value, _ in tracker.metrics if name == FRACTION]
    assert logged == pytest.approx([1.0, 0.25, 0.25, 0.625, 0.625, 1.0])  # warm-up, 2 jumps


def test_no_curriculum_trains_on_every_row_each_epoch(
    make_cfg: Callable[..., DictConfig],
) -> None:
    recipe = _recipe(make_cfg, "dataset=moons", "dataset.n_samples=400", "trainer.max_epochs=2")
    count = len(recipe.parts.batcher.targets)
    assert recipe.parts.curriculum is None
    assert [len(rows) for rows in _rows_seen_per_epoch(recipe)] == [count, count]


def test_loss_curriculum_scores_after_the_warm_up_and_keeps_the_low_loss_rows(
    make_cfg: Callable[..., DictConfig],
) -> None:
    recipe = _recipe(
        make_cfg,
        "dataset=moons",
        "dataset.n_samples=400",
        "curriculum=loss",
        "curriculum.warmup_epochs=2",
        "curriculum.start_fraction=0.3",
        "trainer.max_epochs=3",
    )
    curriculum = recipe.parts.curriculum
    assert curriculum is not None
    batcher = recipe.parts.batcher
    scores_at_warmup_end: list[torch.Tensor] = []

    class ScoreAfterWarmUp(EpochListener):
        def on_epoch_end(
            self, progress: Progress, metrics: dict[str, float], improved: bool
        ) -> None:
            if progress.epoch == 2:  # the model that scores the examples
                scores_at_warmup_end.append(
                    per_example_losses(
                        recipe.parts.model, recipe.loss, batcher.features, batcher.targets, 512
                    )
                )
                recipe.parts.model.train()

    recipe.train(NullTracker(), ScoreAfterWarmUp())
    assert curriculum.scores is not None
    assert torch.allclose(curriculum.scores, scores_at_warmup_end[0])
    easiest = torch.argsort(scores_at_warmup_end[0], stable=True)[
        : math.ceil(0.3 * len(batcher.targets))
    ]
    assert batcher.pool is not None and set(batcher.pool.tolist()) == set(easiest.tolist())
    # Every row of the pool has a lower loss than every row left out.
    left_out = torch.ones(len(batcher.targets), dtype=torch.bool)
    left_out[easiest] = False
    losses = scores_at_warmup_end[0]
    assert losses[easiest].max() <= losses[left_out].min()


def test_curriculum_state_is_in_the_checkpoint_and_restored(
    make_cfg: Callable[..., DictConfig], tmp_path: Path
) -> None:
    overrides = (*SCORE[:-1], "curriculum=loss", "trainer.max_epochs=2")
    recipe = _recipe(make_cfg, *overrides)
    recipe.train(NullTracker(), EpochListener())
    state = recipe.checkpoint_state(recipe.progress)
    assert isinstance(state["curriculum"]["scores"], torch.Tensor)
    path = tmp_path / "state.pt"
    torch.save(state, path)
    loaded = torch.load(path, weights_only=True)  # plain values only
    fresh = _recipe(make_cfg, *overrides)
    fresh.restore(loaded)
    assert fresh.parts.curriculum is not None and fresh.parts.curriculum.scores is not None
    assert torch.equal(fresh.parts.curriculum.scores, recipe.parts.curriculum.scores)  # type: ignore[union-attr]


def test_score_curriculum_needs_a_dataset_with_scores(
    make_cfg: Callable[..., DictConfig],
) -> None:
    with pytest.raises(ConfigError) as error:
        make_cfg("curriculum=score")  # digits has no natural difficulty
    message = str(error.value)
    assert "curriculum: score orders the examples by a difficulty" in message
    assert "moons" in message and "dataset.difficulty_column" in message


def test_csv_difficulty_column_is_the_score_and_not_a_feature(
    make_cfg: Callable[..., DictConfig], tmp_path: Path
) -> None:
    rows = ["a,b,hardness,label"] + [f"{i},{-i},{(i * 7) % 10},{i % 2}" for i in range(40)]
    path = tmp_path / "scored.csv"
    path.write_text("\n".join(rows) + "\n")
    cfg = make_cfg(
        "dataset=csv",
        f"dataset.path={path}",
        "dataset.target=label",
        "dataset.difficulty_column=hardness",
        "curriculum=score",
    )
    arrays = load(cfg.dataset)
    assert arrays.features.shape == (40, 2)
    assert arrays.difficulty is not None
    assert arrays.difficulty.tolist() == [float((i * 7) % 10) for i in range(40)]


def test_xor_difficulty_is_positive_exactly_past_the_true_boundary(
    make_cfg: Callable[..., DictConfig],
) -> None:
    cfg = make_cfg("dataset=xor", "dataset.noise=0.4")
    arrays = load(cfg.dataset)
    assert arrays.difficulty is not None
    x, y = arrays.features[:, 0], arrays.features[:, 1]
    wrong_side = (x * y < 0) != (arrays.targets == 1)
    assert wrong_side.any()
    assert np.array_equal(arrays.difficulty > 0, wrong_side)
