"""``trainlab plot-schedule [OVERRIDES] [-m] [--out FILE.png] [--log]``: draw the learning rate
over the whole run for the configured optimizer and scheduler, without training.

Every job's config is composed and validated as ``trainlab train`` would; with ``-m`` each job
of the sweep is one curve, labelled by the overrides that differ between jobs.
"""

from __future__ import annotations

from pathlib import Path

from omegaconf import DictConfig

from trainlab.config.errors import ConfigError, Problem, UsageError

HELP = """usage: trainlab plot-schedule [OVERRIDES] [-m] [--out FILE.png] [--log]

Draws the learning rate of every optimizer step of the configured run, without training:
the real optimizer and schedule, trainer.max_epochs epochs, and the steps per epoch that
the dataset's size and trainer.batch_size give. Plateau is drawn as if the monitored
metric never improves (its fastest decay).

options:
  -m, --multirun   one curve per job of a sweep (scheduler=a,b,c, optimizer.lr=...)
  --out FILE       where to save the plot: .png, .svg or .pdf (default: lr_schedule.png)
  --log            a logarithmic learning-rate axis

examples:
  trainlab plot-schedule scheduler=onecycle --out onecycle.png
  trainlab plot-schedule -m scheduler=warmup_cosine,onecycle,step --out lr.png
  trainlab plot-schedule scheduler=cosine scheduler.warmup_epochs=2 scheduler.interval=step"""

DEFAULT_OUT = "lr_schedule.png"


def parse(args: list[str]) -> tuple[list[str], bool, Path, bool]:
    """(overrides, multirun, out, log_y) from the command line."""
    from trainlab.tools.schedule_plot import FORMATS

    overrides: list[str] = []
    multirun, log_y, out = False, False, DEFAULT_OUT
    rest = list(args)
    while rest:
        arg = rest.pop(0)
        if arg in ("-m", "--multirun"):
            multirun = True
        elif arg == "--log":
            log_y = True
        elif arg in ("--out", "-o"):
            if not rest:
                raise UsageError(f"{arg} needs a file name, e.g. {arg} lr.png.")
            out = rest.pop(0)
        elif arg.startswith("--out="):
            out = arg.split("=", 1)[1]
        elif arg.startswith("-"):
            raise UsageError(
                f"unknown option {arg!r}; options: -m, --out FILE, --log. "
                "See `trainlab plot-schedule --help`."
            )
        else:
            overrides.append(arg)
    path = Path(out).expanduser()
    if path.suffix.lower() not in FORMATS:
        raise UsageError(
            f"--out {out!r}: the file name must end in {', '.join(FORMATS)} "
            "(the format is taken from it), e.g. --out lr.png."
        )
    return overrides, multirun, path, log_y


def compose_jobs(overrides: list[str], multirun: bool) -> list[tuple[list[str], DictConfig]]:
    """(overrides, validated config) of every job; every problem of every job reported at once."""
    from trainlab.config.compose import compose_in_context, expand_sweep, hydra_context

    jobs: list[tuple[list[str], DictConfig]] = []
    problems: list[Problem] = []
    with hydra_context() as folder:
        expanded = expand_sweep(overrides)
        if len(expanded) > 1 and not multirun:
            raise UsageError(
                f"the overrides describe {len(expanded)} jobs (a sweep); add -m to draw one "
                "curve per job, e.g. trainlab plot-schedule -m scheduler=step,cosine."
            )
        for job in expanded if multirun else [overrides]:
            try:
                jobs.append((job, compose_in_context(job, folder)))
            except ConfigError as error:
                problems += [p for p in error.problems if p not in problems]
    if problems:
        raise ConfigError(problems)
    return jobs


def label_of(job: list[str], jobs: list[list[str]], cfg: DictConfig) -> str:
    """The overrides that set this job apart from the others, or its optimizer + scheduler."""
    shared = set.intersection(*(set(other) for other in jobs)) if len(jobs) > 1 else set(job)
    differing = [override for override in job if override not in shared]
    if differing:
        return " ".join(differing)
    return f"optimizer={cfg.optimizer.name} scheduler={cfg.scheduler.name}"


def run(args: list[str]) -> int:
    if any(arg in ("-h", "--help") for arg in args):
        print(HELP)
        return 0
    overrides, multirun, out, log_y = parse(args)
    jobs = compose_jobs(overrides, multirun)

    from trainlab.data.datasets import DatasetError
    from trainlab.tools.schedule_plot import draw, lr_curve

    all_overrides = [job for job, _ in jobs]
    curves = []
    for job, cfg in jobs:
        try:
            curves.append(lr_curve(cfg, label_of(job, all_overrides, cfg)))
        except DatasetError as error:
            raise ConfigError([Problem(error.key, str(error))]) from None
    first = jobs[0][1]
    title = f"Learning rate over the run: dataset={first.dataset.name}"
    if len({(c.run.steps_per_epoch, c.run.max_epochs) for c in curves}) == 1:
        run_length = curves[0].run
        title += f", {run_length.max_epochs} epochs x {run_length.steps_per_epoch} steps"
    draw(curves, out, title=title, log_y=log_y)
    for curve in curves:
        print(curve.summary())
    print(f"Saved {out}")
    return 0
