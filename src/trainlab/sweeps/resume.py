"""Which earlier run a sweep's job continues: the run a requeued cluster job was training, the
run of an interrupted Optuna trial, or, in a sweep with a name (``sweep.name=NAME``), the child
of the same parent run that had the same overrides."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mlflow import MlflowClient

# Set (through hydra.job.env_set) on a job that a cluster requeued after preemption.
RESUME_ENV = "TRAINLAB_RESUME_RUN_ID"
SWEEP_NAME_TAG = "trainlab.sweep_name"


def earlier_run(cfg: Any, context: Any, trial: Any) -> str | None:
    """The run id this job should continue (or skip if it FINISHED), else None."""
    if os.environ.get(RESUME_ENV):
        return os.environ[RESUME_ENV]
    if trial is not None:
        return trial.run_id
    if not (cfg.sweep.name and context.parent_run_id):
        return None
    from trainlab.tools.compare import child_runs
    from trainlab.tracking.store import make_client

    client = make_client(str(cfg.tracking.uri))
    wanted = " ".join(context.overrides)
    same = [
        run
        for run in child_runs(client, context.parent_run_id)
        if run.data.tags.get("trainlab.overrides") == wanted
    ]
    if not same:
        return None
    # A FINISHED one wins (nothing to do); else the newest attempt.
    same.sort(key=lambda run: (run.info.status == "FINISHED", run.info.start_time), reverse=True)
    return str(same[0].info.run_id)


def named_parent(client: MlflowClient, experiment_id: str, name: str) -> str | None:
    """The parent run of the sweep called ``name`` in the experiment, if one exists."""
    runs = client.search_runs(
        [experiment_id], filter_string="tags.trainlab.role = 'sweep'", max_results=50_000
    )
    named = [run for run in runs if run.data.tags.get(SWEEP_NAME_TAG) == name]
    named.sort(key=lambda run: run.info.start_time)
    return str(named[0].info.run_id) if named else None
