"""A job's side of an Optuna trial: it reports each epoch's monitored value to the study and
stops early when the pruner says the trial cannot catch up.

The job finds its trial from the number the sweeper gave it (``TRAINLAB_OPTUNA_TRIAL``) and the
study file in the sweep folder; the study's storage is shared, so this works the same in
process, in joblib workers and on a cluster.
"""

from __future__ import annotations

import math
import os
import sys
from pathlib import Path
from typing import Any

from trainlab.sweeps.study import TRIAL_ENV, build_pruner, load_study_file
from trainlab.tracking.base import Tracker
from trainlab.train.loop import EpochListener, Progress

PRUNED_TAG = "trainlab.pruned"


class TrialLink:
    """The job's trial in the shared study."""

    def __init__(self, study: Any, trial: Any) -> None:
        self.study = study
        self.trial = trial

    @classmethod
    def from_environment(cls, sweep_dir: str | Path) -> TrialLink | None:
        number = os.environ.get(TRIAL_ENV)
        info = load_study_file(sweep_dir) if number is not None else None
        if number is None or info is None:
            return None
        import optuna

        optuna.logging.set_verbosity(optuna.logging.WARNING)
        study = optuna.load_study(
            study_name=info["study_name"],
            storage=info["storage"],
            pruner=build_pruner(info["pruner"]),
            sampler=optuna.samplers.RandomSampler(),  # the job never samples
        )
        trial_id = study._storage.get_trial_id_from_study_id_trial_number(
            study._study_id, int(number)
        )
        return cls(study, optuna.trial.Trial(study, trial_id))

    @property
    def run_id(self) -> str | None:
        """The MLflow run an earlier attempt of this trial recorded into, if any."""
        value = self.study._storage.get_trial(self.trial._trial_id).user_attrs.get("mlflow_run_id")
        return str(value) if value else None

    def listener(self, tracker: Tracker, monitor: str) -> EpochListener:
        """Links the trial and the run both ways and returns the epoch-end reporter."""
        self.trial.set_user_attr("mlflow_run_id", tracker.run_id)
        tracker.set_tags(
            {
                "trainlab.optuna_study": self.study.study_name,
                "trainlab.optuna_trial": str(self.trial.number),
            }
        )
        return TrialReporter(self.trial, tracker, monitor)


class TrialReporter(EpochListener):
    """Reports the monitored value at every epoch end; on the pruner's word it asks the loop
    to stop (like early stopping: the run ends FINISHED, with its checkpoints) and tags the
    run ``trainlab.pruned=true``."""

    def __init__(self, trial: Any, tracker: Tracker, monitor: str) -> None:
        self.trial = trial
        self.tracker = tracker
        self.monitor = monitor

    def on_epoch_end(self, progress: Progress, metrics: dict[str, float], improved: bool) -> None:
        value = metrics.get(self.monitor)
        if value is None or not math.isfinite(value):
            return  # a diverged epoch: the pruner sees no number rather than a NaN
        self.trial.report(value, progress.epoch)
        if progress.stop_requested or not self.trial.should_prune():
            return
        progress.stop_requested = True
        self.trial.set_user_attr("pruned", True)
        self.tracker.set_tags({PRUNED_TAG: "true", "trainlab.pruned_at_epoch": str(progress.epoch)})
        print(
            f"Trial {self.trial.number} pruned after epoch {progress.epoch}: {self.monitor} "
            f"{value:.4g} is behind the study's other trials at this epoch.",
            file=sys.stderr,
            flush=True,
        )
