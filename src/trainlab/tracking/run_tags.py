"""Tags that say where a run came from: git commit, dirty flag, command line."""

from __future__ import annotations

import contextlib
import getpass
import os
import subprocess
import sys

COMMAND_ENV = "TRAINLAB_COMMAND"


def _git(*args: str) -> str | None:
    try:
        done = subprocess.run(
            ["git", *args], capture_output=True, text=True, timeout=5, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout.strip() if done.returncode == 0 else None


def source_tags() -> dict[str, str]:
    """MLflow's standard source tags plus trainlab's command and git state."""
    from mlflow.utils.mlflow_tags import (
        MLFLOW_GIT_COMMIT,
        MLFLOW_SOURCE_NAME,
        MLFLOW_SOURCE_TYPE,
        MLFLOW_USER,
    )

    command = os.environ.get(COMMAND_ENV) or " ".join(sys.argv)
    tags = {
        MLFLOW_SOURCE_NAME: "trainlab",
        MLFLOW_SOURCE_TYPE: "LOCAL",
        "trainlab.command": command,
    }
    with contextlib.suppress(KeyError, OSError):
        tags[MLFLOW_USER] = getpass.getuser()
    commit = _git("rev-parse", "HEAD")
    if commit:
        tags[MLFLOW_GIT_COMMIT] = commit
        status = _git("status", "--porcelain", "--untracked-files=no")
        tags["trainlab.git_dirty"] = str(bool(status)).lower()
    return tags


# Overrides that say where and how a job runs, not what it trains: left out of run names.
PLUMBING_PREFIXES = ("tracking.", "trainer.progress", "hydra.", "hydra/", "sweep.")


def run_name_from(overrides: list[str]) -> str | None:
    """A run's name from its job's overrides (``optimizer=adam,optimizer.lr=0.01``): Hydra's
    escaping removed (``sqlite\\:///`` -> ``sqlite:///``) and plumbing (the store, the
    display) left out; None when nothing is left (the config's defaults)."""
    import re

    kept = [
        re.sub(r"\\(.)", r"\1", override)
        for override in overrides
        if not override.lstrip("+~").startswith(PLUMBING_PREFIXES)
    ]
    return ",".join(kept) or None
