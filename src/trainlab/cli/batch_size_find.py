"""``trainlab batch-size-find [OVERRIDES]``: time the configured run's training step at batch
sizes in powers of two; print a table (throughput, peak memory) with a recommendation and
record it as an MLflow run of its own (tag ``trainlab.role=batch-size-find``)."""

from __future__ import annotations

import json
import os
import shlex
import sys
from typing import Any

from trainlab.config.errors import ConfigError, Problem, UsageError

HELP = """usage: trainlab batch-size-find [OVERRIDES]

Builds the configured run and, for batch sizes 2^k from batch_size_find.min_batch_size up to
batch_size_find.max_batch_size (default: the training rows), trains
batch_size_find.warmup_steps untimed optimizer steps, then batch_size_find.repeats timed
blocks of batch_size_find.steps steps (the fastest block counts: another process can only
slow a block down), restoring the model in between. Measures samples/s, peak memory
(CUDA: allocated tensors; CPU: the process's peak resident memory) and the activations a step
keeps for backward (exact, the part that grows with the batch), stops at the first
out-of-memory error on a GPU or past batch_size_find.max_memory_mb, and recommends the
smallest batch size within batch_size_find.throughput_fraction (0.9) of the best throughput.

examples:
  trainlab batch-size-find
  trainlab batch-size-find experiment=digits_cnn trainer.device=cuda
  trainlab batch-size-find batch_size_find.max_memory_mb=2000 batch_size_find.steps=20"""

ROLE_TAG = "trainlab.role"


def run(args: list[str]) -> int:
    if any(arg in ("-h", "--help") for arg in args):
        print(HELP)
        return 0
    unknown = [a for a in args if a.startswith("-")]
    if unknown:
        raise UsageError(
            f"unknown option {unknown[0]!r}; it takes only overrides. See "
            "`trainlab batch-size-find --help`."
        )
    overrides = list(args)
    from trainlab.config.compose import compose_config

    cfg = compose_config(overrides)
    import torch

    from trainlab.data.datasets import DatasetError
    from trainlab.tools.batch_size import search
    from trainlab.tools.lr_find import with_lr
    from trainlab.train.recipe import JobContext, TrainingRecipe

    if cfg.optimizer.lr == "auto":  # the rate does not change the speed; any number will do
        cfg = with_lr(cfg, float(cfg.lr_find.start_lr))
    recipe = TrainingRecipe(cfg, JobContext(threads=int(cfg.trainer.threads)))
    try:
        recipe.setup()
    except DatasetError as error:
        raise ConfigError([Problem(error.key, str(error))]) from None
    load_before = os.getloadavg()[0]
    result = search(recipe.parts, recipe.step_controls(), recipe.device, cfg.batch_size_find)
    print_table(result, cfg)
    warn_if_busy(max(load_before, os.getloadavg()[0]), recipe.device.type, torch.get_num_threads())
    run_id = record(cfg, overrides, result, recipe.config_dict)
    print(f"Recorded as MLflow run {run_id} ({ROLE_TAG}=batch-size-find) in {cfg.tracking.uri}")
    return 0


def warn_if_busy(load: float, device_type: str, threads: int) -> None:
    """On the CPU, other processes' load skews the timings (most with several torch threads,
    each waiting for the others at every operation): say so, and what helps."""
    cores = os.cpu_count() or 1
    if device_type != "cpu" or load <= max(0.0, cores - threads) + 0.5:
        return
    print(
        f"Note: the CPU was busy (load average {load:.1f} on {cores} cores) while torch ran "
        f"{threads} thread(s): the timings above are lower and noisier than on an idle "
        "machine. Run it again when the machine is idle"
        + (", or with trainer.threads=1." if threads > 1 else ".")
    )


def print_table(result: Any, cfg: Any, rich: bool | None = None) -> None:
    from trainlab.tools.batch_size import HEADERS, table_rows

    rows = table_rows(result)
    title = (
        f"Batch sizes for {cfg.model.name} on {cfg.dataset.name} ({result.device}); "
        f"memory: {result.memory_kind}"
    )
    if rich is None:
        rich = sys.stdout.isatty()
    if rich:
        from rich.console import Console
        from rich.table import Table

        table = Table(title=title, title_justify="left")
        for header in HEADERS:
            table.add_column(header, justify="left" if header == "note" else "right")
        for row in rows:
            style = "bold green" if "recommended" in row[-1] else None
            table.add_row(*row, style=style)
        Console().print(table)
    else:
        print(title)
        widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(HEADERS)]
        print("  ".join(h.rjust(w) for h, w in zip(HEADERS, widths, strict=True)))
        for row in rows:
            print("  ".join(c.rjust(w) for c, w in zip(row, widths, strict=True)).rstrip())
    if result.recommended is not None:
        print(f"Recommended: trainer.batch_size={result.recommended}: {result.reason}.")
        current = int(cfg.trainer.batch_size)
        if current != result.recommended:
            print(
                f"  (now {current}; when you change the batch size, scale the learning rate "
                "with it, or re-run `trainlab lr-find trainer.batch_size=...`)"
            )
    else:
        print(f"No recommendation: {result.reason}.")


def record(cfg: Any, overrides: list[str], result: Any, config: dict[str, Any]) -> str:
    from trainlab.tools.batch_size import HEADERS, table_rows
    from trainlab.tracking.mlflow_tracker import MlflowTracker
    from trainlab.tracking.run_tags import COMMAND_ENV, source_tags
    from trainlab.train.recipe import flatten

    os.environ.setdefault(COMMAND_ENV, "trainlab batch-size-find " + shlex.join(overrides))
    tags = {
        **source_tags(),
        ROLE_TAG: "batch-size-find",
        "trainlab.overrides": " ".join(overrides),
    }
    tracker = MlflowTracker(
        uri=str(cfg.tracking.uri),
        experiment=str(cfg.tracking.experiment),
        run_name="batch-size-find " + (",".join(overrides) or "default"),
        tags=tags,
    )
    try:
        params = flatten(config)
        params["batch_size_find.recommended"] = result.recommended
        params["batch_size_find.memory"] = result.memory_kind
        tracker.log_params(params)
        if result.recommended is not None:
            tracker.set_tags({"trainlab.batch_size_find.recommended": str(result.recommended)})
        points: list[tuple[str, float, int]] = []
        for trial in result.trials:
            if trial.status == "ok":
                points += [
                    (
                        "batch_size_find/samples_per_second",
                        trial.samples_per_second,
                        trial.batch_size,
                    ),
                    ("batch_size_find/steps_per_second", trial.steps_per_second, trial.batch_size),
                    ("batch_size_find/peak_memory_mb", trial.peak_memory_mb, trial.batch_size),
                    ("batch_size_find/activation_mb", trial.activation_mb, trial.batch_size),
                ]
        tracker.log_metrics(points)
        tracker.log_text(
            json.dumps(result.as_dict(), indent=2, default=str), "batch_size_find.json"
        )
        lines = ["\t".join(HEADERS)] + ["\t".join(row) for row in table_rows(result)]
        tracker.log_text("\n".join(lines) + "\n", "batch_size_find.tsv")
    except Exception:
        tracker.close("FAILED")
        raise
    tracker.close("FINISHED")
    return tracker.run_id
