"""The batch-size finder: the sizes it tries, the recommendation rule, the stop at an
out-of-memory error, the exact activation count, and ``trainlab batch-size-find`` end to end
(table on stdout, an MLflow run of its own)."""

from __future__ import annotations

import math
import re
from pathlib import Path

import pytest
import torch
from torch import nn

from helpers import all_runs, client_for, explain, metric_steps, run_cli, sqlite_uri
from trainlab.tools.batch_size import (
    OK,
    OUT_OF_MEMORY,
    Trial,
    candidate_sizes,
    recommend,
    saved_activation_mb,
    search,
)


def test_candidates_are_the_powers_of_two_in_range() -> None:
    assert candidate_sizes(8, 100) == [8, 16, 32, 64]
    assert candidate_sizes(5, 64) == [8, 16, 32, 64]
    assert candidate_sizes(1, 4) == [1, 2, 4]


def test_the_recommendation_is_the_smallest_size_near_the_best_throughput() -> None:
    trials = [
        Trial(16, samples_per_second=1000, peak_memory_mb=10),
        Trial(32, samples_per_second=1900, peak_memory_mb=12),
        Trial(64, samples_per_second=3600, peak_memory_mb=15),
        Trial(128, samples_per_second=3900, peak_memory_mb=21),
        Trial(256, samples_per_second=4000, peak_memory_mb=33),
    ]
    size, reason = recommend(trials, 0.9)
    assert size == 64  # 3600 >= 0.9 x 4000; 32 is not
    assert "256: 4,000 samples/s" in reason and "4x the optimizer steps" in reason
    assert recommend(trials, 1.0)[0] == 256
    assert recommend([Trial(8, OUT_OF_MEMORY)], 0.9) == (None, "no batch size could be timed")


class RunsOutOfMemoryAbove(nn.Module):
    """The real model, failing as CUDA does when a batch is larger than ``limit``."""

    def __init__(self, model: nn.Module, limit: int) -> None:
        super().__init__()
        self.model, self.limit = model, limit

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        if len(features) > self.limit:
            raise torch.cuda.OutOfMemoryError(
                f"CUDA out of memory. Tried to allocate {len(features)} rows"
            )
        return self.model(features)


def built_recipe(make_cfg: ...) -> ...:
    from trainlab.train.recipe import JobContext, TrainingRecipe

    recipe = TrainingRecipe(make_cfg(), JobContext(threads=1))
    recipe.setup()
    return recipe


def test_search_stops_at_the_first_out_of_memory_and_recommends_below_it(make_cfg: ...) -> None:
    recipe = built_recipe(make_cfg)
    recipe.parts.model = RunsOutOfMemoryAbove(recipe.parts.model, limit=64)
    settings = make_cfg().batch_size_find
    result = search(recipe.parts, recipe.step_controls(), recipe.device, settings)
    assert [t.batch_size for t in result.trials] == [8, 16, 32, 64, 128]
    assert [t.status for t in result.trials] == [OK] * 4 + [OUT_OF_MEMORY]
    assert result.recommended is not None and result.recommended <= 64
    assert "128 did not fit (out of memory)" in result.reason


def test_activation_memory_is_counted_exactly(make_cfg: ...) -> None:
    """An MLP [16] on digits keeps, per example, at least its 64 inputs and at most a few
    16-wide and 10-wide tensors more (ReLU output, logits, softmax), float32 each; twice the
    examples, twice the bytes."""
    recipe = built_recipe(make_cfg)
    features = recipe.parts.batcher.features[:100].clone()
    targets = recipe.parts.batcher.targets[:100].clone()
    small = saved_activation_mb(recipe.parts, recipe.step_controls(), (features[:50], targets[:50]))
    large = saved_activation_mb(recipe.parts, recipe.step_controls(), (features, targets))
    assert large == pytest.approx(2 * small, rel=0.05)
    per_example = large * 2**20 / 100
    assert 64 * 4 <= per_example <= (64 + 3 * 16 + 3 * 10) * 4, per_example


@pytest.mark.slow
def test_batch_size_find_prints_a_table_and_records_a_run(tmp_path: Path) -> None:
    uri = sqlite_uri(tmp_path)
    done = run_cli(
        "batch-size-find",
        "model.hidden_sizes=[64]",
        "batch_size_find.min_batch_size=8",
        "batch_size_find.max_batch_size=256",
        "batch_size_find.steps=5",
        "trainer.threads=1",
        "trainer.device=cpu",
        f"tracking.uri={uri}",
        cwd=tmp_path,
    )
    assert done.returncode == 0, explain(done)
    rows = {}
    for line in done.stdout.splitlines():
        cells = line.split()
        if cells and cells[0].isdigit():
            rows[int(cells[0])] = line
    assert sorted(rows) == [8, 16, 32, 64, 128, 256]
    speeds = {size: float(rows[size].split()[2].replace(",", "")) for size in rows}
    activations = {size: float(rows[size].split()[5].replace(",", "")) for size in rows}
    assert activations[256] > 20 * activations[8]  # grows with the batch
    recommended = int(re.search(r"Recommended: trainer.batch_size=(\d+)", done.stdout)[1])  # type: ignore[index]
    assert recommended in rows and "recommended" in rows[recommended]
    assert speeds[recommended] >= 0.9 * max(speeds.values()) * 0.99  # the table rounds
    smaller = [s for s in rows if s < recommended]
    assert all(speeds[s] < 0.9 * max(speeds.values()) * 1.01 for s in smaller)

    (run,) = all_runs(uri)
    assert run.data.tags["trainlab.role"] == "batch-size-find"
    assert run.data.params["batch_size_find.recommended"] == str(recommended)
    client = client_for(uri)
    run_id = run.info.run_id
    assert metric_steps(client, run_id, "batch_size_find/samples_per_second") == sorted(rows)
    history = client.get_metric_history(run_id, "batch_size_find/samples_per_second")
    logged = {point.step: point.value for point in history}
    assert all(math.isclose(logged[s], speeds[s], rel_tol=0.01, abs_tol=1) for s in rows)
    artifacts = {a.path for a in client.list_artifacts(run_id)}
    assert {"batch_size_find.json", "batch_size_find.tsv"} <= artifacts


def test_batch_size_find_rejects_an_option(tmp_path: Path) -> None:
    done = run_cli("batch-size-find", "--fast", cwd=tmp_path)
    assert done.returncode == 2 and "--fast" in done.stderr


def test_batch_size_find_validates_its_keys(tmp_path: Path) -> None:
    done = run_cli(
        "batch-size-find",
        "batch_size_find.min_batch_size=64",
        "batch_size_find.max_batch_size=8",
        cwd=tmp_path,
    )
    assert done.returncode == 2, explain(done)
    assert "batch_size_find.max_batch_size" in done.stderr
