"""Schema of ``sweep``: what makes a sweep (``trainlab train -m``) resumable."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class SweepConfig:
    """A sweep's identity across invocations."""

    # With a name, running the same sweep again finds its parent run, skips the jobs that
    # FINISHED and resumes the others from their checkpoints. null: a new sweep each time
    # (a Bayesian sweep is named after its command line unless this is set).
    name: str | None = None
