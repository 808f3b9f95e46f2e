"""multiprocessing's fork server, started by trainlab for one purpose at a time.

A fork server is a small, clean Python process (no threads, no tensors) that imports what
its children need once and forks them on request. trainlab uses it for two kinds of
children:

* ``"sweep-workers"``: a parallel sweep's worker processes
  (:mod:`hydra_plugins.trainlab_plugins.parallel_launcher`);
* ``"metric-senders"``: each run's metric sender (:mod:`trainlab.tracking.writer`), when the
  command trains in its own process. Forked from the training process instead, the sender
  shares that process's memory copy-on-write: every page the training loop then writes to
  for the first time is copied (~6,000 pages of a digits-MLP run), and at 2 threads on 2
  cores each copy also interrupts the other torch thread. Measured: ~130 ms of a 1.1 s
  run, against ~5 ms with the sender forked from a fork server.

multiprocessing keeps one fork server per process, with one list of modules to preload:
starting it for another purpose stops the running one first (its children live on: they
were forked, not owned).
"""

from __future__ import annotations

import contextlib
import os
import signal
from collections.abc import Mapping, Sequence

from trainlab.environment import temporary_environ

SWEEP_WORKERS = "sweep-workers"
METRIC_SENDERS = "metric-senders"

_purpose: list[str] = []  # the purpose the running fork server was started for (0 or 1)


def start(purpose: str, modules: Sequence[str], environ: Mapping[str, str] | None = None) -> None:
    """Have the fork server run for ``purpose``, preloading ``modules`` (imported by the
    server itself, in the background: this returns at once; the first fork waits for the
    imports). ``environ`` is set for the server's start only (it reads it when it starts;
    this process keeps its own)."""
    import multiprocessing
    from multiprocessing import forkserver

    if _purpose and _purpose[0] != purpose:
        stop()
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(list(modules))
    with temporary_environ(environ or {}):
        forkserver.ensure_running()  # a no-op while the server started for it is alive
    _purpose[:] = [purpose]


def serving(purpose: str) -> bool:
    """Whether this process started the fork server for ``purpose`` (and has not stopped it)."""
    return _purpose == [purpose]


def stop(purpose: str | None = None) -> None:
    """Kill the fork server (at once: it may be mid-import), then let multiprocessing reap it
    and forget it (``ForkServer._stop``), so a later start runs a new one. With
    ``purpose``, only a server started for that purpose is stopped."""
    from multiprocessing import forkserver

    if purpose is not None and not serving(purpose):
        return
    _purpose.clear()
    server = getattr(forkserver, "_forkserver", None)
    pid = getattr(server, "_forkserver_pid", None)
    if not pid:
        return
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)
    with contextlib.suppress(OSError, AttributeError):
        server._stop()  # type: ignore[union-attr]


def start_for_senders() -> None:
    """Fork this process's metric senders from a fork server (see the module's docstring).
    Call it early, before the heavy imports: the server imports in parallel with this
    process, and the first sender waits for it. Linux only (elsewhere they are spawned),
    and not on the ranks of a torchrun launch that record nothing."""
    import sys

    from trainlab.tracking.store import SQL_STORE_MODULES
    from trainlab.train.heatmap import HEATMAP_MODULES

    if sys.platform.startswith("linux") and os.environ.get("RANK", "0") == "0":
        # What a sender uses: its own code, MLflow's SQL store, the heat map it draws.
        modules = ["trainlab.tracking.writer", *SQL_STORE_MODULES, *HEATMAP_MODULES]
        start(METRIC_SENDERS, modules)
