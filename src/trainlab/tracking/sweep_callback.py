"""A Hydra callback that gives a sweep (``-m``) one MLflow parent run.

Before any job starts, in the launching process, it creates the store and the experiment
(a fresh sqlite store initialised by parallel jobs at once fails) and the parent run, and
leaves the parent's id in the sweep folder, where every job (local, joblib or on a cluster)
finds it. When the sweep ends the parent is closed with a status derived from its children.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

log = logging.getLogger(__name__)

PARENT_RUN_FILE = "mlflow_parent_run_id"
# The sweep's name and the keys it varies, for its children's names and tags.
SWEEP_FILE = "trainlab_sweep.json"
SWEEP_TAG = "trainlab.sweep"

# Sweeps started in this process and not yet closed: run id -> (tracking uri, experiment id).
OPEN_SWEEPS: dict[str, tuple[str, str]] = {}
# Sweeps closed in this process: (parent run id, tracking uri, status), for the final table.
CLOSED_SWEEPS: list[tuple[str, str, str]] = []


class MlflowSweepCallback(Callback):
    """Creates the parent run at ``on_multirun_start``; closes it at ``on_multirun_end``."""

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        from mlflow.utils.mlflow_tags import MLFLOW_RUN_NAME

        from trainlab.tracking.run_tags import run_name_from, source_tags, swept_keys
        from trainlab.tracking.store import ensure_experiment, make_client

        _start_parallel_workers(config)  # they warm up while the store is made
        uri = str(config.tracking.uri)
        client = make_client(uri)
        experiment_id = ensure_experiment(client, uri, str(config.tracking.experiment))
        sweep_dir = Path(str(config.hydra.sweep.dir))
        overrides = [str(o) for o in config.hydra.overrides.task]
        declared = {str(k): str(v) for k, v in (config.hydra.sweeper.get("params") or {}).items()}
        swept = swept_keys(overrides, declared)
        shown = run_name_from(overrides)
        name = f"sweep {shown}" if shown else f"sweep {sweep_dir.name}"
        sweep_dir.mkdir(parents=True, exist_ok=True)
        (sweep_dir / SWEEP_FILE).write_text(json.dumps({"name": name, "swept": swept}) + "\n")
        tags = {
            **source_tags(),
            MLFLOW_RUN_NAME: name,
            "trainlab.role": "sweep",
            "trainlab.sweep_dir": str(sweep_dir.resolve()),
            "trainlab.sweep_overrides": " ".join(overrides),
            "trainlab.monitor": str(config.trainer.monitor),
            "trainlab.mode": str(config.trainer.mode),
            SWEEP_TAG: name,
            "trainlab.swept": " ".join(swept),
        }
        run_id = _reopen_named_sweep(client, experiment_id, config)
        if run_id is None:
            from trainlab.sweeps.resume import SWEEP_NAME_TAG
            from trainlab.sweeps.study import sweep_name

            named = sweep_name(config)
            if named:  # the same name run again finds this parent (a resumable sweep)
                tags[SWEEP_NAME_TAG] = named
            run_id = client.create_run(experiment_id, run_name=name, tags=tags).info.run_id
        sweep_dir.mkdir(parents=True, exist_ok=True)
        (sweep_dir / PARENT_RUN_FILE).write_text(run_id + "\n")
        OPEN_SWEEPS[run_id] = (uri, experiment_id)
        log.info("MLflow parent run %s (%s)", run_id, name)

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        close_open_sweeps(interrupted=False)


def _reopen_named_sweep(client: Any, experiment_id: str, config: DictConfig) -> str | None:
    """The parent run of an earlier sweep with this one's name, back to RUNNING; None when
    the sweep has no name or ran never before."""
    from trainlab.sweeps.resume import named_parent
    from trainlab.sweeps.study import sweep_name

    name = sweep_name(config)
    run_id = named_parent(client, experiment_id, name) if name else None
    if run_id is not None:
        client.update_run(run_id, status="RUNNING")
        log.info("Sweep %r continues under its parent run %s", name, run_id)
    return run_id


def parent_run_id(sweep_dir: str | Path) -> str | None:
    """The parent run id a sweep's callback left in its folder, if any."""
    marker = Path(sweep_dir) / PARENT_RUN_FILE
    return marker.read_text().strip() if marker.is_file() else None


def sweep_facts(sweep_dir: str | Path) -> tuple[str | None, list[str]]:
    """The sweep's name and the keys it varies, as its callback left them (None, [] if not)."""
    marker = Path(sweep_dir) / SWEEP_FILE
    if not marker.is_file():
        return None, []
    facts = json.loads(marker.read_text())
    return facts.get("name"), list(facts.get("swept", []))


def close_open_sweeps(interrupted: bool) -> None:
    """End every open parent run: KILLED if interrupted, else from its children's statuses;
    each is added to ``CLOSED_SWEEPS``."""
    from trainlab.tools.compare import child_runs
    from trainlab.tracking.store import make_client

    for run_id, (uri, _experiment_id) in list(OPEN_SWEEPS.items()):
        client = make_client(uri)
        children = child_runs(client, run_id)  # all of them, not MLflow's first 1,000
        if interrupted:  # jobs stopped before they could end their runs (killed workers)
            for child in children:
                if child.info.status == "RUNNING":
                    client.set_terminated(child.info.run_id, status="KILLED")
        statuses = {child.info.status for child in children}
        if interrupted or "KILLED" in statuses:
            status = "KILLED"
        elif "FAILED" in statuses or "RUNNING" in statuses or not children:
            status = "FAILED"
        else:
            status = "FINISHED"
        client.set_tag(run_id, "trainlab.children", str(len(children)))
        client.set_terminated(run_id, status=status)
        del OPEN_SWEEPS[run_id]
        CLOSED_SWEEPS.append((run_id, uri, status))


def _start_parallel_workers(config: DictConfig) -> None:
    """With ``hydra/launcher=parallel``, start its workers now: they import torch and
    trainlab while this process creates the store and validates the sweep."""
    from hydra_plugins.trainlab_plugins.parallel_launcher import TARGET, start_workers

    launcher = config.hydra.launcher
    if launcher.get("_target_") == TARGET:
        start_workers(int(launcher.get("n_jobs", -1)))
