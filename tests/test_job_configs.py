"""JobConfigs (the parallel launcher's job composition) against Hydra's load_sweep_config."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from omegaconf import DictConfig, OmegaConf

from trainlab.config.compose import hydra_context
from trainlab.sweeps.job_configs import JobConfigs

COMMAND_LINE = ["trainer.max_epochs=3", "hydra/launcher=parallel", "hydra.launcher.n_jobs=2"]
# In the order a sweeper would launch them: jobs that only change values reuse an earlier
# job's composition; the others are composed by Hydra.
JOBS = [
    ["optimizer.lr=0.1", "trainer.max_epochs=3"],
    ["optimizer.lr=0.01", "trainer.max_epochs=3"],  # values only: a copy of the first
    ["optimizer.lr=0.001", "trainer.max_epochs=7"],
    ["optimizer=sgd", "optimizer.lr=0.1", "trainer.max_epochs=3"],  # another group choice
    ["optimizer=sgd", "optimizer.lr=0.5", "trainer.max_epochs=3"],
    ["model.hidden_sizes=[8,4,2]", "trainer.max_epochs=3"],
    ["model.hidden_sizes=[16]", "trainer.max_epochs=3"],  # a shorter list replaces it
    ["regularizer=[l1,l2]", "regularizer.l1.weight=0.001", "trainer.max_epochs=3"],
    ["regularizer=[l1,l2]", "regularizer.l1.weight=0.01", "trainer.max_epochs=3"],
    ["optimizer.lr=0.1", "trainer.max_epochs=3", "optimizer.lrr=1"],  # an error: Hydra's own
    ["seed=1", "dataset=moons", "dataset.noise=0.3", "tracking.experiment=my study"],
    ["seed=2", "dataset=moons", "dataset.noise=0.1", "tracking.experiment=my study"],
    ["+dataset.extra=1", "trainer.max_epochs=3"],  # an add: always Hydra's composition
    ["trainer.max_epochs=3", "hydra.job.name=other"],  # a Hydra override: Hydra's too
]


def _outcome(compose: Callable[[list[str]], DictConfig], job: list[str]) -> Any:
    """The composed config as plain containers, or the error Hydra raised."""
    try:
        cfg = compose(job)
    except Exception as error:
        return f"{type(error).__name__}: {error}"
    return OmegaConf.to_container(cfg, resolve=False)


def _master_and_loader() -> tuple[DictConfig, Any]:
    from hydra.core.global_hydra import GlobalHydra
    from hydra.types import RunMode

    loader = GlobalHydra.instance().config_loader()
    master = loader.load_configuration(
        config_name="train", overrides=COMMAND_LINE, run_mode=RunMode.MULTIRUN
    )
    return master, loader


def test_job_configs_equal_hydras_load_sweep_config() -> None:
    with hydra_context():
        master, loader = _master_and_loader()
        configs = JobConfigs(loader, master)
        for job in JOBS:
            fast = _outcome(configs.compose, job)
            full = _outcome(lambda j: loader.load_sweep_config(master, j), job)
            assert fast == full, job


def test_jobs_that_only_change_values_share_a_composition() -> None:
    with hydra_context():
        master, loader = _master_and_loader()
        configs = JobConfigs(loader, master)
        calls: list[list[str]] = []
        compose = loader.load_sweep_config

        def counting(master_config: DictConfig, overrides: list[str]) -> DictConfig:
            calls.append(overrides)
            return compose(master_config, overrides)

        loader.load_sweep_config = counting
        try:
            first = configs.compose(["optimizer.lr=0.1"])
            first.optimizer.lr = 5.0  # the launcher edits its copy; the template is apart
            for lr in (0.01, 0.001, 0.0001):
                assert configs.compose([f"optimizer.lr={lr}"]).optimizer.lr == lr
            configs.compose(["optimizer=sgd", "optimizer.lr=0.1"])
        finally:
            del loader.load_sweep_config
    assert calls == [["optimizer.lr=0.1"], ["optimizer=sgd", "optimizer.lr=0.1"]]
