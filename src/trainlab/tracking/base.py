"""The tracking interface: log metrics, params, artifacts, close. The loop sees only this,
so it never imports MLflow and a test or tool can run it with :class:`NullTracker`."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol


class Tracker(Protocol):
    """Where a run's numbers and files go."""

    run_id: str

    def log_params(self, params: dict[str, Any]) -> None: ...

    def log_metrics(self, metrics: list[tuple[str, float, int]]) -> None:
        """Queue ``(name, value, step)`` points; sent in the background, never blocking."""

    def log_text(self, text: str, artifact_file: str) -> None: ...

    def set_tags(self, tags: dict[str, str]) -> None: ...

    def log_artifact(self, path: Path, artifact_path: str | None = None) -> None: ...

    def log_rendered(self, function: str, data: Any, artifact_path: str) -> None:
        """Files written by ``function(data, folder)`` ("module:function", plain ``data``),
        logged under ``artifact_path``; drawn wherever the tracker finds cheapest."""

    def checkpoint_dir(self) -> Path:
        """A local folder for checkpoints; uploaded by :meth:`close` if it is not the store."""

    def flush(self) -> None:
        """Block until every metric queued so far has been sent."""

    def request_flush(self) -> Callable[[], None]:
        """Start sending every metric queued so far; returns the wait for it to be sent."""

    def close(self, status: str, error: str | None = None) -> None:
        """Flush everything and end the run as FINISHED, FAILED or KILLED."""


class NullTracker:
    """Records nothing (for tools that train without a run, and for tests of the loop)."""

    run_id = "none"

    def __init__(self, directory: Path | None = None, keep_metrics: bool = True) -> None:
        self.metrics: list[tuple[str, float, int]] = []  # what was logged (tests read it)
        self._directory = directory
        self._keep_metrics = keep_metrics  # False: drop them (a long run's other ranks)

    def log_params(self, params: dict[str, Any]) -> None:
        pass

    def log_metrics(self, metrics: list[tuple[str, float, int]]) -> None:
        if self._keep_metrics:
            self.metrics.extend(metrics)

    def log_text(self, text: str, artifact_file: str) -> None:
        pass

    def set_tags(self, tags: dict[str, str]) -> None:
        pass

    def log_artifact(self, path: Path, artifact_path: str | None = None) -> None:
        pass

    def log_rendered(self, function: str, data: Any, artifact_path: str) -> None:
        pass

    def checkpoint_dir(self) -> Path:
        if self._directory is None:
            import tempfile

            self._directory = Path(tempfile.mkdtemp(prefix="trainlab-checkpoints-"))
        return self._directory

    def flush(self) -> None:
        pass

    def request_flush(self) -> Callable[[], None]:
        return _nothing_to_wait_for

    def close(self, status: str, error: str | None = None) -> None:
        pass


def _nothing_to_wait_for() -> None:
    pass
