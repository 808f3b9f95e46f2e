"""``hydra/launcher=parallel``: trainlab's launcher (workers started early and warmed up,
configs composed by the launching process). Full sweeps through it are in test_sweep.py,
test_compare.py and test_signals.py; here, what it decides before any job runs."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from helpers import all_runs, explain, run_cli, sqlite_uri
from hydra_plugins.trainlab_plugins.parallel_launcher import (
    Submitter,
    _keeping_scanned_plugins,
    call_pickled,
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


class SlowPool:
    """A pool whose submits block until released (as while the fork server still imports)
    and fail when ``broken``; a submit returns the job's arguments instead of a future."""

    def __init__(self) -> None:
        import threading

        self.release = threading.Event()
        self.broken = False

    def submit(self, function: object, payload: bytes) -> tuple[object, ...]:
        import cloudpickle

        self.release.wait(30)
        if self.broken:
            raise RuntimeError("the pool is gone")
        # By name: Hydra's plugin scan may have imported the launcher's module again.
        assert getattr(function, "__name__", None) == call_pickled.__name__
        _, args = cloudpickle.loads(payload)
        return tuple(args)


def test_jobs_are_handed_over_in_order_while_the_first_submit_still_waits() -> None:
    pool = SlowPool()
    submitter = Submitter(pool)
    for job in range(5):  # returns at once although the pool's first submit is blocked
        submitter.submit(print, job)
    assert submitter.futures == []
    pool.release.set()
    assert submitter.close() == [(0,), (1,), (2,), (3,), (4,)]


def test_a_cancelled_submitter_submits_nothing_more() -> None:
    """A signal while the jobs are composed: what is still queued is dropped."""
    pool = SlowPool()
    submitter = Submitter(pool)
    for job in range(3):
        submitter.submit(print, job)
    submitter.cancel()
    pool.release.set()  # the first submit, already under way, may go through; no others
    submitter._thread.join(30)
    assert len(submitter.futures) <= 1


def test_a_failing_pool_is_reported_by_the_submitter() -> None:
    pool = SlowPool()
    pool.broken = True
    pool.release.set()
    submitter = Submitter(pool)
    submitter.submit(print, "never runs")
    with pytest.raises(RuntimeError, match="the pool is gone"):
        submitter.close()


def test_a_workers_later_jobs_keep_its_scanned_plugins(monkeypatch: pytest.MonkeyPatch) -> None:
    from hydra.core.plugins import Plugins
    from hydra.core.singleton import Singleton

    monkeypatch.setattr(Singleton, "_instances", {})
    state = Singleton.get_state()  # as the launching process sends it: without Plugins
    assert Plugins not in state["instances"]
    assert _keeping_scanned_plugins(state) is state  # a worker's first job scans them
    Singleton.set_state(state)
    scanned = Plugins.instance()
    scans: list[object] = []
    monkeypatch.setattr(Plugins, "_initialize", lambda self: scans.append(self))
    sent = Singleton.get_state()  # the next job's
    kept = _keeping_scanned_plugins(sent)
    assert Plugins not in sent["instances"]  # what was sent is left as it was
    Singleton.set_state(kept)
    assert Plugins.instance() is scanned and scans == []


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
