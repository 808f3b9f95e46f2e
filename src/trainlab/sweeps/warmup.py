"""What a parallel sweep's worker does before its first job: import and exercise everything a
job needs, while the launching process is still creating the store and validating the sweep.

Measured on 2 cores: a worker's first job took 3-5 s longer than the others, almost all of it
imports (torch, trainlab's training modules, MLflow, scikit-learn's bundled datasets) and
``torch._dynamo``, which torch imports the first time an optimizer is built.
"""

from __future__ import annotations

import importlib

MODULES = (
    "torch",
    "torch._dynamo",  # imported by the first torch.optim optimizer otherwise (~1 s)
    "mlflow",
    # A job's first MlflowClient on a SQL store imports these (~0.45 s); forked metric
    # senders inherit them.
    "mlflow.store.tracking.sqlalchemy_store",
    "alembic.runtime.migration",
    "alembic.script",
    "sklearn.datasets",
    "trainlab.train.job",
    "trainlab.train.recipe",
    "trainlab.tracking.mlflow_tracker",
)


def warm_up(threads: int) -> None:
    """Import :data:`MODULES` and take one optimizer step on a tiny model."""
    from trainlab.train.recipe import GRADIENT_ARTIFACT_MODULES

    # The gradient heat map's modules too: each job's metric sender, forked from this
    # worker, would otherwise import them again, once per job.
    for name in (*MODULES, *GRADIENT_ARTIFACT_MODULES):
        importlib.import_module(name)
    import torch

    torch.set_num_threads(threads)
    model = torch.nn.Linear(8, 2)
    optimizer = torch.optim.Adam(model.parameters(), fused=True)
    model(torch.randn(4, 8)).square().mean().backward()
    optimizer.step()
