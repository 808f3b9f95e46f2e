"""How much slower is trainlab's tracked loop than a hand-written PyTorch loop?

Trains the SAME model on the SAME batches four ways and prints steps/s and ratios:

* ``hand``       forward, loss, backward, optimizer step per batch; nothing else; Adam with
                 torch's default kernel (what ``torch.optim.Adam(model.parameters())`` runs).
* ``hand+val``   the same, plus validation loss and accuracy (plain torch) once per epoch.
* ``hand+fused`` ``hand+val`` with the optimizer kernel trainlab picks
                 (``optimizer.implementation=auto``: torch's fused Adam on the CPU). The
                 ratio against it is trainlab's own overhead, with the kernel choice removed.
* ``trainlab``   ``TrainingRecipe.train()`` with everything a real run has: the config
                 composed from ``conf/``, an MLflow sqlite store (in a temporary folder),
                 per-step metrics (loss, lr, global gradient norm), per-epoch evaluation
                 (loss, accuracy, F1, precision, recall, AUROC), the gradient monitor,
                 checkpoints (``last.pt``/``best.pt``, fsync'ed), then
                 ``tracker.close("FINISHED")``.

For each baseline two ratios are printed for trainlab:

* ``train``      the time of ``recipe.train()``: every step and epoch, the metric sends that
                 happen meanwhile, and the final checkpoint on disk.
* ``end-to-end`` the same plus ``tracker.close()``: the last metrics in the store, the
                 gradient heat-map drawn and logged, the run marked FINISHED (a fixed cost
                 per run, reported in ms as well).

The metric sender is a child process; its CPU time per run is printed beside the figures
(it runs on another core while the training thread works).

Fairness:

* identical data tensors (``recipe.parts.batcher.features/targets``), identical initial weights
  (a deep copy of the recipe's model before training) and the identical per-epoch batch order
  (the batcher's permutation, reproduced in plain torch). The final weights of ``hand+fused``
  (the same kernel as trainlab's) are compared with trainlab's after every repetition:
  ``max|dw|`` must be 0. ``hand`` differs from both in the last bits of every update (another
  kernel, another rounding order), which grows over the run; its ``max|dw|`` is printed too.
* the same Adam settings (lr, betas, eps from the composed config; one parameter group, as
  a hand-written loop would have).
* one-time costs are outside the timed region and reported separately: creating the sqlite
  store (its schema migrations take seconds), creating the run, ``record_config``.
* ``torch.set_num_threads(N)`` is set once per thread setting and is the same for all three
  loops; by default both 1 and 2 threads are measured (``--threads 1,2``).
* each thread setting is warmed up first (a short run of every loop), then ``--repeats``
  repetitions run the three loops back to back, in a rotating order. Ratios are computed
  within a repetition (the three runs are seconds apart), and the median and min-max of those
  paired ratios are printed: this machine's speed drifts far more between minutes than
  between neighbouring seconds.

The benchmark only prints numbers; it never asserts on time.

    make bench
    make bench ARGS="--epochs 60 --repeats 7 --threads 1"
"""

from __future__ import annotations

import argparse
import copy
import importlib
import logging
import os
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
from omegaconf import DictConfig
from torch import nn

from trainlab import fork_server
from trainlab.config.compose import compose_config
from trainlab.display.progress import make_progress
from trainlab.optim.optimizers import KERNEL_OPTIONS, optimizer_kernel
from trainlab.tracking.mlflow_tracker import MlflowTracker
from trainlab.train.job import sender_warm_up
from trainlab.train.recipe import JobContext, TrainingRecipe

LOOPS = ("hand", "hand+val", "hand+fused", "trainlab")
BASELINES = (
    ("hand", "train steps only, torch's default Adam kernel"),
    ("hand+val", "with per-epoch val, torch's default Adam kernel"),
    ("hand+fused", "with per-epoch val, trainlab's Adam kernel: the overhead alone"),
)


@dataclass
class Workload:
    """Everything the hand loops need, taken from a set-up (not yet trained) recipe."""

    initial_model: nn.Module
    features: torch.Tensor
    targets: torch.Tensor
    val_features: torch.Tensor
    val_targets: torch.Tensor
    batch_size: int
    seed: int
    lr: float
    betas: tuple[float, float]
    eps: float
    kernel: dict[str, bool]  # the torch.optim options of trainlab's kernel (fused=True, ...)


@dataclass
class RunResult:
    steps: int
    seconds: float
    model: nn.Module
    cpu_seconds: float = 0.0  # this process's CPU time (all threads) over the same interval
    train_seconds: float = 0.0  # trainlab: recipe.train() alone (the rest is tracker.close())
    child_cpu_seconds: float = 0.0  # trainlab: the metric sender process's CPU time

    @property
    def steps_per_second(self) -> float:
        return self.steps / self.seconds


@dataclass
class OneTimeCosts:
    """Seconds spent outside the timed region, per trainlab run."""

    store_creation: float = 0.0
    setup: list[float] = field(default_factory=list)
    create_run: list[float] = field(default_factory=list)
    record_config: list[float] = field(default_factory=list)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--epochs", type=int, default=50, help="epochs per timed run")
    parser.add_argument("--repeats", type=int, default=5, help="timed repetitions per setting")
    parser.add_argument(
        "--threads",
        default="1,2",
        help="comma-separated torch.set_num_threads values, each measured in turn",
    )
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--hidden", default="256,256", help="MLP hidden sizes, comma-separated")
    parser.add_argument("--lr", type=float, default=1e-3, help="Adam learning rate")
    parser.add_argument("--warmup-epochs", type=int, default=3, help="epochs of the warm-up runs")
    return parser.parse_args(argv)


def overrides(args: argparse.Namespace, epochs: int, uri: str) -> list[str]:
    hidden = ",".join(str(int(h)) for h in args.hidden.split(","))
    return [
        "dataset=digits",
        "model=mlp",
        f"model.hidden_sizes=[{hidden}]",
        "model.activation=relu",
        "model.dropout=0.0",
        "optimizer=adam",
        f"optimizer.lr={args.lr}",
        "scheduler=none",
        "regularizer=none",
        f"trainer.batch_size={args.batch_size}",
        f"trainer.max_epochs={epochs}",
        "trainer.device=cpu",
        "trainer.checkpoint=true",
        "trainer.progress=none",
        f"tracking.uri={uri}",
        "tracking.experiment=overhead-benchmark",
    ]


def build_recipe(cfg: DictConfig, costs: OneTimeCosts | None) -> TrainingRecipe:
    recipe = TrainingRecipe(cfg, JobContext(overrides=["benchmark"]))
    started = time.perf_counter()
    recipe.setup()
    if costs is not None:
        costs.setup.append(time.perf_counter() - started)
    return recipe


def workload_of(recipe: TrainingRecipe, cfg: DictConfig) -> Workload:
    parts = recipe.parts
    betas = [float(b) for b in cfg.optimizer.betas]
    return Workload(
        initial_model=copy.deepcopy(parts.model),
        features=parts.batcher.features,
        targets=parts.batcher.targets,
        val_features=parts.val_features,
        val_targets=parts.val_labels,
        batch_size=parts.batcher.batch_size,
        seed=parts.batcher.seed,
        lr=float(cfg.optimizer.lr),
        betas=(betas[0], betas[1]),
        eps=float(cfg.optimizer.eps),
        kernel=KERNEL_OPTIONS.get(optimizer_kernel(parts.optimizer), {}),
    )


def epoch_order(work: Workload, epoch: int) -> torch.Tensor:
    """The batcher's permutation for ``epoch``, written out in plain torch."""
    generator = torch.Generator().manual_seed(work.seed * 1_000_003 + epoch)
    return torch.randperm(len(work.targets), generator=generator)


def hand_loop(work: Workload, epochs: int, validate: bool, same_kernel: bool = False) -> RunResult:
    """A plain PyTorch loop; with ``validate``, val loss and accuracy after each epoch; with
    ``same_kernel``, the optimizer kernel trainlab uses instead of torch's default."""
    model = copy.deepcopy(work.initial_model)
    kernel = work.kernel if same_kernel else {}
    optimizer = torch.optim.Adam(
        model.parameters(), lr=work.lr, betas=work.betas, eps=work.eps, **kernel
    )
    features, targets, batch_size = work.features, work.targets, work.batch_size
    steps = 0
    started, started_cpu = time.perf_counter(), time.process_time()
    for epoch in range(epochs):
        model.train()
        order = epoch_order(work, epoch)
        for start in range(0, len(order), batch_size):
            index = order[start : start + batch_size]
            loss = F.cross_entropy(model(features[index]), targets[index])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            steps += 1
        if validate:
            model.eval()
            with torch.no_grad():
                outputs = model(work.val_features)
                val_loss = F.cross_entropy(outputs, work.val_targets).item()
                val_acc = (outputs.argmax(1) == work.val_targets).float().mean().item()
            del val_loss, val_acc  # a real loop would print or store them
    seconds = time.perf_counter() - started
    return RunResult(steps, seconds, model, time.process_time() - started_cpu)


def trainlab_loop(
    cfg: DictConfig,
    costs: OneTimeCosts | None,
    prepare: Callable[[TrainingRecipe, MlflowTracker], None] | None = None,
) -> RunResult:
    """A full tracked trainlab run; only ``train()`` + ``close()`` are timed. ``prepare`` may
    instrument or alter the recipe and tracker first (a profiling script can)."""
    recipe = build_recipe(cfg, costs)
    started = time.perf_counter()
    tracker = MlflowTracker(
        uri=str(cfg.tracking.uri),
        experiment=str(cfg.tracking.experiment),
        run_name="overhead-benchmark",
        tags={"trainlab.overrides": "benchmark"},
        warm_up=sender_warm_up(cfg),  # as job.run_training's tracker does
    )
    recipe.run_id = tracker.run_id  # as job.run_training does
    created = time.perf_counter()
    recipe.record_config(tracker)
    recorded = time.perf_counter()
    if costs is not None:
        costs.create_run.append(created - started)
        costs.record_config.append(recorded - created)
    if prepare is not None:
        prepare(recipe, tracker)
    display = make_progress("none", cfg.trainer.max_epochs, len(recipe.parts.batcher))
    display.start()
    started, started_cpu = time.perf_counter(), time.process_time()
    try:
        progress = recipe.train(tracker, display)
    finally:
        display.stop()
    trained = time.perf_counter() - started
    if progress.best_value is not None:  # as job.run_training does
        tracker.log_metrics([(f"best/{recipe.monitor}", progress.best_value, progress.step)])
    tracker.close("FINISHED")  # joins the metric sender, so its CPU time is counted below
    seconds = time.perf_counter() - started
    cpu = time.process_time() - started_cpu
    # The sender reports its own CPU time as it ends (forked from the fork server, it is
    # not this process's child, so RUSAGE_CHILDREN would not count it).
    child_cpu = tracker._writer.child_cpu_s or 0.0
    return RunResult(progress.step, seconds, recipe.parts.model, cpu, trained, child_cpu)


def max_weight_difference(a: nn.Module, b: nn.Module) -> float:
    pairs = zip(a.state_dict().values(), b.state_dict().values(), strict=True)
    return max(float((x - y).abs().max()) for x, y in pairs)


def summary(values: list[float], digits: int = 0) -> str:
    return (
        f"{statistics.median(values):8.{digits}f}  "
        f"[{min(values):.{digits}f} - {max(values):.{digits}f}]"
    )


def measure(
    args: argparse.Namespace, threads: int, uri: str, costs: OneTimeCosts
) -> dict[str, list[RunResult]]:
    """Warm up, then ``args.repeats`` repetitions of the three loops in a rotating order."""
    torch.set_num_threads(threads)
    warmup_cfg = compose_config(overrides(args, args.warmup_epochs, uri))
    cfg = compose_config(overrides(args, args.epochs, uri))
    # Every recipe seeds the same way, so this one's untrained model is every run's start.
    work = workload_of(build_recipe(cfg, None), cfg)

    trainlab_loop(warmup_cfg, None)
    hand_loop(work, args.warmup_epochs, validate=False)
    hand_loop(work, args.warmup_epochs, validate=True)
    hand_loop(work, args.warmup_epochs, validate=True, same_kernel=True)

    runners: dict[str, Callable[[], RunResult]] = {
        "hand": lambda: hand_loop(work, args.epochs, validate=False),
        "hand+val": lambda: hand_loop(work, args.epochs, validate=True),
        "hand+fused": lambda: hand_loop(work, args.epochs, validate=True, same_kernel=True),
        "trainlab": lambda: trainlab_loop(cfg, costs),
    }
    results: dict[str, list[RunResult]] = {name: [] for name in LOOPS}
    for repeat in range(args.repeats):
        shift = repeat % len(LOOPS)
        order = LOOPS[shift:] + LOOPS[:shift]
        ran = {name: runners[name]() for name in order}
        for name in LOOPS:
            results[name].append(ran[name])
        same = max_weight_difference(ran["hand+fused"].model, ran["trainlab"].model)
        default = max_weight_difference(ran["hand"].model, ran["trainlab"].model)
        busy = ran["hand"].cpu_seconds / ran["hand"].seconds
        print(
            f"  threads={threads} repeat {repeat + 1}/{args.repeats}: "
            + "  ".join(f"{name} {ran[name].steps_per_second:5.0f}" for name in LOOPS)
            + f"  steps/s | max|dw| vs trainlab: hand+fused {same:.1e}, hand {default:.1e}"
            + f" | hand cpu/wall {busy:.2f}",
            flush=True,
        )
    return results


def report(threads: int, results: dict[str, list[RunResult]]) -> None:
    steps = results["hand"][0].steps
    print(f"\nthreads={threads}: {steps} steps per run, {len(results['hand'])} repetitions")
    print(f"  {'loop':<10} {'steps/s median [min - max]':>30} {'CPU s/run':>10} {'wall s/run':>10}")
    for name in LOOPS:
        runs = results[name]
        print(
            f"  {name:<10} {summary([r.steps_per_second for r in runs]):>30}"
            f" {statistics.median(r.cpu_seconds for r in runs):>10.2f}"
            f" {statistics.median(r.seconds for r in runs):>10.2f}"
        )
    ours = results["trainlab"]
    finalize_ms = [(r.seconds - r.train_seconds) * 1e3 for r in ours]
    child_cpu = [r.child_cpu_seconds for r in ours]
    print(
        f"  trainlab: tracker.close() {summary(finalize_ms)} ms per run; metric sender "
        f"process {statistics.median(child_cpu):.2f} CPU s per run (on another core)"
    )
    for baseline, label in BASELINES:
        base = results[baseline]
        train_ratio = [r.seconds / t.train_seconds for t, r in zip(ours, base, strict=True)]
        full_ratio = [r.seconds / t.seconds for t, r in zip(ours, base, strict=True)]
        by_cpu = [r.cpu_seconds / t.cpu_seconds for t, r in zip(ours, base, strict=True)]
        print(f"  trainlab / {baseline} ({label}); goal >= 0.95:")
        print(f"      train (recipe.train())        {summary(train_ratio, 3)}")
        print(f"      end-to-end (+ tracker.close)  {summary(full_ratio, 3)}")
        print(f"      end-to-end by process CPU     {summary(by_cpu, 3)}")


def load_average() -> str:
    one, five, fifteen = os.getloadavg()
    return f"{one:.2f} {five:.2f} {fifteen:.2f} (1/5/15 min; {os.cpu_count()} CPUs)"


def quiet_mlflow() -> None:
    """MLflow sets its own log level on import; import it first, then silence its INFO lines."""
    importlib.import_module("mlflow")
    logging.getLogger("mlflow").setLevel(logging.WARNING)


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    fork_server.start_for_senders()  # as `trainlab train` does: senders not forked from here
    quiet_mlflow()
    thread_settings = [int(t) for t in args.threads.split(",")]
    folder = Path(tempfile.mkdtemp(prefix="trainlab-bench-"))
    uri = f"sqlite:///{folder / 'mlflow.db'}"
    print(
        f"trainlab overhead benchmark: digits, MLP {args.hidden} ReLU, batch {args.batch_size}, "
        f"Adam lr {args.lr}, CPU, {args.epochs} epochs/run, torch {torch.__version__}"
    )
    print(f"store: {uri}")
    print(f"load average before: {load_average()}")
    costs = OneTimeCosts()
    try:
        started = time.perf_counter()
        MlflowTracker(uri=uri, experiment="overhead-benchmark", run_name="store", tags={}).close(
            "FINISHED"
        )
        costs.store_creation = time.perf_counter() - started
        all_results = {threads: measure(args, threads, uri, costs) for threads in thread_settings}
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    print(f"load average after:  {load_average()}")
    print(
        "(hand cpu/wall well below 1.0 at threads=1, or a load average above the core count,\n"
        " means other processes shared the CPU: trust the paired ratios more than absolute\n"
        " steps/s. The CPU-time ratios do not grow while another process holds the core, but\n"
        " they miss time lost waiting for the GIL and count OpenMP spinning at threads>1.)"
    )
    for threads, results in all_results.items():
        report(threads, results)
    print("\none-time costs (not in the timed region):")
    print(f"  create the sqlite store (schema migrations): {costs.store_creation * 1e3:8.0f} ms")
    for label, values in (
        ("recipe.setup() (load, split, build)", costs.setup),
        ("MlflowTracker() on the existing store", costs.create_run),
        ("recipe.record_config(tracker)", costs.record_config),
    ):
        print(f"  {label:<45}{statistics.median(values) * 1e3:8.1f} ms (median)")


if __name__ == "__main__":
    main()
