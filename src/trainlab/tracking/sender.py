"""The metric sender: a child process that owns the MLflow writes of a run's metrics.

MLflow's ``log_batch`` on a SQL store costs about 11 ms plus 0.14 ms per metric row of pure
Python (SQLAlchemy's ORM). Run from a thread of the training process it holds the GIL for
that long, and the training thread waits: measured, that was a third of a digits MLP's
training time. In a child process the same work runs on another core and the training
process only pickles a few tuples into a pipe.

The child coalesces what it receives and sends at most once every ``flush_every_s`` seconds,
at once when asked to flush, and before it exits. When a send fails (the store is gone, a
server restarts) it keeps the points, warns once, and retries with a growing delay; what is
still unsent when it must stop is written to a replay file (see :mod:`trainlab.tracking.replay`)
so nothing is lost.

The child also draws and logs end-of-run artifacts (the gradient heat-map), so the training
process does not draw.

Messages, parent -> child: ``("points", seq, timestamp_ms, [(name, value, step), ...])``,
``("render", seq, "module:function", data, artifact_path)`` (``function(data, folder)``
writes files into ``folder`` and returns their paths; they are logged under
``artifact_path``), ``("flush", seq)``, ``("close", seq)``. Child -> parent: ``("sent", seq)``
(every point sent up to message ``seq`` is in the store; drawings queued by then may still
be in progress, and are done before the child exits), ``("degraded", text)`` (sends are
failing; flushes stop waiting), ``("recovered", text)``, ``("unsent", path, count)``,
``("error", text)``, ``("exit", seq, cpu_seconds)`` (the child's own CPU time, as it ends).
"""

from __future__ import annotations

import contextlib
import gc
import importlib
import os
import queue
import shutil
import signal
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any, Protocol

from trainlab.tracking.replay import kept_artifacts_dir, write_item, write_points
from trainlab.tracking.sql_metrics import Point, SqlMetricWriter

MAX_METRICS_PER_BATCH = 1000  # MLflow's log_batch limit
BULK_FAILURES_BEFORE_GIVING_UP = 3  # bulk writes failing where log_batch works: stop trying
RETRY_DELAYS_S = (1.0, 2.0, 4.0, 8.0, 15.0, 30.0)  # then every 30 s


@dataclass(frozen=True)
class SenderSettings:
    """What the child needs to know; plain values (picklable for a spawned child)."""

    uri: str
    run_id: str
    flush_every_s: float = 1.0
    # Points at or below these steps are already in the store (a resumed run): not resent.
    logged_up_to: dict[str, int] = field(default_factory=dict)
    # How long the child keeps retrying after it was told to close, before it gives up and
    # writes the replay file.
    close_timeout_s: float = 10.0
    replay_path: str = ""
    # "module:function" the child calls as soon as it starts, before its first message: the
    # imports of an end-of-run drawing, done while the training process is still setting up
    # (record_config, the first batches) instead of while it waits at close.
    warm_up: str = ""
    # The run's artifact folder when the store keeps artifacts on this machine (drawings are
    # written straight into it); "" for a remote artifact store (they are uploaded).
    artifact_dir: str = ""
    # The training process's working folder: a child forked from a fork server starts in
    # the server's, and relative store URIs and paths must mean the same in both.
    working_dir: str = ""


class Store(Protocol):
    """What the child writes to: the run's metrics and artifacts."""

    def send(self, points: list[Point]) -> None: ...

    def log_artifacts(self, folder: Path, artifact_path: str) -> None: ...


class MlflowStore:
    """The run in the MLflow store. A SQL store's points go straight into its tables, through
    an engine of the sender's own (:meth:`SqlMetricWriter.for_uri`: no schema check, which
    the training process did when it created the run, and no connection shared with it);
    any other store's, and the bulk path's fall-backs, through an MlflowClient made when
    first needed. HTTP retries are left to the sender's own loop, which never blocks for
    minutes."""

    def __init__(self, uri: str, run_id: str) -> None:
        os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
        os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "10")
        self.uri = uri
        self.run_id = run_id
        self._client: Any = None
        # A SQL store's tables take the points directly, ~10x cheaper than log_batch.
        self.bulk = SqlMetricWriter.for_uri(uri)
        self.bulk_failures = 0  # failed bulk writes that log_batch then managed

    @property
    def client(self) -> Any:
        """An MlflowClient on the store. A child forked from the training process inherits
        MLflow's store cache: a SQL store's engine is kept with a pool of its own, as
        SQLAlchemy advises after a fork (a new store would check the schema again); any
        other store is built anew."""
        if self._client is None:
            from mlflow import MlflowClient
            from mlflow.tracking._tracking_service.utils import _tracking_store_registry

            client = MlflowClient(tracking_uri=self.uri)
            engine = getattr(client._tracking_client.store, "engine", None)
            if engine is not None:
                engine.dispose(close=False)
            else:
                _tracking_store_registry._get_store_with_resolved_uri.cache_clear()
                client = MlflowClient(tracking_uri=self.uri)
            self._client = client
        return self._client

    def send(self, points: list[Point]) -> None:
        if self.bulk is not None:
            try:
                self.bulk.send(self.run_id, points)
                return
            except Exception:
                pass  # the store may be down (log_batch fails too), or unlike what we know
        self._log_batch(points)
        if self.bulk is not None:
            self.bulk_failures += 1
            if self.bulk_failures >= BULK_FAILURES_BEFORE_GIVING_UP:
                self.bulk = None  # the store is reachable but the bulk path is not for it

    def _log_batch(self, points: list[Point]) -> None:
        from mlflow.entities import Metric

        for start in range(0, len(points), MAX_METRICS_PER_BATCH):
            metrics = [
                Metric(name, value, stamp, step)
                for name, value, step, stamp in points[start : start + MAX_METRICS_PER_BATCH]
            ]
            self.client.log_batch(self.run_id, metrics=metrics, synchronous=True)

    def log_artifacts(self, folder: Path, artifact_path: str) -> None:
        self.client.log_artifacts(self.run_id, str(folder), artifact_path)


def named_function(function: str) -> Callable[..., Any]:
    """The function ``module:function`` names (imported on the way)."""
    module, name = function.split(":")
    found: Callable[..., Any] = getattr(importlib.import_module(module), name)
    return found


def render(function: str, data: Any, folder: Path) -> list[Path]:
    """Call ``module:function`` with ``(data, folder)``; it returns the files it wrote."""
    paths: list[Path] = named_function(function)(data, folder)
    return paths


class Sender:
    """The child's state: what is pending, what was acknowledged, and the retry clock."""

    def __init__(
        self,
        settings: SenderSettings,
        reply: Callable[[tuple[Any, ...]], None],
        make_store: Callable[[], Store],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.settings = settings
        self.reply = reply
        self.make_store = make_store
        self.clock = clock
        self.store: Store | None = None
        self.pending: list[Point] = []
        self.renders: list[tuple[str, Any, str]] = []  # (function, data, artifact path)
        self.pending_since: float | None = None
        self.received_seq = 0  # the newest message read
        self.acked_seq = 0
        self.flush_wanted = False
        self.closing_since: float | None = None
        self.failures = 0
        self.retry_at = 0.0

    def take(self, message: tuple[Any, ...]) -> None:
        kind = message[0]
        self.received_seq = message[1]
        if kind == "points":
            _, _, stamp, points = message
            up_to = self.settings.logged_up_to
            if self.pending_since is None:
                self.pending_since = self.clock()
            self.pending.extend(
                (name, value, step, stamp)
                for name, value, step in points
                if step > up_to.get(name, -1)
            )
        elif kind == "render":
            _, _, function, data, artifact_path = message
            self.renders.append((function, data, artifact_path))
        elif kind == "flush":
            self.flush_wanted = True
        elif kind == "close":
            self.closing_since = self.clock()

    def wait_time(self) -> float | None:
        """Seconds until the next send is due (None: nothing to do until a message comes)."""
        if not self.pending:
            return 0.0 if self.acked_seq < self.received_seq or self.renders else None
        now = self.clock()
        if self.failures:
            retry_at = self.retry_at
            if self.closing_since is not None:  # do not sleep past the give-up time
                retry_at = min(retry_at, self.closing_since + self.settings.close_timeout_s)
            return max(0.0, retry_at - now)
        if self.flush_wanted or self.closing_since is not None:
            return 0.0
        assert self.pending_since is not None
        return max(0.0, self.pending_since + self.settings.flush_every_s - now)

    def step(self) -> None:
        """Send if due; acknowledge what is in the store."""
        wait = self.wait_time()
        if wait is None or wait > 0:
            return
        if self.pending:
            self._send_pending()
        # Acknowledged before drawing: a flush waits for the points, not for a picture
        # (the final checkpoint would otherwise wait ~0.2 s for the gradient heat map).
        if not self.pending and self.acked_seq < self.received_seq:
            self.acked_seq = self.received_seq
            self.flush_wanted = False
            self.reply(("sent", self.acked_seq))
        if not self.pending and self.renders:
            self.render_all()

    def _connected(self) -> Store:
        if self.store is None:
            self.store = self.make_store()
        return self.store

    def render_all(self) -> None:
        """Draw the queued artifacts: straight into the run's folder when the store keeps
        artifacts on this machine, else into a temporary folder that is then logged; files
        that cannot be logged are kept beside the replay file."""
        while self.renders:
            function, data, artifact_path = self.renders.pop(0)
            if self.settings.artifact_dir:
                self._draw(function, data, Path(self.settings.artifact_dir) / artifact_path)
                continue
            folder = Path(tempfile.mkdtemp(prefix="trainlab-render-"))
            try:
                if self._draw(function, data, folder):
                    self._log_drawn(folder, artifact_path)
            except Exception as error:  # not even kept
                self.reply(("error", f"could not keep the {artifact_path} artifacts: {error}"))
            finally:
                shutil.rmtree(folder, ignore_errors=True)

    def _draw(self, function: str, data: Any, folder: Path) -> bool:
        try:
            render(function, data, folder)
        except Exception as error:
            self.reply(("error", f"could not draw {function}: {type(error).__name__}: {error}"))
            return False
        return True

    def _log_drawn(self, folder: Path, artifact_path: str) -> None:
        """Log the drawn files, or keep them for ``trainlab sync``."""
        try:
            self._connected().log_artifacts(folder, artifact_path)
        except Exception as error:
            kept = kept_artifacts_dir(self.settings.replay_path) / artifact_path
            shutil.copytree(folder, kept, dirs_exist_ok=True)
            write_item(
                self.settings.replay_path,
                self.settings.uri,
                self.settings.run_id,
                {"artifacts": str(kept), "path": artifact_path},
            )
            self.reply(
                (
                    "error",
                    f"could not log the {artifact_path} artifacts "
                    f"({type(error).__name__}: {str(error).splitlines()[0][:200]}); "
                    f"they are kept in {kept}",
                )
            )

    def _send_pending(self) -> None:
        try:
            store = self._connected()
            store.send(self.pending)  # all or nothing: kept for the retry if it fails
            self.pending = []
        except Exception as error:  # keep the points; retry later
            delay = RETRY_DELAYS_S[min(self.failures, len(RETRY_DELAYS_S) - 1)]
            self.failures += 1
            self.retry_at = self.clock() + delay
            if self.failures == 1:
                self.reply(
                    (
                        "degraded",
                        f"cannot send metrics to the tracking store "
                        f"({type(error).__name__}: {str(error).splitlines()[0][:300]}); "
                        "training goes on, the metrics are kept and retried",
                    )
                )
            return
        self.pending_since = None
        if self.failures:
            self.reply(
                (
                    "recovered",
                    f"the tracking store answers again after {self.failures} failed "
                    "attempts; the kept metrics were sent",
                )
            )
        self.failures = 0

    def gave_up(self) -> bool:
        """Closing, still failing, and out of time: the rest goes to the replay file."""
        return (
            self.closing_since is not None
            and self.failures > 0
            and self.clock() - self.closing_since >= self.settings.close_timeout_s
        )

    def done(self) -> bool:
        return (
            self.closing_since is not None
            and not self.pending
            and (self.acked_seq >= self.received_seq)
        )


def write_replay_file(settings: SenderSettings, points: list[Point]) -> str:
    """The unsent points as JSON lines beside the outputs, for ``trainlab sync``."""
    return str(write_points(settings.replay_path, settings.uri, settings.run_id, points))


def serve(
    settings: SenderSettings,
    inbox: Connection,
    outbox: Connection,
    close_in_child: list[Connection],
    make_store: Callable[[], Store] | None = None,
) -> None:
    """The child's main function: read messages, send, acknowledge, until told to close (or
    the parent is gone). Signals are ignored: the parent decides when the child stops."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    if settings.working_dir:
        os.chdir(settings.working_dir)
    # What the child was started with (all of MLflow and SQLAlchemy, imported by the fork
    # server or the training process) is out of the garbage collector's reach: collections
    # triggered by the points would otherwise traverse it (a full one: ~0.3 s of CPU, which
    # a final flush waited for).
    gc.freeze()
    for connection in close_in_child:  # the parent's ends: EOF must mean the parent is gone
        connection.close()
    messages: queue.Queue[tuple[Any, ...] | None] = queue.Queue()

    def read() -> None:
        while True:
            try:
                messages.put(inbox.recv())
            except (EOFError, OSError):
                messages.put(None)
                return

    threading.Thread(target=read, name="trainlab-sender-inbox", daemon=True).start()
    if settings.warm_up:
        with contextlib.suppress(Exception):  # only a head start: the drawing says what fails
            named_function(settings.warm_up)()

    def reply(message: tuple[Any, ...]) -> None:
        with contextlib.suppress(BrokenPipeError, OSError):  # the parent is gone: go on
            outbox.send(message)

    sender = Sender(
        settings, reply, make_store or (lambda: MlflowStore(settings.uri, settings.run_id))
    )
    parent_gone = False
    try:
        while not sender.done() and not sender.gave_up():
            try:
                message = messages.get(timeout=sender.wait_time())
            except queue.Empty:
                message = ()
            if message is None:  # EOF: the parent died without saying close
                parent_gone = True
                sender.take(("close", sender.received_seq))
            elif message:
                sender.take(message)
            sender.step()
    except BaseException as error:  # report, then save what is left
        reply(("error", f"the metric sender stopped: {type(error).__name__}: {error}"))
    finally:
        if sender.renders:  # drawn even when the store is away: the files are kept for sync
            sender.render_all()
        if sender.pending:
            path = write_replay_file(settings, sender.pending)
            reply(("unsent", path, len(sender.pending)))
        if not parent_gone:
            reply(("exit", sender.acked_seq, time.process_time()))
