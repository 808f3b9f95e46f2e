"""Preemption on a cluster (submitit, SLURM): the job stops between two steps, checkpoints,
marks its run KILLED and asks submitit to requeue it; the requeued job resumes the same MLflow
run from that checkpoint (its overrides carry ``TRAINLAB_RESUME_RUN_ID``)."""

from __future__ import annotations

import os
import signal

# The run the job in this process is training (what a requeue must continue).
CURRENT_RUN: dict[str, str] = {}
# submitit's own handler of its preemption signal, replaced while a run trains.
REQUEUE_HANDLER: list[object] = []


def preemption_signal() -> int | None:
    """submitit's preemption/timeout signal (SIGUSR2 unless SUBMITIT_PREEMPT_SIGNAL says
    otherwise) when this process is a submitit job, else None."""
    if not os.environ.get("SUBMITIT_EXECUTOR"):
        return None
    name = "SIG" + os.environ.get("SUBMITIT_PREEMPT_SIGNAL", "USR2")
    found = getattr(signal, name, None)
    return int(found) if found is not None else None


def requeue(signum: int) -> None:
    """Hand over to submitit: it calls the launcher's ``checkpoint()`` (which adds the run id
    to the job's overrides), requeues the job and exits."""
    handler = REQUEUE_HANDLER[-1] if REQUEUE_HANDLER else None
    if callable(handler):
        handler(signum, None)
