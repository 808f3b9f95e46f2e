"""SIGINT and SIGTERM stop training at the next step boundary, so the run can write a
consistent checkpoint and be marked KILLED; a second SIGINT aborts at once.

The handler only records the signal; the loop checks the flag once per step (a Python
attribute read, no device sync) and raises :class:`TrainingInterrupted` there, never in the
middle of an optimizer update.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType

EXIT_CODES = {signal.SIGINT: 130, signal.SIGTERM: 143}


class TrainingInterrupted(BaseException):
    """The run was asked to stop by a signal. A BaseException, so ``except Exception`` in
    library code does not swallow it."""

    def __init__(self, signum: int) -> None:
        self.signum = signum
        self.exit_code = EXIT_CODES.get(signal.Signals(signum), 128 + signum)
        super().__init__(f"interrupted by {signal.Signals(signum).name}")


class StopFlag:
    """Set by the signal handler, read by the loop at step boundaries."""

    def __init__(self) -> None:
        self.signum: int | None = None

    def raise_if_set(self) -> None:
        if self.signum is not None:
            raise TrainingInterrupted(self.signum)


STOP = StopFlag()


@contextmanager
def stop_on_signals(repeat_grace_s: float = 0.0) -> Iterator[StopFlag]:
    """Within the block, SIGINT/SIGTERM set :data:`STOP` (main thread only).

    A second SIGINT within ``repeat_grace_s`` of the first counts as the same one: under
    torchrun a Ctrl-C reaches every worker twice, from the terminal and forwarded by
    torchrun, and should still stop cleanly."""
    STOP.signum = None
    if threading.current_thread() is not threading.main_thread():
        yield STOP
        return
    first_at = [0.0]

    def handler(signum: int, frame: FrameType | None) -> None:
        if STOP.signum is not None and signum == signal.SIGINT:
            if time.monotonic() - first_at[0] < repeat_grace_s:
                return
            sys.stderr.write("\nSecond interrupt: aborting now without cleanup.\n")
            os._exit(130)
        first_at[0] = time.monotonic()
        STOP.signum = signum
        sys.stderr.write(
            f"\n{signal.Signals(signum).name}: stopping after this step "
            "(checkpoint, run marked KILLED); Ctrl-C again to abort at once.\n"
        )

    from trainlab.sweeps.cluster import REQUEUE_HANDLER, preemption_signal

    preempt = preemption_signal()

    def on_preemption(signum: int, frame: FrameType | None) -> None:
        STOP.signum = signum
        sys.stderr.write(
            f"\n{signal.Signals(signum).name}: preempted; stopping after this step "
            "(checkpoint, run marked KILLED), then requeued to resume the same run.\n"
        )

    previous = {s: signal.signal(s, handler) for s in EXIT_CODES}
    if preempt is not None:  # a submitit job: checkpoint first, then let submitit requeue
        REQUEUE_HANDLER.append(signal.signal(preempt, on_preemption))
    pending = None
    try:
        yield STOP
        pending = STOP.signum  # arrived after the last step: nothing in the block acted on it
    finally:
        for signum, old in previous.items():
            signal.signal(signum, old)
        if preempt is not None:
            signal.signal(preempt, REQUEUE_HANDLER.pop())  # type: ignore[arg-type]
        STOP.signum = None
    if pending is not None and pending != preempt:
        # The run ended well, but the process was asked to stop: a sweep must not start its
        # next job. (A preemption after the last step has nothing left to save.)
        raise TrainingInterrupted(pending)
