"""The batch-size finder: time the run's real training step at batch sizes in powers of two,
measure the throughput (samples per second) and the peak memory of each, stop at the first
out-of-memory error on a GPU (or past ``batch_size_find.max_memory_mb``), and recommend the
smallest batch size that reaches most of the best throughput.

Why the smallest good one: past the point where the device is busy, a larger batch adds
memory but little speed, and takes fewer optimizer steps per epoch (often a worse model for
the same time unless the learning rate is raised with it).

Peak memory: on CUDA ``torch.cuda.max_memory_allocated`` (tensors only, reset per size); on
the CPU there is no allocator counter in torch, so it is the process's peak resident memory
(Linux ``VmHWM``, reset per size through ``/proc/self/clear_refs``), reported as the growth
over the resident memory before the search began; the C allocator's caching makes it coarse.
Beside it, exact on any device: the bytes of the activations one step saves for backward (the
part of training memory that grows with the batch), counted with autograd's saved-tensor hooks.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

OK, OUT_OF_MEMORY, OVER_LIMIT = "ok", "out of memory", "over max_memory_mb"
STATUS_FILE, CLEAR_REFS = Path("/proc/self/status"), Path("/proc/self/clear_refs")


@dataclass
class Trial:
    """One batch size's figures."""

    batch_size: int
    status: str = OK
    samples_per_second: float = math.nan
    steps_per_second: float = math.nan
    peak_memory_mb: float = math.nan
    activation_mb: float = math.nan  # tensors saved for backward by one step (exact)
    note: str = ""


@dataclass
class SearchResult:
    """Every trial, the recommendation and how the memory was measured."""

    trials: list[Trial]
    recommended: int | None
    reason: str
    memory_kind: str
    device: str
    settings: dict[str, Any] = field(default_factory=dict)

    @property
    def best(self) -> Trial | None:
        done = [t for t in self.trials if t.status == OK]
        return max(done, key=lambda t: t.samples_per_second) if done else None

    def as_dict(self) -> dict[str, Any]:
        return {
            "recommended_batch_size": self.recommended,
            "reason": self.reason,
            "memory": self.memory_kind,
            "device": self.device,
            "settings": self.settings,
            "trials": [t.__dict__ for t in self.trials],
        }


def candidate_sizes(smallest: int, largest: int) -> list[int]:
    """Powers of two from the first one >= ``smallest`` up to ``largest``."""
    size = 1 << max(0, math.ceil(math.log2(max(1, smallest))))
    sizes = []
    while size <= largest:
        sizes.append(size)
        size *= 2
    return sizes


class MemoryMeter:
    """The peak memory of the block between :meth:`reset` and :meth:`peak_mb`."""

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.start_mb = _resident_mb()
        self.resettable = device.type == "cuda" or _can_reset_rss()

    @property
    def kind(self) -> str:
        if self.device.type == "cuda":
            return "CUDA max_memory_allocated (tensors), reset per batch size"
        if self.resettable:
            return (
                "CPU: peak resident memory of the process (Linux VmHWM, reset per batch size), "
                "growth over its start"
            )
        return "CPU: peak resident memory of the process so far (ru_maxrss), growth over its start"

    def reset(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats(self.device)
        elif self.resettable:
            CLEAR_REFS.write_text("5")  # resets VmHWM to the current resident size

    def peak_mb(self) -> float:
        if self.device.type == "cuda":
            return torch.cuda.max_memory_allocated(self.device) / 2**20
        return max(0.0, _peak_resident_mb() - self.start_mb)


def _status_kb(field_name: str) -> float | None:
    try:
        for line in STATUS_FILE.read_text().splitlines():
            if line.startswith(field_name + ":"):
                return float(line.split()[1])
    except OSError:
        return None
    return None


def _can_reset_rss() -> bool:
    try:
        CLEAR_REFS.write_text("5")
    except OSError:
        return False
    return _status_kb("VmHWM") is not None


def _resident_mb() -> float:
    kb = _status_kb("VmRSS")
    if kb is not None:
        return kb / 1024
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _peak_resident_mb() -> float:
    kb = _status_kb("VmHWM")
    if kb is not None:
        return kb / 1024
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def is_out_of_memory(error: BaseException) -> bool:
    """A device allocation failure (CUDA, or MPS's RuntimeError)."""
    if isinstance(error, torch.cuda.OutOfMemoryError):
        return True
    return isinstance(error, RuntimeError) and "out of memory" in str(error).lower()


def saved_activation_mb(
    parts: Any, controls: Any, batch: tuple[torch.Tensor, torch.Tensor]
) -> float:
    """MB of the tensors one training step saves for backward, parameters excluded (a tensor
    saved by two operations, a ReLU output and the next layer's input, counted once)."""
    from trainlab.tools.probe import training_step

    parameters = {p.data_ptr() for p in parts.model.parameters()}
    saved: dict[tuple[int, int], int] = {}

    def pack(tensor: torch.Tensor) -> torch.Tensor:
        if tensor.data_ptr() not in parameters:
            saved[(tensor.data_ptr(), tensor.numel())] = tensor.numel() * tensor.element_size()
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
        training_step(parts, controls, *batch)
    return sum(saved.values()) / 2**20


def time_batch_size(
    parts: Any,
    controls: Any,
    batch_size: int,
    steps: int,
    warmup: int,
    meter: MemoryMeter,
    repeats: int = 1,
) -> Trial:
    """Train ``warmup`` then ``repeats`` timed blocks of ``steps`` steps at ``batch_size``
    (model and optimizer restored afterwards); the fastest block counts. Each block ends
    with one host sync, so queued device work is counted."""
    from trainlab.data.batcher import InMemoryBatcher
    from trainlab.tools.probe import endless_batches, restored, training_step

    source = parts.batcher
    batcher = InMemoryBatcher(
        source.features, source.targets, batch_size=batch_size, shuffle=True, seed=source.seed
    )
    batches = endless_batches(batcher)
    trial = Trial(batch_size)
    with restored(parts):
        meter.reset()
        trial.activation_mb = saved_activation_mb(parts, controls, next(batches))
        for _ in range(warmup):
            training_step(parts, controls, *next(batches))
        seconds = math.inf
        for _ in range(repeats):
            loss = None
            _synchronize(meter.device)
            started = time.perf_counter()
            for _ in range(steps):
                loss = training_step(parts, controls, *next(batches))
            if loss is not None:
                float(loss)  # waits for the device
            _synchronize(meter.device)
            seconds = min(seconds, max(time.perf_counter() - started, 1e-9))
        trial.peak_memory_mb = meter.peak_mb()
    rows = len(source.targets)
    samples = min(batch_size, rows) * steps
    trial.steps_per_second = steps / seconds
    trial.samples_per_second = samples / seconds
    if batch_size >= rows:
        trial.note = f"one batch holds all {rows} training rows"
    return trial


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def search(parts: Any, controls: Any, device: torch.device, settings: Any) -> SearchResult:
    """Every batch size from ``min_batch_size`` up (to ``max_batch_size``, or the training
    rows), stopping at an out-of-memory error or past ``max_memory_mb``."""
    rows = len(parts.batcher.targets)
    largest = int(settings.max_batch_size) if settings.max_batch_size is not None else rows
    sizes = candidate_sizes(
        int(settings.min_batch_size), max(1, min(largest, 2 ** math.ceil(math.log2(rows))))
    )
    meter = MemoryMeter(device)
    trials: list[Trial] = []
    limit = settings.max_memory_mb
    for size in sizes:
        try:
            trial = time_batch_size(
                parts,
                controls,
                size,
                int(settings.steps),
                int(settings.warmup_steps),
                meter,
                repeats=int(settings.repeats),
            )
        except Exception as error:
            if not is_out_of_memory(error):
                raise
            if device.type == "cuda":
                torch.cuda.empty_cache()
            trials.append(Trial(size, OUT_OF_MEMORY, note=str(error).splitlines()[0][:120]))
            break
        if limit is not None and trial.peak_memory_mb > float(limit):
            trial.status = OVER_LIMIT
            trial.note = (
                f"peak {trial.peak_memory_mb:.0f} MB > "
                f"batch_size_find.max_memory_mb={float(limit):g}"
            )
            trials.append(trial)
            break
        trials.append(trial)
    recommended, reason = recommend(trials, float(settings.throughput_fraction))
    return SearchResult(
        trials,
        recommended,
        reason,
        meter.kind,
        str(device),
        {k: settings[k] for k in settings} if hasattr(settings, "keys") else {},
    )


def recommend(trials: list[Trial], fraction: float) -> tuple[int | None, str]:
    """The smallest batch size whose throughput is at least ``fraction`` of the best."""
    done = [t for t in trials if t.status == OK and math.isfinite(t.samples_per_second)]
    if not done:
        return None, "no batch size could be timed"
    best = max(done, key=lambda t: t.samples_per_second)
    pick = min(
        (t for t in done if t.samples_per_second >= fraction * best.samples_per_second),
        key=lambda t: t.batch_size,
    )
    if pick is best:
        reason = (
            f"{pick.batch_size} is the fastest ({pick.samples_per_second:,.0f} samples/s); "
            f"no smaller size comes within {100 * fraction:.0f}% of it"
        )
    else:
        reason = (
            f"{pick.batch_size} reaches "
            f"{100 * pick.samples_per_second / best.samples_per_second:.0f}% "
            f"of the best throughput ({best.batch_size}: {best.samples_per_second:,.0f} samples/s) "
            f"with {_memory_ratio(pick, best)} and {best.batch_size // pick.batch_size}x the "
            "optimizer steps per epoch; larger batches add little speed"
        )
    stopped = [t for t in trials if t.status != OK]
    if stopped:
        reason += f"; {stopped[0].batch_size} did not fit ({stopped[0].status})"
    return pick.batch_size, reason


def _memory_ratio(pick: Trial, best: Trial) -> str:
    if best.peak_memory_mb > 0 and math.isfinite(pick.peak_memory_mb):
        return f"{pick.peak_memory_mb:.0f} MB of memory instead of {best.peak_memory_mb:.0f} MB"
    return "less memory"


def table_rows(result: SearchResult) -> list[list[str]]:
    """The table's cells: batch size, steps/s, samples/s, share of the best, peak memory,
    activation memory, note."""
    best = result.best
    rows = []
    for trial in result.trials:
        share = (
            f"{100 * trial.samples_per_second / best.samples_per_second:.0f}%"
            if best is not None and trial.status == OK
            else "-"
        )
        marks = []
        if trial.batch_size == result.recommended:
            marks.append("recommended")
        if best is not None and trial is best:
            marks.append("fastest")
        if trial.status != OK:
            marks.append(trial.status)
        if trial.note:
            marks.append(trial.note)
        rows.append(
            [
                str(trial.batch_size),
                _number(trial.steps_per_second),
                _number(trial.samples_per_second),
                share,
                _number(trial.peak_memory_mb, "{:,.1f}"),
                _number(trial.activation_mb, "{:,.2f}"),
                "; ".join(marks),
            ]
        )
    return rows


HEADERS = [
    "batch size",
    "steps/s",
    "samples/s",
    "of best",
    "peak memory MB",
    "activations MB",
    "note",
]


def _number(value: float, pattern: str = "{:,.0f}") -> str:
    return pattern.format(value) if math.isfinite(value) else "-"
