"""SIGINT and SIGTERM become a :class:`TrainingInterrupted` raised in the training thread, so
the run can checkpoint and be marked KILLED; a second SIGINT aborts at once."""

from __future__ import annotations

import os
import signal
import sys
import threading
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


@contextmanager
def stop_on_signals() -> Iterator[None]:
    """Within the block, SIGINT/SIGTERM raise :class:`TrainingInterrupted` (main thread only)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    received: list[int] = []

    def handler(signum: int, frame: FrameType | None) -> None:
        if received and signum == signal.SIGINT:
            sys.stderr.write("\nSecond interrupt: aborting now without cleanup.\n")
            os._exit(130)
        received.append(signum)
        raise TrainingInterrupted(signum)

    previous = {s: signal.signal(s, handler) for s in EXIT_CODES}
    try:
        yield
    finally:
        for signum, old in previous.items():
            signal.signal(signum, old)
