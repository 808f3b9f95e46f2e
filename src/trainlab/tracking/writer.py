"""A background thread that sends queued metrics to the store with ``log_batch``.

The training thread only appends to a queue; SQL or HTTP round-trips happen here, so the hot
loop never waits for the store. ``flush`` blocks until everything queued so far is sent.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable
from typing import Any

log = logging.getLogger(__name__)

MAX_METRICS_PER_BATCH = 1000  # MLflow's log_batch limit


class MetricWriter:
    """Sends ``(name, value, step)`` points with ``send(points)`` from a daemon thread."""

    def __init__(self, send: Callable[[list[tuple[str, float, int]]], Any]) -> None:
        self._send = send
        self._queue: queue.Queue[list[tuple[str, float, int]] | None] = queue.Queue()
        self._errors: list[BaseException] = []
        # Batches put and batches done, so flush() waits for what was queued before it was
        # called, never for points the training thread adds meanwhile.
        self._put_count = 0
        self._done_count = 0
        self._done = threading.Condition()
        self._thread = threading.Thread(target=self._work, name="trainlab-metrics", daemon=True)
        self._thread.start()

    def put(self, points: list[tuple[str, float, int]]) -> None:
        if points:
            with self._done:
                self._put_count += 1
            self._queue.put(points)

    def flush(self) -> None:
        """Wait until every point queued so far has been sent (or failed)."""
        with self._done:
            target = self._put_count
            self._done.wait_for(lambda: self._done_count >= target)

    def _mark_done(self, batches: int) -> None:
        with self._done:
            self._done_count += batches
            self._done.notify_all()

    def close(self) -> list[BaseException]:
        """Send what is left, stop the thread, and return the errors seen."""
        self._queue.put(None)
        self._thread.join()
        return self._errors

    def _work(self) -> None:
        while True:
            points = self._queue.get()
            try:
                if points is None:
                    return
                batches = 1
                pending = list(points)
                # Coalesce whatever else is waiting into as few requests as possible.
                while len(pending) < MAX_METRICS_PER_BATCH:
                    try:
                        more = self._queue.get_nowait()
                    except queue.Empty:
                        break
                    if more is None:
                        self._queue.put(None)  # handled after this batch
                        self._queue.task_done()
                        break
                    pending.extend(more)
                    batches += 1
                    self._queue.task_done()
                for start in range(0, len(pending), MAX_METRICS_PER_BATCH):
                    self._send(pending[start : start + MAX_METRICS_PER_BATCH])
            except Exception as error:  # keep training; report at close
                log.warning("could not send metrics to the tracking store: %s", error)
                self._errors.append(error)
            finally:
                if points is not None:
                    self._mark_done(batches)
                self._queue.task_done()
