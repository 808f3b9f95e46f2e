"""``hydra/launcher=parallel``: trainlab's launcher (workers started early and warmed up,
configs composed by the launching process). Full sweeps through it are in test_sweep.py,
test_compare.py and test_signals.py; here, what it decides before any job runs."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from helpers import all_runs, explain, run_cli, sqlite_uri
from hydra_plugins.trainlab_plugins.parallel_launcher import (
    requested_workers,
    threads_per_job,
    worker_count,
)


def test_workers_requested_on_the_command_line() -> None:
    assert requested_workers(["optimizer.lr=0.1,0.01"]) is None
    assert requested_workers(["hydra/launcher=joblib", "hydra.launcher.n_jobs=2"]) is None
    assert requested_workers(["hydra/launcher=parallel"]) == -1
    assert requested_workers(["hydra/launcher=parallel", "hydra.launcher.n_jobs=3"]) == 3
    assert requested_workers(["hydra/launcher=parallel", "hydra.launcher.n_jobs=x"]) is None


def test_one_job_per_core_and_the_cores_shared_out() -> None:
    cores = os.cpu_count() or 1
    assert worker_count(-1) == cores
    assert worker_count(3) == 3
    assert threads_per_job(-1) == 1
    assert threads_per_job(1) == cores
    assert threads_per_job(4 * cores) == 1


def _pool_processes() -> set[str]:
    """The fork server and the workers forked from it (they keep its command line)."""
    listing = subprocess.run(["ps", "-eo", "pid,args"], capture_output=True, text=True).stdout
    return {line.split()[0] for line in listing.splitlines() if "forkserver" in line}


def test_a_bad_sweep_on_the_parallel_launcher_exits_2_and_stops_its_workers(
    tmp_path: Path,
) -> None:
    """The workers start before the sweep is validated; bad input still exits 2 at once,
    records nothing, and leaves no worker behind."""
    before = _pool_processes()
    uri = sqlite_uri(tmp_path)
    done = run_cli(
        "train", "-m", "hydra/launcher=parallel", "hydra.launcher.n_jobs=2",
        "optimizer.lr=0.01,-1", f"tracking.uri={uri}", cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 2, explain(done)
    assert "optimizer.lr" in done.stderr and "Traceback" not in done.stderr, explain(done)
    assert not (tmp_path / "mlflow.db").exists() or not all_runs(uri)
    assert _pool_processes() <= before, "the fork server and the workers were stopped"
