"""What a parallel sweep's worker does before its first job: import and exercise everything a
job needs, while the launching process is still creating the store and validating the sweep.

Measured on 2 cores: a worker's first job took 3-5 s longer than the others, almost all of it
imports (torch, trainlab's training modules, MLflow, scikit-learn's bundled datasets) and
``torch._dynamo``, which torch imports the first time an optimizer is built.
"""

from __future__ import annotations

import importlib

from trainlab.tracking.store import SQL_STORE_MODULES
from trainlab.train.heatmap import HEATMAP_MODULES

MODULES = (
    "torch",
    "torch._dynamo",  # imported by the first torch.optim optimizer otherwise (~1 s)
    "mlflow",
    *SQL_STORE_MODULES,  # for a job's own client; forked metric senders inherit them
    "sklearn.datasets",
    "trainlab.train.job",
    "trainlab.train.recipe",
    "trainlab.tracking.mlflow_tracker",
    *HEATMAP_MODULES,  # each job's metric sender, forked from the worker, draws with these
)


def warm_up(threads: int) -> None:
    """Import :data:`MODULES` (already imported when the worker was forked from the fork
    server) and take one optimizer step on a tiny model."""
    for name in MODULES:
        importlib.import_module(name)
    import torch

    torch.set_num_threads(threads)
    model = torch.nn.Linear(8, 2)
    optimizer = torch.optim.Adam(model.parameters(), fused=True)
    model(torch.randn(4, 8)).square().mean().backward()
    optimizer.step()
