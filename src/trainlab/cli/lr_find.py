"""``trainlab lr-find [OVERRIDES] [--out FILE.png]``: the learning-rate range test on the
configured model, data and optimizer; prints a suggestion and how it was chosen, saves the
plot, and records both as an MLflow run of its own (tag ``trainlab.role=lr-find``)."""

from __future__ import annotations

import os
import shlex
from pathlib import Path
from typing import Any

from trainlab.config.errors import ConfigError, Problem, UsageError

HELP = """usage: trainlab lr-find [OVERRIDES] [--out FILE.png]

Trains the configured run for lr_find.num_steps steps with a learning rate growing
exponentially from lr_find.start_lr to lr_find.end_lr (stopping early when the smoothed loss
passes lr_find.divergence_factor x its lowest), then suggests a learning rate:
  valley    (default) a little past the middle of the longest stretch where the loss falls
  steepest  where the loss falls fastest
  minimum   a tenth of the rate at the lowest loss
The model and optimizer are restored afterwards. The plot (loss against lr, log axis, the
suggestion marked) is saved and, with the curve and the suggestion, logged to MLflow as a run
tagged trainlab.role=lr-find. Train with the suggestion directly: optimizer.lr=auto.

options:
  --out FILE   where to save the plot: .png, .svg or .pdf (default: lr_find.png)

examples:
  trainlab lr-find
  trainlab lr-find optimizer=sgd lr_find.end_lr=1 lr_find.num_steps=200 --out sgd.png
  trainlab train optimizer.lr=auto          runs the test first and trains with its pick"""

DEFAULT_OUT = "lr_find.png"
ROLE_TAG = "trainlab.role"


def parse(args: list[str]) -> tuple[list[str], Path]:
    from trainlab.tools.lr_find import FORMATS

    overrides: list[str] = []
    out = DEFAULT_OUT
    rest = list(args)
    while rest:
        arg = rest.pop(0)
        if arg in ("--out", "-o"):
            if not rest:
                raise UsageError(f"{arg} needs a file name, e.g. {arg} lr_find.png.")
            out = rest.pop(0)
        elif arg.startswith("--out="):
            out = arg.split("=", 1)[1]
        elif arg.startswith("-"):
            raise UsageError(
                f"unknown option {arg!r}; options: --out FILE. See `trainlab lr-find --help`."
            )
        else:
            overrides.append(arg)
    path = Path(out).expanduser()
    if path.suffix.lower() not in FORMATS:
        raise UsageError(
            f"--out {out!r}: the file name must end in {', '.join(FORMATS)}, e.g. --out lr.png."
        )
    return overrides, path


def run(args: list[str]) -> int:
    if any(arg in ("-h", "--help") for arg in args):
        print(HELP)
        return 0
    overrides, out = parse(args)
    from trainlab.config.compose import compose_config

    cfg = compose_config(overrides)
    from trainlab.data.datasets import DatasetError
    from trainlab.tools.lr_find import find_lr, plot

    try:
        recipe, result = find_lr(cfg)
    except DatasetError as error:
        raise ConfigError([Problem(error.key, str(error))]) from None
    except ValueError as error:  # the test stopped too early to suggest anything
        raise UsageError(str(error)) from None
    title = f"lr-find: {cfg.model.name} on {cfg.dataset.name}, {cfg.optimizer.name}"
    plot(result.test, result.suggestion, out, title)
    for line in result.report():
        print(line)
    print(f"Saved {out}")
    run_id = record(cfg, overrides, result, out, recipe.config_dict)
    print(
        f"Train with it: trainlab train {' '.join(overrides)} "
        f"optimizer.lr={result.suggestion.lr:.3g} (or optimizer.lr=auto)".replace("  ", " ")
    )
    print(f"Recorded as MLflow run {run_id} ({ROLE_TAG}=lr-find) in {cfg.tracking.uri}")
    return 0


def record(
    cfg: Any, overrides: list[str], result: Any, plot_path: Path, config: dict[str, Any]
) -> str:
    """The lr-find run: the config and the suggestion as params, the curve as metrics (step =
    test step), the plot and ``lr_find.json`` as artifacts."""
    from trainlab.tools.lr_find import log_result
    from trainlab.tracking.mlflow_tracker import MlflowTracker
    from trainlab.tracking.run_tags import COMMAND_ENV, source_tags
    from trainlab.train.recipe import flatten

    os.environ.setdefault(COMMAND_ENV, "trainlab lr-find " + shlex.join(overrides))
    tags = {**source_tags(), ROLE_TAG: "lr-find", "trainlab.overrides": " ".join(overrides)}
    tracker = MlflowTracker(
        uri=str(cfg.tracking.uri),
        experiment=str(cfg.tracking.experiment),
        run_name="lr-find " + (",".join(overrides) or "default"),
        tags=tags,
    )
    try:
        log_result(tracker, result, plot_path, params=flatten(config))
    except Exception:
        tracker.close("FAILED")
        raise
    tracker.close("FINISHED")
    return tracker.run_id
