"""Where does trainlab's per-run overhead (``benchmarks/overhead.py``) come from?

Three views of the same workload (digits, MLP, batch 64, Adam, CPU, full MLflow tracking):

1. ``accounting``  one real tracked run with timers wrapped around the loop's parts (main
   thread) and around the background threads' work (thread CPU time), per step / per epoch.
2. ``ablation``    the real tracked run with ONE source of overhead removed at a time (by
   patching from here; nothing under ``src/`` is edited). Every variant run sits between two
   baseline runs, and its saving is measured against their mean, so the machine's slow drift
   cancels out. Reported in ms per epoch and as a share of the baseline's time.
3. ``micro``       isolated timings of single operations (median of many calls), with A/B
   pairs interleaved call by call.

    .venv/bin/python benchmarks/overhead_breakdown.py                  # all three, 1 thread
    .venv/bin/python benchmarks/overhead_breakdown.py --threads 2 --only ablation

Run from the repository root. Prints figures; never asserts on time.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import io
import multiprocessing
import os
import shutil
import statistics
import sys
import tempfile
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

# The sibling benchmark: importable because a script's own folder is first on sys.path.
from overhead import (
    RunResult,
    hand_loop,
    overrides,
    quiet_mlflow,
    trainlab_loop,
    workload_of,
)
from trainlab.config.compose import compose_config
from trainlab.tracking.mlflow_tracker import MlflowTracker
from trainlab.train import checkpoint as checkpoint_module
from trainlab.train import loop as loop_module
from trainlab.train import recipe as recipe_module
from trainlab.train.loop import TrainingParts
from trainlab.train.recipe import JobContext, TrainingRecipe
from trainlab.train.step_metrics import StepMetrics

Points = list[tuple[str, float, int]]
ZERO = torch.zeros(())
NESTED = "  ~ "  # rows contained in other rows
Prepare = Callable[[TrainingRecipe, MlflowTracker], None]


# ---------------------------------------------------------------------------- instrumentation


class Timings:
    """Wall and thread-CPU seconds per label, summed over calls (any thread)."""

    def __init__(self) -> None:
        self.wall: defaultdict[str, float] = defaultdict(float)
        self.cpu: defaultdict[str, float] = defaultdict(float)
        self.calls: defaultdict[str, int] = defaultdict(int)
        self.lock = threading.Lock()

    def add(self, label: str, wall: float, cpu: float) -> None:
        with self.lock:
            self.wall[label] += wall
            self.cpu[label] += cpu
            self.calls[label] += 1

    def clear(self) -> None:
        self.wall.clear()
        self.cpu.clear()
        self.calls.clear()

    def wrap(self, label: str, function: Callable[..., Any]) -> Any:
        """``function`` timed under ``label`` (wall time, and the calling thread's CPU time)."""

        def timed(*args: Any, **kwargs: Any) -> Any:
            wall, cpu = time.perf_counter(), time.thread_time()
            try:
                return function(*args, **kwargs)
            finally:
                self.add(label, time.perf_counter() - wall, time.thread_time() - cpu)

        return timed


@contextlib.contextmanager
def patched(target: Any, name: str, value: Any) -> Iterator[None]:
    """``target.name = value`` for the duration of the block."""
    original = getattr(target, name)
    setattr(target, name, value)
    try:
        yield
    finally:
        setattr(target, name, original)


class MemoryWriter:
    """Stands in for the tracker's MetricWriter: keeps the points, sends nothing."""

    def __init__(self) -> None:
        self.points: Points = []

    def put(self, points: Points) -> None:
        self.points.extend(points)

    def flush(self) -> None:
        pass

    def close(self) -> list[BaseException]:
        return []


class SynchronousWriter(MemoryWriter):
    """Sends each batch at once, on the training thread (no background thread)."""

    def __init__(self, send: Callable[[Points], Any]) -> None:
        super().__init__()
        self.send = send

    def put(self, points: Points) -> None:
        if points:
            self.send(points)


def replace_writer(tracker: MlflowTracker, writer: MemoryWriter) -> None:
    tracker._writer.close()  # stop the real writer's thread (it has sent nothing yet)
    tracker._writer = writer  # type: ignore[assignment]


def _send_from_child(uri: str, run_id: str, inbox: Any, ready: Any, done: Any) -> None:
    """The child process of :class:`ProcessWriter`: its own MLflow client, its own GIL."""
    from mlflow import MlflowClient
    from mlflow.entities import Metric

    client = MlflowClient(tracking_uri=uri)
    ready.set()
    while (item := inbox.get()) is not None:
        points, timestamp = item
        metrics = [Metric(name, value, timestamp, step) for name, value, step in points]
        client.log_batch(run_id, metrics=metrics, synchronous=True)
    done.set()


CHILDREN: list[Any] = []  # joined at exit, outside the timed region


class ProcessWriter(MemoryWriter):
    """A proposed fix: the store's SQL runs in a child process, so it never holds the
    training process's GIL. ``put`` only pickles the points into a pipe; ``close`` waits
    until the child has sent everything (not for the child's interpreter to exit)."""

    def __init__(self, uri: str, run_id: str) -> None:
        super().__init__()
        context = multiprocessing.get_context("spawn")
        self.inbox = context.Queue()
        ready, self.done = context.Event(), context.Event()
        self.process = context.Process(
            target=_send_from_child, args=(uri, run_id, self.inbox, ready, self.done), daemon=True
        )
        self.process.start()
        CHILDREN.append(self.process)
        ready.wait()  # the child's start-up (imports) is not part of the timed run

    def put(self, points: Points) -> None:
        if points:
            self.inbox.put((points, int(time.time() * 1000)))

    def close(self) -> list[BaseException]:
        self.inbox.put(None)
        self.done.wait()
        return []


def clone_snapshot(state: Any, memo: Any = None) -> Any:
    """A proposed fix for the checkpoint snapshot (``copy.deepcopy`` of the whole state):
    ``clone()`` the model and optimizer tensors, share everything else (RNG state and config
    are built fresh by ``checkpoint_state`` and never mutated)."""
    if not isinstance(state, dict) or "model" not in state:
        return copy.deepcopy(state, memo)
    snapshot = dict(state)
    snapshot["model"] = {k: v.clone() for k, v in state["model"].items()}
    snapshot["optimizer"] = clone_optimizer_state(state["optimizer"])
    return snapshot


def rank_auroc(probabilities: torch.Tensor, labels: torch.Tensor, classes: int) -> torch.Tensor:
    """Macro one-vs-rest AUROC from ranks (Mann-Whitney U), one argsort for all classes.
    Equals torchmetrics' exact value when no two probabilities of a class tie."""
    count = probabilities.shape[0]
    ranks = torch.empty_like(probabilities)
    positions = torch.arange(1, count + 1, dtype=probabilities.dtype)
    ranks.scatter_(0, probabilities.argsort(0), positions.unsqueeze(1).expand(-1, classes))
    positive = F.one_hot(labels, classes).to(probabilities.dtype)
    positives = positive.sum(0)
    u = (ranks * positive).sum(0) - positives * (positives + 1) / 2
    return (u / (positives * (count - positives))).mean()


def fast_compute_metrics(
    outputs: torch.Tensor, targets: torch.Tensor, task: str, num_classes: int
) -> dict[str, torch.Tensor]:
    """A proposed fix for ``compute_metrics`` (multiclass only): torchmetrics for accuracy and
    F1 without argument validation, the rank formula for AUROC."""
    from torchmetrics.functional import classification

    probabilities = outputs.softmax(-1)
    return {
        "val/acc": classification.multiclass_accuracy(
            probabilities, targets, num_classes, average="micro", validate_args=False
        ),
        "val/f1": classification.multiclass_f1_score(
            probabilities, targets, num_classes, average="macro", validate_args=False
        ),
        "val/auroc": rank_auroc(probabilities, targets, num_classes),
    }


@torch.no_grad()
def plain_evaluate(parts: TrainingParts, batch_size: int) -> dict[str, float]:
    """What the hand loop's validation computes: loss and accuracy, no torchmetrics."""
    parts.model.eval()
    outputs = parts.model(parts.val_features)
    loss = parts.loss(outputs, parts.val_targets)
    accuracy = (outputs.argmax(1) == parts.val_labels).float().mean()
    loss_value, accuracy_value = torch.stack([loss, accuracy]).tolist()
    return {"val/loss": loss_value, "val/acc": accuracy_value}


def grad_norm_patch() -> tuple[Any, str, Any] | None:
    """Replaces the loop's per-step gradient measurement with a constant (what it costs):
    ``global_grad_norm`` in older src, ``measure_and_clip`` since the clipping options."""
    if hasattr(loop_module, "global_grad_norm"):

        def no_grad_norm(parameters: list[torch.nn.Parameter]) -> torch.Tensor:
            return ZERO

        return (loop_module, "global_grad_norm", no_grad_norm)
    if hasattr(loop_module, "measure_and_clip"):
        from trainlab.train.gradients import GradientMeasure

        measure = GradientMeasure(ZERO, ZERO.reshape(1), None)

        def no_measure(grads: list[torch.Tensor], *args: Any, **kwargs: Any) -> Any:
            return measure

        return (loop_module, "measure_and_clip", no_measure)
    return None


def gradient_monitor_class() -> Any:
    try:
        from trainlab.train.gradient_monitor import GradientMonitor
    except ImportError:
        return None
    return GradientMonitor


def grad_norm_function() -> tuple[str, Callable[[list[torch.nn.Parameter]], Any]]:
    """The loop's gradient measurement as ``f(parameters)``, whichever src has."""
    if hasattr(loop_module, "global_grad_norm"):
        return "global_grad_norm()", loop_module.global_grad_norm
    from trainlab.train.gradients import measure_and_clip

    def measure(parameters: list[torch.nn.Parameter]) -> Any:
        return measure_and_clip([p.grad for p in parameters if p.grad is not None]).total_norm

    return "measure_and_clip() (grad norms)", measure


def single_group_adam(cfg: Any, model: torch.nn.Module) -> torch.optim.Optimizer:
    """What a hand-written loop builds: one parameter group (trainlab makes two)."""
    return torch.optim.Adam(
        model.parameters(), lr=cfg.lr, betas=tuple(cfg.betas), eps=cfg.eps, amsgrad=cfg.amsgrad
    )


def no_fsync(fd: int) -> None:
    pass


# ------------------------------------------------------------------------------- environment


@dataclass
class Bench:
    args: argparse.Namespace
    uri: str

    def cfg(self, epochs: int, *extra: str) -> Any:
        return compose_config([*overrides(self.args, epochs, self.uri), *extra])

    def run(self, epochs: int, *extra: str, prepare: Prepare | None = None) -> RunResult:
        return trainlab_loop(self.cfg(epochs, *extra), None, prepare)


# -------------------------------------------------------------------------------- accounting


def accounting(bench: Bench) -> None:
    """One tracked run with every part of the loop timed in place."""
    epochs = bench.args.epochs
    timings = Timings()
    stack = contextlib.ExitStack()

    def prepare(recipe: TrainingRecipe, tracker: MlflowTracker) -> None:
        writer = tracker._writer
        writer._send = timings.wrap("bg: metric writer log_batch", writer._send)
        parts = recipe.parts
        batcher = parts.batcher
        stack.enter_context(
            patched(batcher, "epoch", timings.wrap("batcher.epoch() (permutation)", batcher.epoch))
        )
        stack.enter_context(
            patched(
                recipe.loss, "module", TimedModule(recipe.loss.module, timings, NESTED + "loss")
            )
        )
        model = parts.model
        forward = timings.wrap(NESTED + "model forward", model.forward)
        stack.enter_context(patched(model, "forward", forward))
        stack.enter_context(
            patched(parts.optimizer, "step", timings.wrap("optimizer.step()", parts.optimizer.step))
        )
        stack.enter_context(
            patched(
                parts.optimizer,
                "zero_grad",
                timings.wrap("optimizer.zero_grad()", parts.optimizer.zero_grad),
            )
        )
        stack.enter_context(
            patched(
                parts.schedule,
                "after_batch",
                timings.wrap("schedule.after_batch()", parts.schedule.after_batch),
            )
        )
        stack.enter_context(
            patched(
                tracker, "log_metrics", timings.wrap("tracker.log_metrics()", tracker.log_metrics)
            )
        )

    with stack:
        for name in ("global_grad_norm", "measure_and_clip"):
            if hasattr(loop_module, name):
                wrapped = timings.wrap(f"{name}()", getattr(loop_module, name))
                stack.enter_context(patched(loop_module, name, wrapped))
        monitor_class = gradient_monitor_class()
        if monitor_class is not None:  # per-layer gradient statistics (src since bae4f09)
            for name in ("start", "before_update", "after_update", "check", "write"):
                if hasattr(monitor_class, name):
                    wrapped = timings.wrap(
                        f"GradientMonitor.{name}()", getattr(monitor_class, name)
                    )
                    stack.enter_context(patched(monitor_class, name, wrapped))
        for name in ("close", "log_artifact"):
            wrapped = timings.wrap(f"tracker.{name}()", getattr(MlflowTracker, name))
            stack.enter_context(patched(MlflowTracker, name, wrapped))
        if hasattr(StepMetrics, "first_nonfinite"):
            wrapped = timings.wrap("StepMetrics.first_nonfinite()", StepMetrics.first_nonfinite)
            stack.enter_context(patched(StepMetrics, "first_nonfinite", wrapped))
        stack.enter_context(
            patched(loop_module, "evaluate", timings.wrap("evaluate()", loop_module.evaluate))
        )
        stack.enter_context(
            patched(StepMetrics, "record", timings.wrap("StepMetrics.record()", StepMetrics.record))
        )
        stack.enter_context(
            patched(StepMetrics, "drain", timings.wrap("StepMetrics.drain()", StepMetrics.drain))
        )
        stack.enter_context(
            patched(
                recipe_module.Listeners,
                "on_epoch_end",
                timings.wrap(
                    "listeners.on_epoch_end() (checkpoint snapshot)",
                    recipe_module.Listeners.on_epoch_end,
                ),
            )
        )
        saver = getattr(checkpoint_module, "save_checkpoint", None)
        if saver is not None:
            stack.enter_context(
                patched(
                    checkpoint_module,
                    "save_checkpoint",
                    timings.wrap("bg: save_checkpoint", saver),
                )
            )
            if hasattr(recipe_module, "save_checkpoint"):  # older src: written in the loop
                wrapped = timings.wrap("save_checkpoint() (in the loop)", saver)
                stack.enter_context(patched(recipe_module, "save_checkpoint", wrapped))
        stack.enter_context(
            patched(
                torch.Tensor, "backward", timings.wrap("loss.backward()", torch.Tensor.backward)
            )
        )
        bench.run(2)  # warm-up with the same wrappers
        timings.clear()
        started_cpu = time.process_time()
        result = bench.run(epochs, prepare=prepare)
        process_cpu = time.process_time() - started_cpu

    steps = result.steps
    print(
        f"\n== accounting: one tracked run, {epochs} epochs, {steps} steps, {result.seconds:.2f} s"
        f" wall ({result.seconds / steps * 1e6:.0f} us/step), process CPU {process_cpu:.2f} s"
    )
    print(
        f"   {'part':<48}{'calls':>6}{'wall us':>9}{'CPU us':>9}{'CPU us':>9}{'CPU ms':>9}"
        f"{'wall':>7}\n   {'':<48}{'':>6}{'/call':>9}{'/call':>9}{'/step':>9}{'/epoch':>9}"
        f"{'% run':>7}"
    )
    for label, wall in sorted(timings.wall.items(), key=lambda item: -item[1]):
        calls, cpu = timings.calls[label], timings.cpu[label]
        print(
            f"   {label:<48}{calls:>6}{wall / calls * 1e6:>9.0f}{cpu / calls * 1e6:>9.0f}"
            f"{cpu / steps * 1e6:>9.1f}{cpu / epochs * 1e3:>9.2f}"
            f"{100 * wall / result.seconds:>7.1f}"
        )
    top = sum(v for k, v in timings.wall.items() if not k.startswith(("bg:", NESTED)))
    rest = result.seconds - top
    print(
        f"   {'rest (wall): forward, loop glue, GIL/CPU waits':<48}{'':>6}{'':>9}{'':>9}{'':>9}"
        f"{'':>9}{100 * rest / result.seconds:>7.1f}"
    )
    print(
        f"   ({NESTED.strip()} = also inside another row: forward and loss run in evaluate() too."
        " wall > CPU = waiting: for the GIL, or for a core the machine gave to someone else)"
    )
    print("   (bg: = a background thread's work; its wall % overlaps the training thread's time)")


class TimedModule(torch.nn.Module):
    """Wraps the loss module to time the loss forward."""

    def __init__(self, inner: torch.nn.Module, timings: Timings, label: str) -> None:
        super().__init__()
        self.inner = inner
        self.timings = timings
        self.label = label

    def forward(self, *args: Any) -> Any:
        wall, cpu = time.perf_counter(), time.thread_time()
        try:
            return self.inner(*args)
        finally:
            self.timings.add(self.label, time.perf_counter() - wall, time.thread_time() - cpu)


# ---------------------------------------------------------------------------------- ablation


@dataclass
class Variant:
    name: str
    overrides: tuple[str, ...] = ()
    patches: tuple[tuple[Any, str, Any], ...] = ()
    writer: str = ""  # "", "memory", "sync" or "process"


def variants(cfg: Any) -> list[Variant]:
    """What to remove, one at a time; ``FIX`` rows are proposed replacements, not removals.
    Only what this src has: ``cfg`` is the composed baseline config."""
    no_monitor: tuple[str, ...] = ()
    if "gradient_monitor" in cfg.trainer:
        no_monitor = ("trainer.gradient_monitor.every_n_steps=0",)
    plain_eval = (loop_module, "evaluate", plain_evaluate)
    one_group = (recipe_module, "build_optimizer", single_group_adam)
    no_norm = grad_norm_patch()
    norm_patches = () if no_norm is None else (no_norm,)
    chosen = [
        Variant("metrics kept in memory (no MLflow writes)", writer="memory"),
        Variant("metrics sent synchronously (no writer thread)", writer="sync"),
        Variant("FIX metrics sent by a child process", writer="process"),
        Variant("no checkpoints (trainer.checkpoint=false)", ("trainer.checkpoint=false",)),
        Variant("checkpoints without fsync", patches=((checkpoint_module.os, "fsync", no_fsync),)),
        Variant(
            "FIX checkpoint snapshot by clone(), not deepcopy",
            patches=((checkpoint_module, "copy", CloneCopyModule()),),
        ),
        Variant("plain val loss+acc instead of torchmetrics", patches=(plain_eval,)),
        Variant(
            "FIX rank AUROC, no validate_args",
            patches=((loop_module, "compute_metrics", fast_compute_metrics),),
        ),
        Variant("no grad-norm (_foreach_norm)", patches=norm_patches),
        Variant("one Adam param group instead of two", patches=(one_group,)),
        Variant(
            "ALL removed (memory metrics, no ckpt, plain val)",
            ("trainer.checkpoint=false", *no_monitor),
            (plain_eval, one_group, *norm_patches),
            writer="memory",
        ),
    ]
    if no_monitor:
        chosen.insert(-1, Variant("no gradient monitor (every_n_steps=0)", no_monitor))
    chosen.append(
        Variant(
            "ALL FIXes (child process, clone, rank AUROC)",
            patches=(
                (checkpoint_module, "copy", CloneCopyModule()),
                (loop_module, "compute_metrics", fast_compute_metrics),
            ),
            writer="process",
        )
    )
    return [v for v in chosen if v.patches or v.overrides or v.writer]


class CloneCopyModule:
    """Stands in for the ``copy`` module inside ``trainlab.train.checkpoint``."""

    deepcopy = staticmethod(clone_snapshot)
    copy = staticmethod(copy.copy)


def run_variant(bench: Bench, variant: Variant | None, epochs: int) -> RunResult:
    if variant is None:
        return bench.run(epochs)

    def prepare(recipe: TrainingRecipe, tracker: MlflowTracker) -> None:
        if variant.writer == "memory":
            replace_writer(tracker, MemoryWriter())
        elif variant.writer == "sync":
            replace_writer(tracker, SynchronousWriter(tracker._send_metrics))
        elif variant.writer == "process":
            replace_writer(tracker, ProcessWriter(tracker.uri, tracker.run_id))

    with contextlib.ExitStack() as stack:
        for target, name, value in variant.patches:
            stack.enter_context(patched(target, name, value))
        return bench.run(epochs, *variant.overrides, prepare=prepare)


def ablation(bench: Bench) -> None:
    """Each variant between two baseline runs; savings against the baselines' mean, in wall
    time (what the ratio is about) and in process CPU time (robust when the machine is shared:
    CPU time does not grow while another process has the core; it also misses GIL waits)."""
    epochs, repeats = bench.args.epochs, bench.args.repeats
    cfg = bench.cfg(epochs)
    chosen = variants(cfg)
    recipe = TrainingRecipe(cfg, JobContext())
    recipe.setup()
    hand_work = workload_of(recipe, cfg)
    for variant in [None, *chosen]:
        run_variant(bench, variant, 2)  # warm-up
    hand_loop(hand_work, 2, validate=False)

    wall_savings: dict[str, list[float]] = {v.name: [] for v in chosen}
    cpu_savings: dict[str, list[float]] = {v.name: [] for v in chosen}
    baselines: list[RunResult] = []
    hands: list[RunResult] = []
    for repeat in range(repeats):
        order = chosen[repeat % len(chosen) :] + chosen[: repeat % len(chosen)]
        before = run_variant(bench, None, epochs)
        baselines.append(before)
        hands.append(hand_loop(hand_work, epochs, validate=False))
        for variant in order:
            result = run_variant(bench, variant, epochs)
            after = run_variant(bench, None, epochs)
            baselines.append(after)
            wall = (before.seconds + after.seconds) / 2
            cpu = (before.cpu_seconds + after.cpu_seconds) / 2
            wall_savings[variant.name].append((wall - result.seconds) / wall)
            cpu_savings[variant.name].append((cpu - result.cpu_seconds) / cpu)
            before = after
        print(
            f"   ablation repeat {repeat + 1}/{repeats} done; "
            f"load average {os.getloadavg()[0]:.2f}",
            flush=True,
        )

    steps = baselines[0].steps
    per_epoch = steps // epochs
    base = statistics.median(r.seconds for r in baselines)
    base_cpu = statistics.median(r.cpu_seconds for r in baselines)
    hand = statistics.median(r.seconds for r in hands)
    hand_cpu = statistics.median(r.cpu_seconds for r in hands)
    print(
        f"\n== ablation: {epochs} epochs x {per_epoch} steps, {repeats} repeats, "
        f"threads={torch.get_num_threads()}"
    )
    print(
        f"   baseline trainlab {base / epochs * 1e3:.1f} ms/epoch wall ({steps / base:.0f} steps/s)"
        f", {base_cpu / epochs * 1e3:.1f} ms/epoch CPU; hand loop {hand / epochs * 1e3:.1f} ms"
        f"/epoch wall ({steps / hand:.0f} steps/s), {hand_cpu / epochs * 1e3:.1f} ms/epoch CPU"
    )
    print(
        f"   {'removed or replaced':<48}{'wall ms':>9}{'wall':>7}  {'[min - max]':<12}"
        f"{'CPU ms':>8}{'CPU':>7}{'-> ratio':>9}\n   {'':<48}{'/epoch':>9}{'%':>7}  "
        f"{'%':<12}{'/epoch':>8}{'%':>7}{'(wall)':>9}"
    )
    for name, shares in wall_savings.items():
        share = statistics.median(shares)
        cpu_share = statistics.median(cpu_savings[name])
        spread = f"[{100 * min(shares):.0f} - {100 * max(shares):.0f}]"
        print(
            f"   {name:<48}{share * base / epochs * 1e3:>9.2f}{100 * share:>7.1f}  {spread:<12}"
            f"{cpu_share * base_cpu / epochs * 1e3:>8.2f}{100 * cpu_share:>7.1f}"
            f"{hand / (base * (1 - share)):>9.2f}"
        )
    print(
        f"   (-> ratio: trainlab/hand steps/s with that change alone; baseline {hand / base:.2f}."
        " Removals overlap - they share the GIL - so they do not add up.)"
    )


# ------------------------------------------------------------------------------------- micro


def cpu_clock() -> Callable[[], int]:
    """This thread's CPU time when torch computes in this thread alone (threads=1): a call
    the scheduler interrupts for another process does not count the interruption. With more
    torch threads, the work is spread over threads, so wall time."""
    return time.thread_time_ns if torch.get_num_threads() == 1 else time.perf_counter_ns


def median_us(
    function: Callable[[], Any], calls: int, clock: Callable[[], int] | None = None
) -> float:
    """Median cost of one call (``cpu_clock()`` unless a clock is given)."""
    clock = clock or cpu_clock()
    for _ in range(min(100, calls)):
        function()
    samples = []
    for _ in range(calls):
        started = clock()
        function()
        samples.append(clock() - started)
    return statistics.median(samples) / 1e3


def paired_us(
    first: Callable[[], Any], second: Callable[[], Any], calls: int
) -> tuple[float, float]:
    """Medians (``cpu_clock()``) of two functions called alternately."""
    clock = cpu_clock()
    for _ in range(min(100, calls)):
        first()
        second()
    a, b = [], []
    for _ in range(calls):
        started = clock()
        first()
        middle = clock()
        second()
        a.append(middle - started)
        b.append(clock() - middle)
    return statistics.median(a) / 1e3, statistics.median(b) / 1e3


def micro(bench: Bench) -> None:
    """Isolated costs of single operations of the step and of the epoch end."""
    from torchmetrics.functional import classification

    from trainlab.optim import build_optimizer
    from trainlab.train.checkpoint import capture_rng_state, save_checkpoint
    from trainlab.train.loop import Progress, evaluate

    cfg = bench.cfg(5)
    recipe = TrainingRecipe(cfg, JobContext())
    recipe.setup()
    parts = recipe.parts
    batcher = parts.batcher
    features, targets = next(iter(batcher.epoch(0)))
    rows: list[tuple[str, float, str]] = []

    def step(model: torch.nn.Module, optimizer: torch.optim.Optimizer) -> None:
        loss = F.cross_entropy(model(features), targets)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    one_model = copy.deepcopy(parts.model)
    two_model = copy.deepcopy(parts.model)
    one = single_group_adam(cfg.optimizer, one_model)
    two = build_optimizer(cfg.optimizer, two_model)
    step(one_model, one)
    step(two_model, two)
    hand_step_us = median_us(lambda: step(one_model, one), 2000)
    rows.append(("hand step: fwd+loss+bwd+Adam (the reference, = 100%)", hand_step_us, ""))
    a, b = paired_us(one.step, two.step, 3000)
    rows.append(
        (f"Adam.step, {len(two.param_groups)} groups minus 1 group ({b:.0f} vs {a:.0f})", b - a, "")
    )

    parameters = [p for p in two_model.parameters() if p.requires_grad]
    norm_label, global_grad_norm = grad_norm_function()
    rows.append((norm_label, median_us(lambda: global_grad_norm(parameters), 3000), ""))
    loss = F.cross_entropy(two_model(features), targets)
    grad_norm = global_grad_norm(parameters)
    buffer = StepMetrics()

    def record_and_drain() -> None:
        for index in range(len(batcher)):
            buffer.record(index, loss.detach(), grad_norm, 1e-3)
        buffer.drain()

    rows.append(
        ("StepMetrics record x23 + drain, per step", median_us(record_and_drain, 500) / 23, "")
    )
    outputs = two_model(features)
    a, b = paired_us(
        lambda: F.cross_entropy(outputs, targets), lambda: parts.loss(outputs, targets), 3000
    )
    rows.append(("Loss wrapper minus F.cross_entropy", b - a, ""))

    def batcher_epoch() -> None:
        for _ in batcher.epoch(1):
            pass

    def inline_epoch() -> None:
        order = torch.randperm(
            len(batcher.targets), generator=torch.Generator().manual_seed(batcher.seed + 1)
        )
        for start in range(0, len(order), batcher.batch_size):
            index = order[start : start + batcher.batch_size]
            batcher.features[index], batcher.targets[index]

    a, b = paired_us(inline_epoch, batcher_epoch, 500)
    rows.append(("batcher.epoch() minus inline randperm+gather, /step", (b - a) / len(batcher), ""))
    rows.append(
        ("lr read + schedule.after_batch()", median_us(parts.schedule.after_batch, 3000), "")
    )

    def hand_validation() -> None:
        with torch.no_grad():
            out = parts.model(parts.val_features)
            F.cross_entropy(out, parts.val_labels).item()
            (out.argmax(1) == parts.val_labels).float().mean().item()

    step(parts.model, parts.optimizer)
    a, b = paired_us(hand_validation, lambda: evaluate(parts, 1024), 200)
    rows.append((f"evaluate() minus hand val ({b / 1e3:.2f} vs {a / 1e3:.2f} ms)", b - a, "epoch"))
    with torch.no_grad():
        probabilities = parts.model(parts.val_features).softmax(-1)
    for name, metric in (
        ("multiclass_auroc", classification.multiclass_auroc),
        ("multiclass_f1_score", classification.multiclass_f1_score),
        ("multiclass_accuracy", classification.multiclass_accuracy),
    ):
        average = "micro" if name == "multiclass_accuracy" else "macro"
        rows.append(
            (
                f"  torchmetrics {name}",
                median_us(
                    lambda metric=metric, average=average: metric(  # type: ignore[misc]
                        probabilities, parts.val_labels, num_classes=10, average=average
                    ),
                    200,
                ),
                "epoch",
            )
        )

    progress = Progress(epoch=3, step=69, best_value=0.1, best_epoch=3)
    rows.append(
        ("checkpoint_state()", median_us(lambda: recipe.checkpoint_state(progress), 200), "epoch")
    )
    state = recipe.checkpoint_state(progress)
    rows.append(("  capture_rng_state()", median_us(capture_rng_state, 200), "epoch"))
    rows.append(
        ("copy.deepcopy(checkpoint state)", median_us(lambda: copy.deepcopy(state), 200), "epoch")
    )

    def clone_snapshot() -> dict[str, Any]:
        fresh = recipe.checkpoint_state(progress)
        return {
            key: {k: v.clone() for k, v in value.items()} if key == "model" else value
            for key, value in fresh.items()
        } | {"optimizer": clone_optimizer_state(fresh["optimizer"])}

    rows.append(("  alternative: clone tensors only", median_us(clone_snapshot, 200), "epoch"))
    buffer_size = len(serialize(state))
    rows.append(
        (
            f"torch.save to memory ({buffer_size / 1e6:.2f} MB)",
            median_us(lambda: serialize(state), 200),
            "epoch",
        )
    )
    folder = Path(tempfile.mkdtemp(prefix="trainlab-micro-"))
    try:
        path = folder / "last.pt"
        wall = time.perf_counter_ns  # the fsyncs wait for the disk, not the CPU
        synced = median_us(lambda: save_checkpoint(state, path), 100, wall)
        with patched(checkpoint_module.os, "fsync", no_fsync):
            unsynced = median_us(lambda: save_checkpoint(state, path), 100, wall)
        rows.append(("save_checkpoint() (atomic, 2x fsync), wall", synced, "epoch"))
        rows.append(("  of which the 2 fsyncs, wall", synced - unsynced, "epoch"))
    finally:
        shutil.rmtree(folder, ignore_errors=True)

    tracker = MlflowTracker(bench.uri, "overhead-benchmark", "micro", {})
    try:
        step_points: Points = []
        epoch_points: Points = []
        counter = [0]

        def send_epoch() -> None:
            counter[0] += 1
            base = counter[0] * 100
            step_points[:] = [
                (name, 1.0, base + s)
                for name in ("train/loss", "train/grad_norm", "train/lr")
                for s in range(len(batcher))
            ]
            epoch_points[:] = [
                (name, 1.0, base + 99)
                for name in (
                    "val/loss",
                    "val/acc",
                    "val/f1",
                    "val/auroc",
                    "train/epoch_loss",
                    "epoch",
                )
            ]
            tracker._send_metrics(step_points)
            tracker._send_metrics(epoch_points)

        rows.append(
            (
                f"MLflow log_batch sqlite: {3 * len(batcher)} + 6 points (1 epoch)",
                median_us(send_epoch, 60),
                "epoch",
            )
        )
    finally:
        tracker.close("FINISHED")

    print(
        f"\n== micro: isolated costs, threads={torch.get_num_threads()}: median of many calls, "
        f"in {'thread CPU' if cpu_clock() is time.thread_time_ns else 'wall'} time unless marked"
    )
    epoch_us = hand_step_us * len(batcher)
    print(
        f"   (% = share of a hand-loop epoch: {len(batcher)} steps x {hand_step_us:.0f} us "
        f"= {epoch_us / 1e3:.1f} ms)"
    )
    print(f"   {'operation':<66}{'us':>9}{'per':>7}{'%':>7}")
    for label, micros, per in rows:
        per = per or "step"
        share = micros * (len(batcher) if per == "step" else 1) / epoch_us
        print(f"   {label:<66}{micros:>9.1f}{per:>7}{100 * share:>7.1f}")


def clone_optimizer_state(state: dict[str, Any]) -> dict[str, Any]:
    return {
        "state": {
            index: {k: v.clone() if torch.is_tensor(v) else v for k, v in values.items()}
            for index, values in state["state"].items()
        },
        "param_groups": [dict(group) for group in state["param_groups"]],
    }


def serialize(state: dict[str, Any]) -> bytes:
    buffer = io.BytesIO()
    torch.save(state, buffer)
    return buffer.getvalue()


# -------------------------------------------------------------------------------------- main


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Split trainlab's overhead into its sources.")
    parser.add_argument("--epochs", type=int, default=40)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--hidden", default="256,256")
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument(
        "--only", choices=("accounting", "ablation", "micro"), action="append", default=None
    )
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    quiet_mlflow()
    torch.set_num_threads(args.threads)
    folder = Path(tempfile.mkdtemp(prefix="trainlab-breakdown-"))
    uri = f"sqlite:///{folder / 'mlflow.db'}"
    bench = Bench(args, uri)
    print(f"trainlab overhead breakdown, threads={args.threads}, torch {torch.__version__}")
    print(f"switch interval {sys.getswitchinterval() * 1e3:.0f} ms, {os.cpu_count()} CPUs")
    try:
        MlflowTracker(uri, "overhead-benchmark", "store", {}).close("FINISHED")
        for part in args.only or ["accounting", "ablation", "micro"]:
            {"accounting": accounting, "ablation": ablation, "micro": micro}[part](bench)
    finally:
        for child in CHILDREN:
            child.join()
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
