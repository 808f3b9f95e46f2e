"""The sweep composer (one Hydra composition per set of config-group choices, then each
job's value overrides) gives exactly the config, and exactly the errors, of composing every
job on its own."""

from __future__ import annotations

from pathlib import Path

import pytest
from omegaconf import OmegaConf

from trainlab.config.compose import SweepComposer, compose_in_context, hydra_context
from trainlab.config.errors import ConfigError

JOBS = [
    ["optimizer.lr=0.01"],
    ["optimizer.lr=0.1", "seed=3"],
    ["optimizer=sgd", "optimizer.lr=0.05", "optimizer.nesterov=true"],
    ["optimizer=sgd", "optimizer.momentum=0.5"],
    ["regularizer=[l1,l2]", "regularizer.0.weight=0.001"],  # a list group, then its value
    ["model.hidden_sizes=[32,16]", "model.activation=gelu", "trainer.max_epochs=3"],
    ["experiment=xor_mlp", "trainer.batch_size=32"],
    ["dataset=moons", "dataset.noise=0.3", "loss=bce"],
    ["trainer.clip_grad_norm=1.0", "trainer.clip_grad_norm=null"],  # the later one wins
    ["tracking.experiment=my study", "optimizer.implementation=foreach"],
    ["+dataset.extra=1"],  # an add override: the full composition's error
]
BAD = [
    ["optimizer.lr=-1"],
    ["optimizer.lrr=0.1"],
    ["model.dropout=1.5", "trainer.batch_size=0"],
    ["optimizer=sgdd"],
    ["dataset=csv"],  # no path
]


def _problems(job: list[str], compose) -> list[str] | str:  # type: ignore[no-untyped-def]
    try:
        return OmegaConf.to_yaml(compose(job))
    except ConfigError as error:
        return [str(p) for p in error.problems]


@pytest.mark.parametrize("job", JOBS + BAD, ids=[" ".join(j) for j in JOBS + BAD])
def test_the_sweep_composer_matches_composing_each_job(job: list[str]) -> None:
    with hydra_context() as folder:
        composer = SweepComposer(folder)
        composer.compose(["optimizer.lr=0.5"])  # a cached base config to reuse
        fast = _problems(job, composer.compose)
        full = _problems(job, lambda j: compose_in_context(j, folder))
    assert fast == full


def test_jobs_that_differ_in_values_share_one_composition(tmp_path: Path) -> None:
    with hydra_context() as folder:
        composer = SweepComposer(folder)
        for lr in ("0.1", "0.01", "0.001"):
            assert composer.compose([f"optimizer.lr={lr}"]).optimizer.lr == float(lr)
        composer.compose(["optimizer=sgd", "optimizer.lr=0.1"])
    assert len(composer._bases) == 2
