"""``hydra/sweeper=trainlab_basic`` (the default of ``trainlab train -m``): Hydra's grid
sweeper without its second composition of every job.

Before Hydra starts, ``trainlab train`` composes and validates every job of the sweep (all
problems reported at once, exit 2, nothing recorded); Hydra's basic sweeper would then
compose every job once more to check that it composes (~0.15 s a job, measured: 1.2-1.5 s of
an 8-job sweep, spent before the first job starts), and the launcher composes each a third
time to run it. This sweeper skips the second pass; everything else is Hydra's.
"""

from collections.abc import Sequence
from dataclasses import dataclass

from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
from hydra.core.config_store import ConfigStore


@dataclass
class TrainlabBasicSweeperConf:
    _target_: str = "hydra_plugins.trainlab_plugins.basic_sweeper.TrainlabBasicSweeper"
    max_batch_size: int | None = None
    params: dict[str, str] | None = None


ConfigStore.instance().store(
    group="hydra/sweeper",
    name="trainlab_basic",
    node=TrainlabBasicSweeperConf,
    provider="trainlab",
)


class TrainlabBasicSweeper(BasicSweeper):
    def validate_batch_is_legal(self, batch: Sequence[Sequence[str]]) -> None:
        """Already done: ``trainlab train`` validated every job before Hydra started."""
