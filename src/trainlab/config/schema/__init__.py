"""The dataclass schemas behind every config group, registered in Hydra's ConfigStore.

Each option's YAML in ``conf/<group>/`` extends its schema (``/schema/<group>/<name>@_here_``),
so a typo or a wrong type fails at composition with the key's full path.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from omegaconf import MISSING

from trainlab.config.schema.curriculum import CURRICULUM_SCHEMAS, CurriculumConfig
from trainlab.config.schema.dataset import DATASET_SCHEMAS, DatasetConfig
from trainlab.config.schema.loss import LOSS_SCHEMAS, LossConfig
from trainlab.config.schema.model import MODEL_SCHEMAS, ModelConfig
from trainlab.config.schema.optimizer import OPTIMIZER_SCHEMAS, OptimizerConfig
from trainlab.config.schema.regularizer import REGULARIZER_SCHEMAS
from trainlab.config.schema.scheduler import SCHEDULER_SCHEMAS, SchedulerConfig
from trainlab.config.schema.sweep import SweepConfig
from trainlab.config.schema.tools import BatchSizeFindConfig, LrFindConfig
from trainlab.config.schema.tracking import TrackingConfig
from trainlab.config.schema.trainer import TrainerConfig

# The groups whose options each extend a schema of their own, by option name.
GROUP_SCHEMAS: dict[str, dict[str, type]] = {
    "dataset": DATASET_SCHEMAS,
    "model": MODEL_SCHEMAS,
    "optimizer": OPTIMIZER_SCHEMAS,
    "scheduler": SCHEDULER_SCHEMAS,
    "regularizer": REGULARIZER_SCHEMAS,
    "loss": LOSS_SCHEMAS,
    "curriculum": CURRICULUM_SCHEMAS,
}


@dataclass
class TrainConfig:
    """The whole composed config of ``trainlab train``."""

    seed: int = 0
    # Each group node is typed by the option's own schema (an SGD config has `momentum`,
    # an Adam config has `betas`), so these are Any here and typed once composed.
    dataset: Any = MISSING
    model: Any = MISSING
    optimizer: Any = MISSING
    scheduler: Any = MISSING
    regularizer: dict[str, Any] = field(default_factory=dict)  # name -> options
    loss: Any = MISSING
    curriculum: Any = MISSING
    trainer: TrainerConfig = field(default_factory=TrainerConfig)
    tracking: TrackingConfig = field(default_factory=TrackingConfig)
    sweep: SweepConfig = field(default_factory=SweepConfig)
    # The tools that probe a config (trainlab lr-find, optimizer.lr=auto, batch-size-find).
    lr_find: LrFindConfig = field(default_factory=LrFindConfig)
    batch_size_find: BatchSizeFindConfig = field(default_factory=BatchSizeFindConfig)


_registered = False


def register_schemas() -> None:
    """Store every schema in Hydra's ConfigStore (idempotent)."""
    global _registered
    if _registered:
        return
    from hydra.core.config_store import ConfigStore

    store = ConfigStore.instance()
    store.store(name="train_schema", node=TrainConfig)
    store.store(group="schema/trainer", name="default", node=TrainerConfig)
    store.store(group="schema/tracking", name="default", node=TrackingConfig)
    for group, schemas in GROUP_SCHEMAS.items():
        for name, schema in schemas.items():
            store.store(group=f"schema/{group}", name=name, node=schema)
    _registered = True


__all__ = [
    "GROUP_SCHEMAS",
    "BatchSizeFindConfig",
    "CurriculumConfig",
    "DatasetConfig",
    "LossConfig",
    "LrFindConfig",
    "ModelConfig",
    "OptimizerConfig",
    "SchedulerConfig",
    "SweepConfig",
    "TrackingConfig",
    "TrainConfig",
    "TrainerConfig",
    "register_schemas",
]
