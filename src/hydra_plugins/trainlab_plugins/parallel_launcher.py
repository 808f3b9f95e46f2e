"""``hydra/launcher=parallel``: a sweep's jobs in parallel worker processes on this machine.

Hydra's joblib launcher (still there as ``hydra/launcher=joblib``) does the same with three
costs that add up to about as much as the training of a short job (measured on 2 cores,
8 jobs of 0.7 s): each job's config is composed in the worker from a freshly unpickled
config loader (a cold cache: ~0.3 s per job, one core), the workers start only when the
first batch is launched, and each worker imports torch, trainlab and torch._dynamo (pulled
in by the first optimizer) inside its first job. Here

* the worker pool is started as soon as the sweep begins (:func:`start_workers`: by
  ``trainlab train`` when the command line picks this launcher, else by the sweep callback
  before it creates the store), while the launching process validates the sweep and creates
  the store;
* the workers are forked from one fork server that imported what a job needs once
  (:data:`trainlab.sweeps.warmup.MODULES`: torch, torch._dynamo, MLflow's SQL store,
  scikit-learn, trainlab), where loky's workers each imported it themselves: on 2 cores
  two imports of ~4.5 s of CPU each competed with each other and with the launching process,
  and the first job started ~2 s later;
* the launching process composes each job's config (its config cache is warm; a job that
  only changes values is a copy of an earlier job's config, :mod:`trainlab.sweeps.job_configs`)
  and hands the composed config to a worker, which only runs it; it composes them while the
  first submit waits for the fork server (:class:`Submitter`), not while the first jobs train;
* a worker keeps what it made for its earlier jobs: Hydra's scanned plugins, and the data
  split when the dataset config and seed are the same (:mod:`trainlab.data.prepared`).

Each job gets ``cores // n_jobs`` torch threads (``trainer.threads`` overrides), as before.
"""

import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hydra.core.config_store import ConfigStore
from hydra.core.hydra_config import HydraConfig
from hydra.core.singleton import Singleton
from hydra.core.utils import JobReturn, configure_log, filter_overrides, run_job, setup_globals
from hydra.plugins.launcher import Launcher
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig, open_dict

log = logging.getLogger(__name__)

TARGET = "hydra_plugins.trainlab_plugins.parallel_launcher.ParallelLauncher"


@dataclass
class ParallelLauncherConf:
    _target_: str = TARGET
    n_jobs: int = -1  # -1: one job per core


ConfigStore.instance().store(
    group="hydra/launcher", name="trainlab_parallel", node=ParallelLauncherConf, provider="trainlab"
)


def worker_count(n_jobs: int) -> int:
    """Jobs at once: ``n_jobs``, or one per core for -1 (and any other value below 1)."""
    return n_jobs if n_jobs >= 1 else os.cpu_count() or 1


def threads_per_job(n_jobs: int) -> int:
    return max(1, (os.cpu_count() or 1) // worker_count(n_jobs))


_pools: dict[int, Any] = {}  # n_jobs -> its ProcessPoolExecutor (one pool per process)


def _executor(n_jobs: int) -> Any:
    """The pool for ``n_jobs``: the same one for every call with the same ``n_jobs``. Its
    workers are forked from a fork server (multiprocessing's ``forkserver``: a clean process
    with no threads, so forking it is safe) that imported :data:`MODULES` once."""
    pool = _pools.get(n_jobs)
    if pool is not None:
        return pool
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    from trainlab import fork_server
    from trainlab.sweeps.warmup import MODULES

    threads = str(threads_per_job(n_jobs))
    # Thread pools sized before torch starts: OpenMP and MKL read these when torch loads,
    # which is in the fork server; this process's own environment is left as it was.
    fork_server.start(
        fork_server.SWEEP_WORKERS, MODULES, {"OMP_NUM_THREADS": threads, "MKL_NUM_THREADS": threads}
    )
    context = multiprocessing.get_context("forkserver")
    pool = ProcessPoolExecutor(max_workers=worker_count(n_jobs), mp_context=context)
    _pools[n_jobs] = pool
    return pool


def requested_workers(overrides: Sequence[str]) -> int | None:
    """``n_jobs`` when the command line picks ``hydra/launcher=parallel``, else None: lets
    ``trainlab train`` start the workers before it even validates the sweep."""
    if "hydra/launcher=parallel" not in overrides:
        return None
    n_jobs = -1
    for override in overrides:
        key, _, value = override.partition("=")
        if key == "hydra.launcher.n_jobs":
            try:
                n_jobs = int(value)
            except ValueError:
                return None  # Hydra will say what is wrong with it
    return n_jobs


_warmed: list[Any] = []  # the pool whose workers were sent their warm-up (one per process)


def start_workers(n_jobs: int) -> None:
    """Start the pool: its fork server imports what a job needs, and every worker, forked
    from it, takes a first optimizer step. Nothing here waits: a worker can only be forked
    once the fork server has imported everything (~4 s on 2 cores), so the workers are
    requested from a background thread. The command line, the sweep callback and the
    launcher's setup each call this (whichever comes first, depending on where the launcher
    was chosen); a pool is warmed up once."""
    import threading

    from trainlab.sweeps.warmup import warm_up

    executor = _executor(n_jobs)
    if _warmed and _warmed[0] is executor:
        return
    _warmed[:] = [executor]
    threads = threads_per_job(n_jobs)

    def request_workers() -> None:
        try:
            for _ in range(worker_count(n_jobs)):
                executor.submit(warm_up, threads)
        except Exception:  # stopped meanwhile (stop_workers): nothing left to warm up
            return

    threading.Thread(target=request_workers, name="trainlab-start-workers", daemon=True).start()


def stop_workers() -> None:
    """Stop every pool's workers now: a job still running gets SIGTERM (its own handler
    marks its run KILLED), queued jobs are cancelled, the workers are joined, and the fork
    server is stopped (it may still be importing, when a sweep is rejected at once)."""
    while _pools:
        _, pool = _pools.popitem()
        processes = list(getattr(pool, "_processes", {}).values())  # ProcessPoolExecutor's own
        for process in processes:
            if process.is_alive():
                process.terminate()
        for process in processes:
            process.join(timeout=30)
            if process.is_alive():
                process.kill()
                process.join()
        pool.shutdown(wait=True, cancel_futures=True)
    _warmed.clear()
    from trainlab import fork_server

    fork_server.stop(fork_server.SWEEP_WORKERS)


def call_pickled(payload: bytes) -> bytes:
    """In a worker: call a function sent by :func:`submit_pickled`; its result goes back
    pickled with cloudpickle too. Plain pickle refuses both ways: a job's arguments hold
    Hydra's singletons (OmegaConf's resolvers are local functions), and its JobReturn holds
    config classes that Hydra's plugin scan imported a second time in the worker."""
    import pickle

    import cloudpickle

    function, args = pickle.loads(payload)
    return cloudpickle.dumps(function(*args))


def submit_pickled(pool: Any, function: Any, *args: Any) -> Any:
    import cloudpickle

    return pool.submit(call_pickled, cloudpickle.dumps((function, args)))


def unpickled_result(future: Any) -> Any:
    import pickle

    return pickle.loads(future.result())


def _keeping_scanned_plugins(singleton_state: dict[Any, Any]) -> dict[Any, Any]:
    """``singleton_state`` with the Plugins singleton this worker scanned for an earlier
    job: Hydra leaves Plugins out of the state it pickles, and ``set_state`` scans every
    installed plugin again (~0.04 s per job) unless one is there. A sequential sweep keeps
    its one Plugins instance the same way."""
    from hydra.core.plugins import Plugins

    scanned = Singleton._instances.get(Plugins)
    if scanned is None:
        return singleton_state
    instances = {**singleton_state["instances"], Plugins: scanned}
    return {**singleton_state, "instances": instances}


def execute_composed_job(
    sweep_config: DictConfig,
    hydra_context: HydraContext,
    task_function: TaskFunction,
    singleton_state: dict[Any, Any],
) -> JobReturn:
    """In a worker: run one job whose config the launching process composed."""
    setup_globals()
    Singleton.set_state(_keeping_scanned_plugins(singleton_state))
    HydraConfig.instance().set_config(sweep_config)
    return run_job(
        hydra_context=hydra_context,
        config=sweep_config,
        task_function=task_function,
        job_dir_key="hydra.sweep.dir",
        job_subdir_key="hydra.sweep.subdir",
    )


class ParallelLauncher(Launcher):
    def __init__(self, n_jobs: int = -1) -> None:
        self.n_jobs = int(n_jobs)
        self.config: DictConfig | None = None
        self.hydra_context: HydraContext | None = None
        self.task_function: TaskFunction | None = None

    def setup(
        self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig
    ) -> None:
        self.config = config
        self.hydra_context = hydra_context
        self.task_function = task_function
        start_workers(self.n_jobs)  # a no-op when the command line or the callback did

    def launch(
        self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int
    ) -> Sequence[JobReturn]:
        setup_globals()
        assert self.config is not None
        assert self.hydra_context is not None
        assert self.task_function is not None
        configure_log(self.config.hydra.hydra_logging, self.config.hydra.verbose)
        sweep_dir = Path(str(self.config.hydra.sweep.dir))
        sweep_dir.mkdir(parents=True, exist_ok=True)
        workers = worker_count(self.n_jobs)
        log.info(
            f"Launching {len(job_overrides)} jobs, {workers} at once (n_jobs={self.n_jobs}, "
            f"{threads_per_job(self.n_jobs)} torch threads each); sweep output dir: {sweep_dir}"
        )
        executor = _executor(self.n_jobs)
        singleton_state = Singleton.get_state()
        from trainlab.sweeps.job_configs import JobConfigs

        job_configs = JobConfigs(self.hydra_context.config_loader, self.config)
        submitter = Submitter(executor)
        try:
            for offset, overrides in enumerate(job_overrides):
                index = initial_job_idx + offset
                log.info(f"\t#{index} : {' '.join(filter_overrides(overrides))}")
                sweep_config = job_configs.compose(overrides)
                with open_dict(sweep_config):
                    sweep_config.hydra.job.id = f"{sweep_config.hydra.job.name}_{index}"
                    sweep_config.hydra.job.num = index
                submitter.submit(
                    execute_composed_job,
                    sweep_config,
                    self.hydra_context,
                    self.task_function,
                    singleton_state,
                )
        except BaseException:  # a signal or an error while composing: submit no more jobs
            submitter.cancel()
            raise
        return [unpickled_result(future) for future in submitter.close()]


class Submitter:
    """Submits jobs to the pool from a thread of its own, in order. The pool's first submit
    blocks until the fork server has imported everything and forked a worker (seconds on 2
    cores); meanwhile the launching process goes on composing the other jobs' configs, which
    it would otherwise do while the first jobs train, on the same cores."""

    def __init__(self, pool: Any) -> None:
        import queue
        import threading

        self.pool = pool
        self.futures: list[Any] = []
        self.error: BaseException | None = None
        self.cancelled = False
        self._jobs: queue.Queue[tuple[Any, tuple[Any, ...]] | None] = queue.Queue()
        self._thread = threading.Thread(target=self._run, name="trainlab-submit", daemon=True)
        self._thread.start()

    def submit(self, function: Any, *args: Any) -> None:
        if self.error is not None:
            raise self.error
        self._jobs.put((function, args))

    def close(self) -> list[Any]:
        """Wait until every job is submitted; their futures, in order."""
        self._jobs.put(None)
        self._thread.join()
        if self.error is not None:
            raise self.error
        return self.futures

    def cancel(self) -> None:
        """Submit nothing more (jobs still queued are dropped); does not wait."""
        self.cancelled = True
        self._jobs.put(None)

    def _run(self) -> None:
        while (job := self._jobs.get()) is not None:
            if self.error is not None or self.cancelled:
                continue  # the pool failed (close() reports it) or the sweep stops: drain
            function, args = job
            try:
                self.futures.append(submit_pickled(self.pool, function, *args))
            except BaseException as error:
                self.error = error
