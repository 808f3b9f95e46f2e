"""The training process's side of the metric sender (:mod:`trainlab.tracking.sender`).

``put`` pickles a batch of points into a pipe to the child process, which owns every MLflow
write of the run's metrics: no SQL, HTTP or ORM work, and no GIL held by it, happens in the
training process. ``flush`` blocks until the child has put everything queued so far into the
store (or reports that the store is unreachable). ``close`` lets the child send what is left
and waits for it; points it could not send end up in a replay file, named in a warning.

On Linux the child is forked (instant, nothing to import again): from a fork server when the
command started one for it (:func:`trainlab.fork_server.start_for_senders`), else from this
process; elsewhere it is spawned.
"""

from __future__ import annotations

import contextlib
import gc
import logging
import multiprocessing
import sys
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

from trainlab.tracking.sender import SenderSettings, serve

log = logging.getLogger(__name__)

Points = list[tuple[str, float, int]]


def start_method() -> str:
    """How the child starts: from the fork server when this process started one for the
    senders (:func:`trainlab.fork_server.start_for_senders`), else forked (Linux) or
    spawned."""
    from trainlab import fork_server

    if fork_server.serving(fork_server.METRIC_SENDERS):
        return "forkserver"
    return "fork" if sys.platform.startswith("linux") else "spawn"


@contextlib.contextmanager
def _main_module_left_out() -> Iterator[None]:
    """Start a child without this program's main module: multiprocessing has every child it
    does not fork from this process import the parent's ``__main__`` script first (a
    benchmark's imports torch: ~1 s of CPU per run on the other core), which the sender
    never uses (its target and settings live in trainlab). (A fork server's preload of
    ``"__main__"`` would not help: Python 3.11's is never applied.)"""
    from multiprocessing import spawn

    original = spawn.get_preparation_data

    def without_main(name: str) -> dict[str, Any]:
        data: dict[str, Any] = original(name)
        data.pop("init_main_from_path", None)
        data.pop("init_main_from_name", None)
        return data

    spawn.get_preparation_data = without_main
    try:
        yield
    finally:
        spawn.get_preparation_data = original


class MetricWriter:
    """Sends ``(name, value, step)`` points to the store through a child process."""

    def __init__(self, settings: SenderSettings) -> None:
        self.settings = settings
        method = start_method()
        context = multiprocessing.get_context(method)
        child_inbox, self._to_child = context.Pipe(duplex=False)
        self._from_child, child_outbox = context.Pipe(duplex=False)
        self._forked = method == "fork"
        # A forked child holds copies of this process's ends of the pipes: it closes them,
        # so that EOF means this process is gone. Other children get only their own ends.
        ours = [self._to_child, self._from_child] if self._forked else []
        self._process = context.Process(  # type: ignore[attr-defined]
            target=serve,
            args=(settings, child_inbox, child_outbox, ours),
            name="trainlab-metric-sender",
            daemon=False,  # never killed at interpreter exit with points still unsent
        )
        if self._forked:
            _freeze_heap()
        with _main_module_left_out() if method == "forkserver" else contextlib.nullcontext():
            self._process.start()
        child_inbox.close()
        child_outbox.close()
        self._seq = 0
        self._acked = 0
        self._degraded = False
        self._child_gone = False
        self._send_lock = threading.Lock()  # the loop and the checkpoint thread both send
        # Points put but not yet handed to the child (see put), and when they last were.
        self._held: list[tuple[int, Points]] = []
        self._held_lock = threading.Lock()
        self._released_at = time.monotonic()
        self._hold_s = settings.flush_every_s / 2
        self._state = threading.Condition()
        self.errors: list[str] = []
        self.child_cpu_s: float | None = None  # the child's CPU time, once it has ended
        self.unsent: list[tuple[str, int]] = []  # (replay file, points) the child left
        self._orphans: Points = []  # points put after the child was gone
        self._closed = False
        self._reader = threading.Thread(
            target=self._read_replies, name="trainlab-metric-replies", daemon=True
        )
        self._reader.start()

    def put(self, points: Points) -> None:
        """Queue points; never waits for the store. They are handed to the child in groups,
        at most every ``flush_every_s / 2`` seconds (and at every flush, render and close):
        each message wakes the child, and on a machine whose cores all run torch's threads a
        woken child stalls them (measured at 2 threads on 2 cores: ~100 messages a run cost
        7% of a digits-MLP run). The child writes at most every ``flush_every_s`` anyway; the
        price is that a training process killed outright (SIGKILL) loses up to that half
        interval of points, which the child would otherwise have written."""
        if not points:
            return
        with self._held_lock:
            self._held.append((int(time.time() * 1000), points))
            due = time.monotonic() - self._released_at >= self._hold_s
        if due:
            self._release()

    def _release(self) -> None:
        """Hand every held group of points to the child, in the order they were put."""
        with self._held_lock:
            held, self._held = self._held, []
            self._released_at = time.monotonic()
            for stamp, points in held:  # under the lock: two releases never interleave
                self._send(("points", stamp, points), points)

    def render(self, function: str, data: Any, artifact_path: str) -> bool:
        """Have the child draw ``function(data, folder)`` and log the files; False when the
        child is gone (then the caller draws them itself)."""
        self._release()
        self._send(("render", function, data, artifact_path))
        return not self._child_gone

    def flush(self) -> None:
        """Wait until every point queued so far is in the store, or the store is found
        unreachable (then the points stay queued in the child, which keeps retrying)."""
        self.request_flush()()

    def request_flush(self) -> Callable[[], None]:
        """Have the child send every point queued so far at once; returns the wait for it
        (:meth:`flush` in two halves, for a caller with work to do meanwhile)."""
        self._release()
        target = self._send(("flush",))

        def wait() -> None:
            with self._state:
                self._state.wait_for(
                    lambda: self._acked >= target or self._degraded or self._child_gone
                )

        return wait

    def close(self, timeout_s: float = 120.0) -> list[str]:
        """Let the child send what is left, wait for it, and return the problems seen."""
        if not self._closed:
            self._closed = True
            self._release()
            self._send(("close",))
            self._process.join(timeout_s)
            if self._process.is_alive():  # stuck in the store: stop it (it wrote its file)
                self._process.terminate()
                self._process.join(5)
                self.errors.append(f"the metric sender did not finish within {timeout_s:.0f} s")
            self._reader.join(5)
            self._to_child.close()
            if self._forked:
                _unfreeze_heap()
            if self._orphans:
                from trainlab.tracking.replay import write_points

                stamp = int(time.time() * 1000)
                path = write_points(
                    self.settings.replay_path,
                    self.settings.uri,
                    self.settings.run_id,
                    [(name, value, step, stamp) for name, value, step in self._orphans],
                )
                self.unsent.append((str(path), len(self._orphans)))
        return self.errors

    @property
    def degraded(self) -> bool:
        return self._degraded

    def _send(self, message: tuple[Any, ...], points: Points | None = None) -> int:
        with self._send_lock:
            self._seq += 1
            seq = self._seq
            if self._child_gone:
                if points:
                    self._orphans.extend(points)
                return seq
            try:
                self._to_child.send((message[0], seq, *message[1:]))
            except (BrokenPipeError, OSError):
                self._child_gone = True
                if points:
                    self._orphans.extend(points)
            return seq

    def _read_replies(self) -> None:
        while True:
            try:
                reply = self._from_child.recv()
            except (EOFError, OSError):
                break
            kind = reply[0]
            with self._state:
                if kind == "sent":
                    self._acked = max(self._acked, int(reply[1]))
                elif kind == "degraded":
                    self._degraded = True
                    log.warning("%s", reply[1])
                elif kind == "recovered":
                    self._degraded = False
                    log.warning("%s", reply[1])
                elif kind == "unsent":
                    self.unsent.append((str(reply[1]), int(reply[2])))
                elif kind == "error":
                    self.errors.append(str(reply[1]))
                    log.warning("%s", reply[1])
                elif kind == "exit" and len(reply) > 2:
                    self.child_cpu_s = float(reply[2])
                self._state.notify_all()
        with self._state:
            self._child_gone = True
            self._state.notify_all()
        self._from_child.close()


# After a fork, every page the parent writes to is copied (copy-on-write) while the child
# lives. A full garbage collection writes to the header of every tracked object, so the first
# one after the fork copies most of the heap: measured ~0.2 s of a 1.3 s run. Objects that
# exist when the child is forked are moved out of the collector's reach until it is closed.
_frozen = 0


def _freeze_heap() -> None:
    global _frozen
    if _frozen == 0:
        gc.freeze()
    _frozen += 1


def _unfreeze_heap() -> None:
    global _frozen
    _frozen -= 1
    if _frozen == 0:
        gc.unfreeze()
