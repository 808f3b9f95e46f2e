"""Checkpoints: plain dicts of tensors and Python values, written atomically.

Plain values only (no OmegaConf objects), so ``torch.load(weights_only=True)`` loads them.
A write goes to a temporary file in the same folder, is fsync'ed, then renamed over the old
file, so a crash mid-write never leaves a truncated checkpoint behind.
"""

from __future__ import annotations

import os
import queue
import random
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

FORMAT_VERSION = 1


def capture_rng_state() -> dict[str, Any]:
    """Every RNG the run uses (Python, NumPy, torch CPU and CUDA) as plain values."""
    numpy_state = np.random.get_state(legacy=False)
    assert isinstance(numpy_state, dict)
    state: dict[str, Any] = {
        "python": random.getstate(),
        "numpy": {
            "bit_generator": numpy_state["bit_generator"],
            "key": torch.from_numpy(numpy_state["state"]["key"].astype(np.int64)),
            "pos": int(numpy_state["state"]["pos"]),
            "has_gauss": int(numpy_state["has_gauss"]),
            "cached_gaussian": float(numpy_state["gauss"]),
        },
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng_state(state: dict[str, Any]) -> None:
    """Put back what :func:`capture_rng_state` took."""
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    numpy_state = state["numpy"]
    np.random.set_state(
        {
            "bit_generator": numpy_state["bit_generator"],
            "state": {
                "key": numpy_state["key"].numpy().astype(np.uint32),
                "pos": numpy_state["pos"],
            },
            "has_gauss": numpy_state["has_gauss"],
            "gauss": numpy_state["cached_gaussian"],
        }
    )
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_checkpoint(
    state: dict[str, Any], path: Path, before_publish: Callable[[], None] | None = None
) -> None:
    """Write ``state`` to ``path`` atomically (temp file, fsync, rename, fsync the folder).
    ``before_publish`` runs between the fsync and the rename: what must be done before the
    checkpoint exists under its name (the recorded history up to its step)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(handle, "wb") as file:
            torch.save({"format_version": FORMAT_VERSION, **state}, file)
            file.flush()
            os.fsync(file.fileno())
        if before_publish is not None:
            before_publish()
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    directory = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)


def load_checkpoint(path: Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Read a checkpoint with ``weights_only=True`` (no arbitrary code runs)."""
    state = torch.load(path, map_location=map_location, weights_only=True)
    if not isinstance(state, dict) or "model" not in state:
        raise ValueError(f"{path} is not a trainlab checkpoint")
    return state


class CheckpointFolder:
    """``step-<N>.pt`` files (the newest ``keep_last`` kept), ``last.pt`` (the newest, a hard
    link, so no second write) and ``best.pt``."""

    def __init__(self, folder: Path, keep_last: int = 2) -> None:
        self.folder = folder
        self.keep_last = keep_last

    @property
    def last(self) -> Path:
        return self.folder / "last.pt"

    @property
    def best(self) -> Path:
        return self.folder / "best.pt"

    def step_files(self) -> list[Path]:
        """Step checkpoints, newest first."""
        return sorted(self.folder.glob("step-*.pt"), reverse=True)

    def save(
        self,
        state: dict[str, Any],
        best: bool = False,
        before_publish: Callable[[], None] | None = None,
    ) -> None:
        """Write the step file, point ``last.pt`` at it, copy to ``best.pt`` if asked, prune
        (``before_publish``: as :func:`save_checkpoint`'s)."""
        step_file = self.folder / f"step-{int(state['step']):09d}.pt"
        save_checkpoint(state, step_file, before_publish)
        _replace_with_link(step_file, self.last)
        if best:
            _replace_with_link(step_file, self.best)
        for old in self.step_files()[self.keep_last :]:
            old.unlink(missing_ok=True)

    def newest_good(self, map_location: str | torch.device = "cpu") -> tuple[Path, dict[str, Any]]:
        """The newest checkpoint that loads: ``last.pt``, else the step files newest first.
        Raises ``FileNotFoundError`` naming every file tried and why it failed."""
        tried: list[str] = []
        candidates = [self.last, *self.step_files()]
        for path in dict.fromkeys(candidates):
            if not path.exists():
                continue
            try:
                return path, load_checkpoint(path, map_location)
            except Exception as error:  # truncated, corrupt or foreign: try an older one
                tried.append(f"{path.name}: {type(error).__name__}: {error}")
        detail = "; ".join(tried) if tried else "no checkpoint files"
        raise FileNotFoundError(f"no loadable checkpoint in {self.folder} ({detail})")


def _replace_with_link(source: Path, target: Path) -> None:
    """Make ``target`` the same file as ``source`` atomically (hard link, else a copy)."""
    temporary = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    temporary.unlink(missing_ok=True)
    try:
        os.link(source, temporary)
    except OSError:
        import shutil

        shutil.copyfile(source, temporary)
    os.replace(temporary, target)


# Checkpoint entries made fresh for each checkpoint (the RNG states, the counters), or never
# changed after the run starts (the config): shared with the snapshot instead of copied again
# (the Python RNG state alone is a tuple of 625 ints).
FRESH_ENTRIES = frozenset({"progress", "config", "best", "data_position", "run_id", "rng"})


def snapshot(state: Any, shared: frozenset[str] = frozenset()) -> Any:
    """A copy of ``state`` that later training steps cannot change: tensors cloned,
    containers rebuilt, immutable leaves shared, and the top-level entries named in
    ``shared`` passed on as they are. Several times cheaper than ``deepcopy`` (no memo, no
    per-object dispatch), which matters at one checkpoint per epoch."""
    if shared and isinstance(state, dict):
        return {key: value if key in shared else snapshot(value) for key, value in state.items()}
    if isinstance(state, torch.Tensor):
        return state.detach().clone()
    if isinstance(state, dict):
        return {key: snapshot(value) for key, value in state.items()}
    if isinstance(state, list):
        return [snapshot(value) for value in state]
    if isinstance(state, tuple):
        return tuple(snapshot(value) for value in state)
    return state  # int, float, str, bool, None: immutable


class BackgroundCheckpointWriter:
    """Writes checkpoints from a thread so the loop does not wait for pickling and fsync.

    ``submit`` takes a snapshot (tensors cloned) at once, so training can go on changing the
    weights, and queues ``write(snapshot)``; ``close`` waits until everything queued is on
    disk and re-raises the first error.
    """

    def __init__(self) -> None:
        self._queue: queue.Queue[tuple[dict[str, Any], Callable[[dict[str, Any]], None]] | None]
        self._queue = queue.Queue()
        self._error: BaseException | None = None
        self._closed = False
        self._thread = threading.Thread(target=self._work, name="trainlab-checkpoints", daemon=True)
        self._thread.start()

    @staticmethod
    def snapshot(state: dict[str, Any]) -> dict[str, Any]:
        """The copy :meth:`submit` takes, for a caller that keeps a state for later."""
        copied: dict[str, Any] = snapshot(state, FRESH_ENTRIES)
        return copied

    def submit(self, state: dict[str, Any], write: Callable[[dict[str, Any]], None]) -> None:
        if self._error is not None:
            raise self._error
        if self._closed:  # no thread any more (a last checkpoint on interrupt): write here
            write(state)
            return
        self._queue.put((snapshot(state, FRESH_ENTRIES), write))

    def wait(self) -> None:
        """Block until every queued checkpoint is written."""
        if not self._closed:
            self._queue.join()
        if self._error is not None:
            raise self._error

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._queue.put(None)
            self._thread.join()
        if self._error is not None:
            raise self._error

    def _work(self) -> None:
        while True:
            item = self._queue.get()
            try:
                if item is None:
                    return
                state, write = item
                write(state)
            except BaseException as error:  # surfaced in the training thread
                self._error = self._error or error
            finally:
                self._queue.task_done()
