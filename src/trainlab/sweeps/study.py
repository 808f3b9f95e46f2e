"""The Optuna study behind a Bayesian sweep: where it is stored, what it is called, its sampler
and pruner, and the loop that asks it for trials and launches them as Hydra jobs.

The study lives beside the tracking store (``outputs/optuna.db`` next to ``outputs/mlflow.db``)
under a name derived from the command line, so the same command run again continues the same
study under the same MLflow parent run: ``n_trials`` is the study's total, trials cut short
by an interrupt are resumed from their checkpoints first, and a finished study runs nothing.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from trainlab.sweeps.search_space import SWEEPER_TARGET, parse_search_space, raise_problems

log = logging.getLogger(__name__)

SAMPLERS = ("tpe", "random")
PRUNERS = ("median", "successive_halving", "none")
STUDY_FILE = "optuna_study.json"  # in the sweep folder: how a job finds its study
TRIAL_ENV = "TRAINLAB_OPTUNA_TRIAL"  # set per job (hydra.job.env_set): the trial's number


def is_bayesian(config: DictConfig) -> bool:
    sweeper = OmegaConf.select(config, "hydra.sweeper")
    return sweeper is not None and str(sweeper.get("_target_", "")) == SWEEPER_TARGET


def sweep_name(config: DictConfig) -> str | None:
    """The name that makes a sweep resumable: ``sweep.name``, else for a Bayesian sweep
    ``hydra.sweeper.study_name``, else one derived from the command line (the same command
    gives the same name). None: a plain sweep, new every time."""
    name = OmegaConf.select(config, "sweep.name")
    if name:
        return str(name)
    if not is_bayesian(config):
        return None
    sweeper = config.hydra.sweeper
    if sweeper.get("study_name"):
        return str(sweeper.study_name)
    task = sorted(str(o) for o in config.hydra.overrides.task)
    space = sorted(f"{k}={v}" for k, v in (sweeper.params or {}).items())
    text = "\n".join([str(config.tracking.experiment), *task, "--", *space])
    return f"optuna-{hashlib.sha1(text.encode()).hexdigest()[:10]}"


def default_storage(tracking_uri: str) -> str:
    """``sqlite:///.../optuna.db`` beside a sqlite tracking store, else under ``outputs/``."""
    from trainlab.tracking.store import sqlite_path

    database = sqlite_path(tracking_uri)
    folder = database.resolve().parent if database is not None else Path("outputs").resolve()
    folder.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{folder / 'optuna.db'}"


def build_sampler(settings: Any) -> Any:
    import optuna

    if settings.name == "random":
        return optuna.samplers.RandomSampler(seed=settings.seed)
    return optuna.samplers.TPESampler(
        seed=settings.seed, n_startup_trials=settings.n_startup_trials
    )


def build_pruner(settings: dict[str, Any]) -> Any:
    """From the plain settings (``hydra.sweeper.pruner``), in the sweeper and in each job."""
    import optuna

    name = settings["name"]
    if name == "median":
        return optuna.pruners.MedianPruner(
            n_startup_trials=settings["n_startup_trials"],
            n_warmup_steps=settings["n_warmup_steps"],
        )
    if name == "successive_halving":
        return optuna.pruners.SuccessiveHalvingPruner(
            min_resource=settings["min_resource"],
            reduction_factor=settings["reduction_factor"],
            min_early_stopping_rate=settings["min_early_stopping_rate"],
        )
    return optuna.pruners.NopPruner()


def load_study_file(sweep_dir: str | Path) -> dict[str, Any] | None:
    path = Path(sweep_dir) / STUDY_FILE
    return json.loads(path.read_text()) if path.is_file() else None


def run_study(config: DictConfig, launcher: Any, arguments: list[str]) -> None:
    """Ask, launch, tell until the study holds ``n_trials`` ended trials."""
    import optuna
    from optuna.trial import TrialState

    from trainlab.metrics import mode_for
    from trainlab.tracking.sweep_callback import parent_run_id

    settings = config.hydra.sweeper
    space, problems = parse_search_space(dict(settings.params or {}), arguments)
    raise_problems(problems)  # `trainlab train` checked already; this guards other callers
    name = sweep_name(config)
    storage = str(settings.storage or default_storage(str(config.tracking.uri)))
    pruner_settings = OmegaConf.to_container(settings.pruner, resolve=True)
    assert isinstance(pruner_settings, dict)
    mode = mode_for(str(config.trainer.monitor), str(config.trainer.mode))
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(
        study_name=name,
        storage=storage,
        sampler=build_sampler(settings.sampler),
        pruner=build_pruner(pruner_settings),  # type: ignore[arg-type]
        direction="minimize" if mode == "min" else "maximize",
        load_if_exists=True,
    )
    sweep_dir = Path(str(config.hydra.sweep.dir))
    sweep_dir.mkdir(parents=True, exist_ok=True)
    info = {"study_name": name, "storage": storage, "pruner": pruner_settings}
    (sweep_dir / STUDY_FILE).write_text(json.dumps(info, indent=2) + "\n")
    parent = parent_run_id(sweep_dir)
    if parent:
        study.set_user_attr("mlflow_parent_run_id", parent)
    study.set_user_attr("monitor", str(config.trainer.monitor))

    ended = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)
    # Trials an earlier run of this command left RUNNING (interrupted): resume them first.
    interrupted = list(study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)))
    to_ask = max(0, int(settings.n_trials) - len(study.get_trials(states=ended)) - len(interrupted))
    log.info(
        "Optuna study %s in %s: %d trials ended, %d to resume, %d to start",
        name,
        storage,
        len(study.get_trials(states=ended)),
        len(interrupted),
        to_ask,
    )
    distributions = {d.key: d.distribution() for d in space.dimensions}
    job_number = 0
    while interrupted or to_ask:
        batch: list[tuple[Any, dict[str, Any]]] = []
        while len(batch) < int(settings.n_jobs) and (interrupted or to_ask):
            if interrupted:
                frozen = interrupted.pop(0)
                batch.append((optuna.trial.Trial(study, frozen._trial_id), dict(frozen.params)))
            else:
                trial = study.ask(fixed_distributions=distributions)
                batch.append((trial, dict(trial.params)))
                to_ask -= 1
        overrides = [
            [*space.trial_overrides(params), f"+hydra.job.env_set.{TRIAL_ENV}={trial.number}"]
            for trial, params in batch
        ]
        returns = launcher.launch(overrides, initial_job_idx=job_number)
        job_number += len(returns)
        for (trial, _), outcome in zip(batch, returns, strict=True):
            _tell(study, trial, outcome)
    _report(study, mode)


def _tell(study: Any, trial: Any, outcome: Any) -> None:
    from hydra.core.utils import JobStatus
    from optuna.trial import TrialState

    if outcome.status != JobStatus.COMPLETED:
        study.tell(trial, state=TrialState.FAIL)
        return
    attributes = study._storage.get_trial(trial._trial_id).user_attrs
    value = outcome.return_value
    if attributes.get("pruned"):
        study.tell(trial, state=TrialState.PRUNED)
    elif value is None or not math.isfinite(float(value)):
        study.tell(trial, state=TrialState.FAIL)
    else:
        study.tell(trial, float(value))


def _report(study: Any, mode: str) -> None:
    from optuna.trial import TrialState

    counts = {
        state.name.lower(): len(study.get_trials(deepcopy=False, states=(state,)))
        for state in (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)
    }
    summary = ", ".join(f"{count} {state}" for state, count in counts.items())
    if not counts["complete"]:
        print(f"Optuna study {study.study_name}: {summary}; no trial completed.", flush=True)
        return
    best = study.best_trial
    params = " ".join(f"{k}={_show(v)}" for k, v in best.params.items())
    monitor = study.user_attrs.get("monitor", "value")
    print(
        f"Optuna study {study.study_name} ({summary}): best trial {best.number}, "
        f"{monitor} {best.value:.4g} with {params}",
        flush=True,
    )


def _show(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)
