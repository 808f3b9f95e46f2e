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


def override_key(override: str) -> str:
    """The key an override sets: ``+optimizer.lr=0.1`` -> ``optimizer.lr``."""
    return override.lstrip("+~").split("=", 1)[0]


def run_name_from(overrides: list[str], swept: list[str] | None = None) -> str | None:
    """A run's name from its job's overrides, as one would type them
    (``optimizer=adam optimizer.lr=0.01``): Hydra's escaping removed (``sqlite\\:///`` ->
    ``sqlite:///``) and plumbing (the store, the display) left out. In a sweep, ``swept``
    names the keys the sweep varies: only those are kept, so the MLflow UI shows each child by
    what sets it apart. None when nothing is left (the config's defaults)."""
    import re

    kept = [
        re.sub(r"\\(.)", r"\1", override)
        for override in overrides
        if not override.lstrip("+~").startswith(PLUMBING_PREFIXES)
        and (not swept or override_key(override) in swept)
    ]
    return " ".join(kept) or None


def swept_keys(overrides: list[str], declared: dict[str, str] | None = None) -> list[str]:
    """The keys a sweep varies: those of the command line's sweep overrides
    (``optimizer=sgd,adam``, ``seed=range(3)``, ``optimizer.lr=interval(1e-4,1e-1)``) and
    those a preset or sweeper declares in ``hydra.sweeper.params``."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    parser = OverridesParser.create()
    keys: list[str] = []
    for override in parser.parse_overrides(list(overrides)):
        if override.is_sweep_override():
            keys.append(override.key_or_group)
    for key, value in (declared or {}).items():
        parsed = parser.parse_overrides([f"{key}={value}"])[0]
        if parsed.is_sweep_override() or "," in str(value):
            keys.append(parsed.key_or_group)
    return list(dict.fromkeys(k for k in keys if not k.startswith(PLUMBING_PREFIXES)))
