"""``hydra/sweeper=trainlab_optuna``: Bayesian search (TPE) with pruning, on Optuna >= 4.

Hydra's own Optuna sweeper pins optuna<3 and cannot prune; this one asks the study for trials,
launches them with whatever launcher is configured (in process, joblib, submitit), lets each
job report its per-epoch validation metric to the shared study storage, and tells the study
how each trial ended. The work is in :mod:`trainlab.sweeps.study`.
"""

from dataclasses import dataclass, field
from typing import Any

from hydra.core.config_store import ConfigStore
from hydra.core.plugins import Plugins
from hydra.plugins.sweeper import Sweeper
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig


@dataclass
class SamplerConf:
    name: str = "tpe"  # tpe | random
    seed: int | None = None  # set it to make the sequence of trials repeatable
    # TPE samples at random for this many trials before it models the space.
    n_startup_trials: int = 5


@dataclass
class PrunerConf:
    name: str = "median"  # median | successive_halving | none
    # median: prune a trial whose value at an epoch is worse than the median of earlier
    # trials at that epoch, once n_startup_trials trials ended and after n_warmup_steps epochs.
    n_startup_trials: int = 3
    n_warmup_steps: int = 1
    # successive_halving: rungs at min_resource * reduction_factor ** k epochs; at each rung
    # only the best 1/reduction_factor of the trials go on.
    min_resource: int = 1
    reduction_factor: int = 3
    min_early_stopping_rate: int = 0


@dataclass
class TrainlabOptunaSweeperConf:
    _target_: str = "hydra_plugins.trainlab_plugins.optuna_sweeper.TrainlabOptunaSweeper"
    # The study's total: the same command run again continues up to this many ended trials.
    n_trials: int = 20
    # Trials launched together (run them in parallel with hydra/launcher=joblib).
    n_jobs: int = 1
    study_name: str | None = None  # null: sweep.name, else derived from the command line
    storage: str | None = None  # null: sqlite optuna.db beside the MLflow sqlite store
    sampler: SamplerConf = field(default_factory=SamplerConf)
    pruner: PrunerConf = field(default_factory=PrunerConf)
    # key -> search space in Hydra's grammar, e.g. optimizer.lr: tag(log, interval(1e-4, 0.1))
    params: dict[str, str] = field(default_factory=dict)


ConfigStore.instance().store(
    group="hydra/sweeper",
    name="trainlab_optuna",
    node=TrainlabOptunaSweeperConf,
    provider="trainlab",
)


class TrainlabOptunaSweeper(Sweeper):
    """Asks the study for trials, launches them, tells the study how they ended."""

    def __init__(self, **settings: Any) -> None:
        self.settings = settings  # also in config.hydra.sweeper, which is what is read
        self.config: DictConfig | None = None
        self.launcher: Any = None

    def setup(
        self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig
    ) -> None:
        self.config = config
        self.launcher = Plugins.instance().instantiate_launcher(
            hydra_context=hydra_context, task_function=task_function, config=config
        )

    def sweep(self, arguments: list[str]) -> Any:
        from trainlab.sweeps.study import run_study

        assert self.config is not None
        run_study(self.config, self.launcher, list(arguments))
        return None
