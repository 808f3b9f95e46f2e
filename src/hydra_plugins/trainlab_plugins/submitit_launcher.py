"""``hydra/launcher=slurm``, ``slurm_gpu``, ``slurm_local``: Hydra's submitit launchers, with a
``checkpoint()`` that makes a requeued job continue the MLflow run it was training.

On preemption or an approaching time limit submitit sends SIGUSR2; the training loop stops
between two steps, writes a checkpoint and marks the run KILLED, then hands over to submitit,
which calls :meth:`checkpoint` and requeues the job. The resubmitted job carries the run id in
its overrides and resumes that run from the checkpoint (RUNNING again, then FINISHED).
"""

from typing import Any

try:  # the cluster extra (pip install 'trainlab[cluster]')
    from hydra_plugins.hydra_submitit_launcher.submitit_launcher import (
        LocalLauncher,
        SlurmLauncher,
    )
except ImportError:  # without it Hydra must still start: these presets then fail by name
    LocalLauncher = SlurmLauncher = object


def _resubmission(launcher: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    import submitit

    from trainlab.sweeps.cluster import CURRENT_RUN
    from trainlab.sweeps.resume import RESUME_ENV

    run_id = CURRENT_RUN.get("run_id")
    if run_id and args:
        overrides = [o for o in args[0] if not o.startswith(f"+hydra.job.env_set.{RESUME_ENV}=")]
        args = ([*overrides, f"+hydra.job.env_set.{RESUME_ENV}={run_id}"], *args[1:])
    return submitit.helpers.DelayedSubmission(launcher, *args, **kwargs)


class TrainlabSlurmLauncher(SlurmLauncher):
    def checkpoint(self, *args: Any, **kwargs: Any) -> Any:
        return _resubmission(self, args, kwargs)


class TrainlabLocalLauncher(LocalLauncher):
    """submitit's local executor: the same protocol on one machine, for tests."""

    def checkpoint(self, *args: Any, **kwargs: Any) -> Any:
        return _resubmission(self, args, kwargs)
