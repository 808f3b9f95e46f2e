"""The learning-rate range test: the suggestion rules on known curves, the test on a problem
whose good learning rates are known from theory, the restore of model and optimizer, the
``trainlab lr-find`` command (plot, MLflow run) and ``optimizer.lr=auto``.

The known problem: least squares on whitened features with plain SGD. The loss
``mean((Xw - y)^2)`` has Hessian ``2 X^T X / n``, about ``2 I`` for standardised independent
features, so gradient descent converges for lr < 1 (fastest near 0.5) and diverges above.
Scaling the features by 10 scales the Hessian by 100: every good rate drops 100-fold.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from omegaconf import DictConfig, open_dict

from helpers import all_runs, client_for, explain, metric_values, run_cli, sqlite_uri
from trainlab.tools.lr_find import (
    RangeTest,
    exponential_lrs,
    find_lr,
    run_range_test,
    smooth,
    suggest,
    valley_bounds,
)


def write_least_squares_csv(path: Path, scale: float = 1.0, rows: int = 2000) -> Path:
    """Five independent N(0, scale^2) features and y = X w + small noise."""
    rng = np.random.default_rng(0)
    features = rng.normal(size=(rows, 5))
    targets = features @ np.array([1.5, -2.0, 0.5, 1.0, -1.0]) + 0.1 * rng.normal(size=rows)
    lines = ["a,b,c,d,e,y"] + [
        ",".join(f"{v:.5f}" for v in row * scale) + f",{t:.5f}"
        for row, t in zip(features, targets, strict=True)
    ]
    path.write_text("\n".join(lines) + "\n")
    return path


def least_squares_overrides(path: Path, normalize: str) -> list[str]:
    return [
        "dataset=csv",
        f"dataset.path={path}",
        "dataset.target=y",
        f"dataset.normalize={normalize}",
        "model=linear",
        "loss=mse",
        "optimizer=sgd",
        "optimizer.momentum=0.0",
        "trainer.threads=1",
        "trainer.device=cpu",
    ]


# --- the suggestion rules --------------------------------------------------------------------


def synthetic_test(lrs: list[float], losses: list[float]) -> RangeTest:
    return RangeTest(lrs=lrs, losses=losses, smoothed=smooth(losses, 0.9), stopped="end")


def test_exponential_lrs_are_evenly_spaced_on_a_log_axis() -> None:
    lrs = exponential_lrs(1e-6, 1.0, 7)
    assert lrs[0] == pytest.approx(1e-6) and lrs[-1] == pytest.approx(1.0)
    ratios = np.diff(np.log10(lrs))
    assert np.allclose(ratios, 1.0)


def test_smoothing_is_bias_corrected() -> None:
    assert smooth([2.0, 2.0, 2.0], 0.98) == pytest.approx([2.0, 2.0, 2.0])


def test_the_suggestions_sit_in_the_descent_of_a_known_curve() -> None:
    """Flat until 1e-4, falling until 1e-1, blowing up after: the valley's middle is ~3e-3,
    the steepest point inside the descent, the minimum rule a tenth of 1e-1."""
    lrs = exponential_lrs(1e-7, 10.0, 100)
    x = np.log10(lrs)
    losses = 2.0 - 1.5 / (1 + np.exp(-(x + 2.5) * 3)) + np.where(x > -1, (x + 1) ** 2 * 5, 0)
    test = synthetic_test(lrs, list(losses))
    result = suggest(test, "valley")
    begin, lowest = valley_bounds(test.curve)
    assert lrs[begin] == pytest.approx(10**-3.3, rel=0.5)
    assert 10**-1.3 < lrs[lowest] < 10**-0.8
    assert 1e-3 < result.lr < 1e-2
    assert 10**-3.5 < result.by_method["steepest"] < 10**-1.5
    assert result.by_method["minimum"] == pytest.approx(lrs[lowest] / 10)
    assert "descent" in result.explanation


def test_a_curve_that_never_falls_says_the_pick_is_uncertain() -> None:
    lrs = exponential_lrs(1e-7, 10.0, 50)
    result = suggest(synthetic_test(lrs, [1.0] * 50), "minimum")
    assert "uncertain" in result.explanation


def test_too_short_a_test_cannot_suggest() -> None:
    with pytest.raises(ValueError, match=r"lr_find\.start_lr"):
        suggest(synthetic_test([1e-3, 1e-2, 1e-1], [1.0, 0.9, 5.0]), "valley")


# --- the range test on real parts ------------------------------------------------------------


def test_the_range_test_restores_the_model_and_the_optimizer(make_cfg: ...) -> None:
    cfg: DictConfig = make_cfg("lr_find.num_steps=30")
    from trainlab.train.recipe import JobContext, TrainingRecipe

    recipe = TrainingRecipe(cfg, JobContext(threads=1))
    recipe.setup()
    before = {k: v.clone() for k, v in recipe.parts.model.state_dict().items()}
    optimizer_before = recipe.parts.optimizer.state_dict()
    lr_before = recipe.parts.optimizer.param_groups[0]["lr"]
    rng_before = torch.random.get_rng_state().clone()
    test = run_range_test(recipe.parts, recipe.step_controls(), cfg.lr_find)
    assert len(test.losses) >= 10
    after = recipe.parts.model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert recipe.parts.optimizer.state_dict()["state"] == optimizer_before["state"] == {}
    assert recipe.parts.optimizer.param_groups[0]["lr"] == lr_before
    assert torch.equal(torch.random.get_rng_state(), rng_before)


def test_the_suggestion_falls_in_the_range_theory_gives(tmp_path: Path, make_cfg: ...) -> None:
    from trainlab.config.compose import compose_config

    whitened = compose_config(
        least_squares_overrides(write_least_squares_csv(tmp_path / "w.csv"), "zscore")
    )
    _, result = find_lr(whitened)
    lowest = result.test.lrs[int(np.argmin(result.test.curve))]
    # Converges for lr < 1, fastest near 0.5: the loss bottoms out there and the test stops
    # (diverges) within a decade above.
    assert 0.15 < lowest < 1.5, lowest
    assert "diverged" in result.test.stopped or "non-finite" in result.test.stopped
    assert result.test.lrs[-1] < 10.0
    assert 0.01 < result.suggestion.lr < 1.0, result.suggestion
    # The same problem with features 10x larger: every good rate ~100x smaller.
    scaled = compose_config(
        least_squares_overrides(write_least_squares_csv(tmp_path / "s.csv", scale=10.0), "none")
    )
    _, scaled_result = find_lr(scaled)
    ratio = result.suggestion.lr / scaled_result.suggestion.lr
    assert 20 < ratio < 500, (result.suggestion.lr, scaled_result.suggestion.lr)


def test_training_at_the_suggestion_converges(tmp_path: Path) -> None:
    from trainlab.config.compose import compose_config
    from trainlab.tools.lr_find import with_lr
    from trainlab.tracking.base import NullTracker
    from trainlab.train.loop import EpochListener
    from trainlab.train.recipe import JobContext, TrainingRecipe

    cfg = compose_config(
        [
            *least_squares_overrides(write_least_squares_csv(tmp_path / "w.csv"), "zscore"),
            "trainer.max_epochs=3",
            "trainer.checkpoint=false",
            "trainer.progress=none",
        ]
    )
    _, result = find_lr(cfg)
    recipe = TrainingRecipe(with_lr(cfg, result.suggestion.lr), JobContext(threads=1))
    recipe.setup()
    progress = recipe.train(NullTracker(), EpochListener())
    r2 = progress.history[-1]["val/r2"]
    assert r2 > 0.99, r2


# --- the command -------------------------------------------------------------------------------


@pytest.mark.slow
def test_lr_find_command_prints_saves_and_records(tmp_path: Path) -> None:
    uri = sqlite_uri(tmp_path)
    data = write_least_squares_csv(tmp_path / "w.csv")
    done = run_cli(
        "lr-find",
        *least_squares_overrides(data, "zscore"),
        f"tracking.uri={uri}",
        "--out",
        "curve.png",
        cwd=tmp_path,
    )
    assert done.returncode == 0, explain(done)
    first = done.stdout.splitlines()[0]
    assert first.startswith("Suggested learning rate: ") and "(valley)" in first
    printed = float(first.split(": ")[1].split()[0])
    assert 0.01 < printed < 1.0
    assert "how: " in done.stdout and "other rules: steepest" in done.stdout
    assert (tmp_path / "curve.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    (run,) = all_runs(uri)
    assert run.data.tags["trainlab.role"] == "lr-find"
    assert run.info.status == "FINISHED"
    assert float(run.data.params["lr_find.suggested_lr"]) == pytest.approx(printed, rel=1e-2)
    client = client_for(uri)
    losses = metric_values(client, run.info.run_id, "lr_find/loss")
    lrs = metric_values(client, run.info.run_id, "lr_find/lr")
    assert len(losses) == len(lrs) >= 20 and lrs == sorted(lrs)
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id, "lr_find")}
    assert artifacts == {"lr_find/lr_find.png", "lr_find/lr_find.json"}
    saved = json.loads(
        Path(
            client.download_artifacts(run.info.run_id, "lr_find/lr_find.json", str(tmp_path))
        ).read_text()
    )
    assert saved["suggested_lr"] == pytest.approx(printed, rel=1e-2)


@pytest.mark.slow
def test_lr_auto_trains_with_the_suggestion(tmp_path: Path) -> None:
    uri = sqlite_uri(tmp_path)
    data = write_least_squares_csv(tmp_path / "w.csv")
    done = run_cli(
        "train",
        *least_squares_overrides(data, "zscore"),
        "optimizer.lr=auto",
        "trainer.max_epochs=2",
        "trainer.progress=plain",
        f"tracking.uri={uri}",
        cwd=tmp_path,
    )
    assert done.returncode == 0, explain(done)
    assert "optimizer.lr=auto: the range test suggests" in done.stderr
    (run,) = all_runs(uri)
    suggested = float(run.data.params["lr_find.suggested_lr"])
    assert float(run.data.params["optimizer.lr"]) == pytest.approx(suggested, rel=1e-5)
    assert run.data.tags["trainlab.lr"] == "auto"
    assert 0.01 < suggested < 1.0
    client = client_for(uri)
    assert metric_values(client, run.info.run_id, "train/lr")[0] == pytest.approx(
        suggested, rel=1e-5
    )
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id, "lr_find")}
    assert "lr_find/lr_find.png" in artifacts
    assert run.data.metrics["val/r2"] > 0.99


def test_lr_auto_is_validated_like_a_number(tmp_path: Path) -> None:
    for bad, fragment in (
        ("optimizer.lr=-1", "a number > 0, or auto"),
        ("optimizer.lr=fast", "'fast' is not allowed"),
        ("lr_find.start_lr=100", "lr_find.end_lr"),
    ):
        done = run_cli("validate", bad, cwd=tmp_path)
        assert done.returncode == 2, explain(done)
        assert fragment in done.stderr and "Traceback" not in done.stderr
    assert (
        run_cli("validate", "optimizer.lr=auto", "scheduler=cyclic", cwd=tmp_path).returncode == 0
    )


def test_lr_find_rejects_a_bad_plot_name(tmp_path: Path) -> None:
    done = run_cli("lr-find", "--out", "curve.txt", cwd=tmp_path)
    assert done.returncode == 2 and ".png" in done.stderr
    assert not (tmp_path / "outputs").exists()  # nothing ran, nothing recorded


def test_plot_marks_the_suggestion(tmp_path: Path) -> None:
    from trainlab.tools.lr_find import plot

    lrs = exponential_lrs(1e-5, 1.0, 40)
    losses = [2.0 - 0.04 * i if i < 30 else 1.0 + (i - 30) for i in range(40)]
    test = synthetic_test(lrs, losses)
    path = plot(test, suggest(test, "valley"), tmp_path / "p.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not math.isnan(suggest(test, "valley").lr)


@pytest.fixture
def make_cfg(make_cfg: ...) -> ...:
    def compose(*overrides: str) -> DictConfig:
        cfg = make_cfg(*overrides)
        with open_dict(cfg):
            cfg.trainer.threads = 1
        return cfg

    return compose
