"""``trainlab train [OVERRIDES] [-m]``: Hydra's full command line, checked before it runs.

Every job's config (all of a sweep's, for a grid) is composed and validated first, so a typo
fails in a second with exit code 2 instead of after the first jobs have trained. Then Hydra
takes over: ``--cfg job``, ``--info``, ``-cd``, ``choice()``, ``range()``, ``glob()``,
launchers and sweepers all work as documented by Hydra.
"""

from __future__ import annotations

import os
import shlex
import signal
import sys
import threading
from pathlib import Path

from omegaconf import DictConfig

from trainlab.config.errors import ConfigError, Problem, UsageError

# Hydra flags that inspect rather than run: no pre-validation needed.
INSPECTING_FLAGS = ("help", "hydra_help", "cfg", "info", "shell_completion", "version")


def _parse(args: list[str]) -> object:
    from hydra._internal.utils import get_args_parser

    parser = get_args_parser()
    parser.prog = "trainlab train"
    try:
        return parser.parse_args(args)
    except SystemExit as exit_:
        if exit_.code not in (0, None):
            raise UsageError("see `trainlab train --help` for the command line.") from None
        raise


def validate_command_line(args: list[str]) -> list[DictConfig]:
    """The validated config of every job the command line would run (one without -m)."""
    from trainlab.config.compose import SweepComposer, expand_sweep, hydra_context

    parsed = _parse(args)
    directory = getattr(parsed, "config_dir", None)
    overrides: list[str] = list(getattr(parsed, "overrides", []))
    with hydra_context(Path(directory) if directory else None) as folder:
        jobs = expand_sweep(overrides) if getattr(parsed, "multirun", False) else [overrides]
        configs: list[DictConfig] = []
        problems: list[Problem] = []
        composer = SweepComposer(folder)
        for job in jobs:
            try:
                configs.append(composer.compose(job))
            except ConfigError as error:
                problems += [p for p in error.problems if p not in problems]
        if getattr(parsed, "multirun", False):  # a Bayesian sweep: every bound and choice
            from trainlab.sweeps.search_space import bayesian_sweep_problems

            problems += [p for p in bayesian_sweep_problems(overrides, folder) if p not in problems]
    if problems:
        raise ConfigError(problems)
    return configs


def run(args: list[str]) -> int:
    parsed = _parse(args)
    inspecting = [f for f in ("cfg", "info", "shell_completion") if getattr(parsed, f, None)]
    if getattr(parsed, "multirun", False) and inspecting:
        raise UsageError(
            f"-m (a sweep) cannot be combined with --{inspecting[0].replace('_', '-')}: drop -m "
            "to inspect one job (`trainlab train OVERRIDES --cfg job`), or run `trainlab "
            "validate -m OVERRIDES` to check every job of the sweep."
        )
    if getattr(parsed, "multirun", False) and int(os.environ.get("WORLD_SIZE", "1")) > 1:
        raise UsageError(
            "-m (a sweep) does not run under torchrun: every process would launch the whole "
            "sweep. Run each job of the sweep with torchrun, or sweep without torchrun."
        )
    if not any(getattr(parsed, flag, None) for flag in INSPECTING_FLAGS):
        _start_fork_server(parsed)
        try:
            validate_command_line(args)
        except BaseException:
            _stop_idle_workers()
            raise
    from trainlab.tracking.run_tags import COMMAND_ENV
    from trainlab.tracking.sweep_callback import CLOSED_SWEEPS, close_open_sweeps
    from trainlab.train.signals import TrainingInterrupted

    os.environ[COMMAND_ENV] = "trainlab train " + " ".join(shlex.quote(a) for a in args)
    interrupted = False
    # SIGTERM outside a job's own handler (a sweep between jobs, or waiting for parallel
    # workers) must still close the sweep, not kill the process where it stands.
    main_thread = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, _raise_interrupted) if main_thread else None
    try:
        _hydra_main(args)
    except SystemExit as exit_:
        interrupted = exit_.code in (130, 143)
        return int(exit_.code) if isinstance(exit_.code, int) else 1
    except KeyboardInterrupt:
        interrupted = True
        return 130
    except TrainingInterrupted as stop:
        interrupted = True
        return stop.exit_code
    finally:
        if main_thread:
            signal.signal(signal.SIGTERM, previous)
        close_open_sweeps(interrupted=interrupted)
        while CLOSED_SWEEPS:
            _print_sweep(*CLOSED_SWEEPS.pop(0))
        _stop_idle_workers()
    return 0


def _start_fork_server(parsed: object) -> None:
    """Start the fork server now, so that it imports while this process validates the jobs
    and creates the store: for a sweep on ``hydra/launcher=parallel``, its workers (they
    import torch and trainlab, ~2 s sooner than the sweep callback could start them); for
    jobs that train in this process, their metric senders (see :mod:`trainlab.fork_server`;
    a sweep that picks the parallel launcher in its config replaces it with the workers')."""
    from trainlab import fork_server

    if getattr(parsed, "multirun", False):
        from hydra_plugins.trainlab_plugins.parallel_launcher import (
            requested_workers,
            start_workers,
        )

        n_jobs = requested_workers(list(getattr(parsed, "overrides", [])))
        if n_jobs is not None:
            start_workers(n_jobs)
            return
    fork_server.start_for_senders()


def _stop_idle_workers() -> None:
    """Stop a parallel sweep's worker processes, and the metric senders' fork server, now
    that every job has ended its run (or the sweep was stopped or rejected), rather than at
    interpreter exit."""
    from trainlab import fork_server

    module = sys.modules.get("hydra_plugins.trainlab_plugins.parallel_launcher")
    if module is not None:
        module.stop_workers()
    fork_server.stop(fork_server.METRIC_SENDERS)


def _raise_interrupted(signum: int, frame: object) -> None:
    from trainlab.train.signals import TrainingInterrupted

    raise TrainingInterrupted(signum)


def _print_sweep(parent_id: str, uri: str, status: str) -> None:
    from trainlab.display.summary import ui_command
    from trainlab.display.sweep_table import print_sweep_table
    from trainlab.tools.compare import child_runs, rank_runs
    from trainlab.tracking.store import make_client

    client = make_client(uri)
    parent = client.get_run(parent_id)
    monitor = parent.data.tags.get("trainlab.monitor", "val/loss")
    mode = parent.data.tags.get("trainlab.mode", "auto")
    children = child_runs(client, parent_id)
    rows = rank_runs(children, monitor, mode)
    pruned = {c.info.run_id for c in children if c.data.tags.get("trainlab.pruned") == "true"}
    for row in rows:  # a pruned trial's run FINISHED on purpose; the table says why it is short
        row.status = "PRUNED" if row.run_id in pruned else row.status
    title = (
        f"{parent.info.run_name} ({parent_id}): {status}, {len(rows)} runs, best "
        f"{monitor} first. Browse: {ui_command(uri)}"
    )
    print_sweep_table(title, rows, f"best {monitor}")


def _hydra_main(args: list[str]) -> None:
    import hydra

    from trainlab.config.paths import config_dir
    from trainlab.config.schema import register_schemas

    register_schemas()
    entry = hydra.main(config_path=str(config_dir()), config_name="train", version_base="1.3")(
        train_task
    )
    saved = sys.argv
    sys.argv = ["trainlab-train", *args]
    try:
        entry()
    finally:
        sys.argv = saved


def train_task(cfg: DictConfig) -> float | None:
    """Hydra's task function: one job. Torch is imported here, by whichever process runs the
    job, so the launching process of a parallel sweep never imports it (nor pays for it
    before its workers start)."""
    from trainlab.train.job import train_job

    return train_job(cfg)
