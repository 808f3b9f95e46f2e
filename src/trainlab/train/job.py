"""One training job as Hydra runs it (alone, or as one job of a sweep): validate, build,
track, train, close. Exit codes: 2 bad input, 130/143 interrupted, 1 failure."""

from __future__ import annotations

import os
import sys
import time
import traceback
from typing import Any

from omegaconf import DictConfig

from trainlab.config.errors import ConfigError, Problem
from trainlab.config.schema.optimizer import AUTO_LR
from trainlab.config.validation import validate_config
from trainlab.train.auto_lr import LrFindError, record_auto_lr, resolve_auto_lr
from trainlab.train.recipe import JobContext, TrainingRecipe

SILENT_RANK_GRACE_S = 3.0  # how long a rank other than 0 waits before it exits on bad input


def job_context() -> tuple[JobContext, bool, str]:
    """The job's context from Hydra's runtime config; also whether it is part of a sweep and
    a short label for its output lines."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    from trainlab.tracking.run_tags import COMMAND_ENV
    from trainlab.tracking.sweep_callback import parent_run_id, sweep_facts

    hydra = HydraConfig.get()
    overrides = [str(o) for o in hydra.overrides.task]
    in_sweep = hydra.mode == RunMode.MULTIRUN
    threads = 0
    parent = None
    sweep_name: str | None = None
    swept: list[str] = []
    if in_sweep:
        parent = parent_run_id(hydra.sweep.dir)
        sweep_name, swept = sweep_facts(hydra.sweep.dir)
        jobs = hydra.launcher.get("n_jobs") if "n_jobs" in hydra.launcher else None
        if jobs is not None:  # parallel jobs share the cores instead of each taking all
            cores = os.cpu_count() or 1
            jobs = cores if jobs < 0 else max(1, int(jobs))
            threads = max(1, cores // jobs)
    context = JobContext(
        overrides=overrides,
        parent_run_id=parent,
        command=os.environ.get(COMMAND_ENV, " ".join(sys.argv)),
        threads=threads,
        sweep_name=sweep_name,
        swept=swept,
    )
    if in_sweep:
        from trainlab.sweeps.trial import TrialLink

        context.trial = TrialLink.from_environment(hydra.sweep.dir)
    label = f"job {hydra.job.num}" if in_sweep else ""
    return context, in_sweep, label


def train_job(cfg: DictConfig) -> float | None:
    """Hydra's task function. Returns the best monitored value (for sweepers that optimise)."""
    from trainlab.sweeps.resume import earlier_run

    context, in_sweep, label = job_context()
    if cfg.trainer.threads > 0:
        context.threads = int(cfg.trainer.threads)
    context.resume_run_id = earlier_run(cfg, context, context.trial)
    if context.resume_run_id:
        return continue_run(cfg, context, in_sweep=in_sweep, label=label)
    return run_training(cfg, context, in_sweep=in_sweep, label=label)


def continue_run(
    cfg: DictConfig, context: JobContext, in_sweep: bool = False, label: str = ""
) -> float | None:
    """A sweep's job that ran before (a resumed sweep, a requeued cluster job): a FINISHED
    run is skipped, any other continues from its newest good checkpoint in the same MLflow
    run (from the start, still in that run, if it never wrote one)."""
    from trainlab.tracking.mlflow_tracker import MlflowTracker
    from trainlab.tracking.store import checkpoint_folder, make_client
    from trainlab.train.checkpoint import CheckpointFolder
    from trainlab.train.signals import stop_on_signals

    uri, run_id = str(cfg.tracking.uri), str(context.resume_run_id)
    run = make_client(uri).get_run(run_id)
    monitor = str(cfg.trainer.monitor)
    if run.info.status == "FINISHED":
        best = run.data.metrics.get(f"best/{monitor}")
        print(f"[{label}] FINISHED earlier: run {run_id} ({run.info.run_name}); skipped")
        return None if best is None else float(best)
    folder = CheckpointFolder(checkpoint_folder(run.info.artifact_uri, run_id))
    state = None
    try:
        path, state = folder.newest_good()
    except FileNotFoundError:
        path = None
    if state is not None:
        from omegaconf import OmegaConf

        cfg = OmegaConf.create(state["config"])
    recipe = TrainingRecipe(cfg, context)
    recipe.setup()
    if state is not None:
        recipe.restore(state)
    where = f"step {state['step']} ({path.name})" if state is not None and path else "the start"
    print(f"[{label}] {run.info.status} earlier: resuming run {run_id} from {where}", flush=True)
    with stop_on_signals():
        tracker = MlflowTracker.reopen(
            uri,
            run_id,
            flush_every_s=float(cfg.tracking.flush_every_s),
            warm_up=sender_warm_up(cfg),
        )
        tracker.set_tags({"trainlab.resumed_from": where})
        _link_run(recipe, tracker)
        return train_and_track(
            recipe, tracker, in_sweep=in_sweep, label=label, resumed=state is not None
        )


def _link_run(recipe: TrainingRecipe, tracker: Any) -> None:
    """What a sweep's job ties to its run: the Optuna trial's reporter, and the run id a
    cluster requeue must continue."""
    from trainlab.sweeps.cluster import CURRENT_RUN

    CURRENT_RUN["run_id"] = tracker.run_id
    trial = recipe.context.trial
    if trial is not None:
        recipe.listeners.append(trial.listener(tracker, recipe.monitor))


def run_training(
    cfg: DictConfig, context: JobContext, in_sweep: bool = False, label: str = ""
) -> float | None:
    """Validate, build, track, train and close one run; see the module doc for exit codes.
    Under torchrun (``trainer.strategy=ddp``) every rank runs this; rank 0 records the run."""
    from trainlab.train.distributed import (
        device_for,
        launch_problems,
        resolve_launch,
        start_process_group,
        stop_process_group,
    )

    problems = validate_config(cfg) + launch_problems(cfg)
    if problems:  # before any process group: every rank exits alike, none waits for another
        _exit_bad_input(ConfigError(problems))
    context.launch = resolve_launch(cfg)
    if not context.launch.distributed:
        return _run_in_process(cfg, context, in_sweep, label)
    device = device_for(str(cfg.trainer.device), context.launch)
    assert device is not None
    start_process_group(context.launch, device)
    try:
        return _run_in_process(cfg, context, in_sweep, label)
    finally:
        stop_process_group()


def _run_in_process(
    cfg: DictConfig, context: JobContext, in_sweep: bool, label: str
) -> float | None:
    from trainlab.data.datasets import DatasetError
    from trainlab.train.signals import stop_on_signals

    lr_found = None
    try:
        if cfg.optimizer.lr == AUTO_LR:  # the range test first; train with its pick
            cfg, lr_found = resolve_auto_lr(cfg, context, label)
        recipe = TrainingRecipe(cfg, context)
        recipe.setup()  # before the MLflow run exists: bad data leaves no run behind
    except DatasetError as error:
        _exit_bad_input(ConfigError([Problem(error.key, str(error))]))
    except LrFindError as error:
        _exit_bad_input(ConfigError([Problem("optimizer.lr", str(error))]))

    started = time.monotonic()
    if not context.launch.is_main:
        with stop_on_signals(repeat_grace_s=2.0):
            return train_as_worker(recipe)
    with stop_on_signals(repeat_grace_s=2.0 if context.launch.distributed else 0.0):
        try:
            tracker = _start_tracker(cfg, context)
        except Exception as error:  # the store cannot be opened: nothing was recorded
            problem = Problem(
                "tracking.uri",
                f"cannot open the MLflow store {cfg.tracking.uri}"
                f": {type(error).__name__}: {str(error).splitlines()[0]}",
            )
            _exit_bad_input(ConfigError([problem]))
        if lr_found is not None:
            record_auto_lr(tracker, lr_found, cfg)
        _link_run(recipe, tracker)
        return train_and_track(recipe, tracker, in_sweep=in_sweep, label=label, started=started)


def train_and_track(
    recipe: TrainingRecipe,
    tracker: Any,
    in_sweep: bool = False,
    label: str = "",
    started: float | None = None,
    resumed: bool = False,
) -> float | None:
    """Train a set-up recipe into an open run and close the run with the right status;
    call inside :func:`~trainlab.train.signals.stop_on_signals`."""
    from trainlab.display.progress import make_progress
    from trainlab.display.summary import one_line, print_summary
    from trainlab.doctor.report import short_summary
    from trainlab.doctor.run_end import diagnose_ending_run
    from trainlab.train.recipe import overfit_verdict, summarize
    from trainlab.train.signals import TrainingInterrupted

    started = time.monotonic() if started is None else started
    cfg = recipe.cfg
    recipe.run_id = tracker.run_id
    mode = cfg.trainer.progress
    if in_sweep and mode == "auto" and recipe.context.threads:
        mode = "plain"  # parallel jobs would garble each other's live bars
    display = make_progress(mode, cfg.trainer.max_epochs, len(recipe.parts.batcher), label)
    try:
        if not resumed:
            recipe.record_config(tracker)
        display.start()
        try:
            progress = recipe.train(tracker, display)
        finally:
            display.stop()
        if progress.best_value is not None:
            tracker.log_metrics([(f"best/{recipe.monitor}", progress.best_value, progress.step)])
        verdict = None
        if cfg.trainer.overfit_check:
            passed, verdict = overfit_verdict(progress)
            tracker.set_tags({"trainlab.overfit_check": "passed" if passed else "failed"})
        diagnosis = diagnose_ending_run(tracker, _gradients_of(recipe), "FINISHED")
        tracker.close("FINISHED")
    except TrainingInterrupted as stop:
        if recipe.checkpoints is not None:  # a consistent state: between two steps
            recipe.checkpoints.save_now(recipe.progress)
        tracker.close("KILLED")
        from trainlab.sweeps.cluster import preemption_signal, requeue

        if stop.signum == preemption_signal():
            requeue(stop.signum)  # submitit requeues the job and exits the process
        print(
            f"\nStopped by {stop}; run {tracker.run_id} marked KILLED. Continue it with: "
            f"trainlab resume {tracker.run_id}",
            file=sys.stderr,
        )
        raise SystemExit(stop.exit_code) from None
    except Exception as error:
        failure = traceback.format_exc()
        diagnosis = diagnose_ending_run(tracker, _gradients_of(recipe), "FAILED", failure)
        tracker.close("FAILED", error=failure)
        if in_sweep:
            raise  # Hydra records the job as failed and runs the others
        print(
            f"Training failed: {type(error).__name__}: {error}\n"
            f"Run {tracker.run_id} is marked FAILED; its traceback is the artifact "
            "error.txt (trainlab ui).",
            file=sys.stderr,
        )
        if diagnosis is not None:
            print(short_summary(diagnosis), file=sys.stderr)
        raise SystemExit(1) from None
    summary = summarize(recipe, tracker, "FINISHED", started)
    if in_sweep:  # one line per job; the sweep's table comes at the end
        primary = f", diagnosis: {diagnosis.primary}" if diagnosis is not None else ""
        print(f"[{label}] FINISHED {tracker.run_name}: {one_line(summary)}{primary}", flush=True)
    else:
        print_summary(summary)
        if diagnosis is not None:
            print(short_summary(diagnosis), flush=True)
    if verdict:
        print(verdict, flush=True)
    return progress.best_value


def train_as_worker(recipe: TrainingRecipe) -> float | None:
    """Train a set-up recipe on a rank other than 0: the same steps, nothing recorded
    (rank 0 talks to MLflow and writes the checkpoints), nothing printed but a failure."""
    from trainlab.tracking.base import NullTracker
    from trainlab.train.loop import EpochListener
    from trainlab.train.signals import TrainingInterrupted

    try:
        progress = recipe.train(NullTracker(keep_metrics=False), EpochListener())
    except TrainingInterrupted as stop:
        raise SystemExit(stop.exit_code) from None
    except Exception as error:
        print(
            f"Training failed on rank {recipe.launch.rank}: {type(error).__name__}: {error}",
            file=sys.stderr,
        )
        raise SystemExit(1) from None
    return progress.best_value


def _gradients_of(recipe: TrainingRecipe) -> dict[str, Any] | None:
    """The gradient monitor's samples (what it logged as gradients/gradients.json)."""
    monitor = recipe.gradient_monitor
    return monitor.summary() if monitor is not None and monitor.steps else None


def _start_tracker(cfg: DictConfig, context: JobContext) -> Any:
    from trainlab.tracking.mlflow_tracker import MlflowTracker
    from trainlab.tracking.run_tags import run_name_from, source_tags
    from trainlab.tracking.sweep_callback import SWEEP_TAG
    from trainlab.train import heatmap

    uri = str(cfg.tracking.uri)
    if uri.startswith(("http://", "https://")):
        _ping_server(uri)
    if context.parent_run_id and cfg.trainer.gradient_monitor.every_n_steps:
        # Several jobs run in this process: prepare what the metric sender draws with once
        # here, and every job's forked sender has it, instead of each importing it again
        # on a core that a parallel job is training on.
        heatmap.warm_up()
    # A run of the defaults is named by what it trains, not by MLflow's random words.
    name = (
        cfg.tracking.run_name
        or run_name_from(context.overrides, context.swept)
        or f"{cfg.model.name} on {cfg.dataset.name}"
    )
    tags = {**source_tags(), "trainlab.overrides": " ".join(context.overrides)}
    if context.sweep_name:  # the UI groups, filters and charts a sweep's runs by this tag
        tags[SWEEP_TAG] = context.sweep_name
    if context.command:
        tags["trainlab.command"] = context.command
    return MlflowTracker(
        uri=str(cfg.tracking.uri),
        experiment=str(cfg.tracking.experiment),
        run_name=name,
        tags=tags,
        parent_run_id=context.parent_run_id,
        flush_every_s=float(cfg.tracking.flush_every_s),
        warm_up=sender_warm_up(cfg),
    )


def sender_warm_up(cfg: DictConfig) -> str:
    """What the run's metric sender prepares as it starts: the gradient heat map's imports
    when the run will draw one (see :func:`trainlab.train.heatmap.warm_up`)."""
    from omegaconf import OmegaConf

    from trainlab.train.heatmap import WARM_UP

    # A checkpoint's config from before the gradient monitor existed lacks the key.
    every = OmegaConf.select(cfg, "trainer.gradient_monitor.every_n_steps", default=0)
    return WARM_UP if every else ""


def _ping_server(uri: str) -> None:
    """Fail in seconds, not after MLflow's minutes of retries, when no server answers."""
    import urllib.request

    try:
        with urllib.request.urlopen(f"{uri.rstrip('/')}/health", timeout=10):
            return
    except OSError as error:
        raise ConnectionError(
            f"no MLflow server answers there ({error}); start one with `mlflow server` or "
            "train with the local store: tracking=local"
        ) from None


def _exit_bad_input(error: ConfigError) -> None:
    if os.environ.get("RANK", "0") == "0":  # under torchrun every rank exits 2; one speaks
        print(error.render(), file=sys.stderr, flush=True)
    else:
        # torchrun stops the other ranks as soon as one exits: a silent rank gives rank 0 a
        # moment to print first (seen in CI: rank 1 out first, rank 0 stopped before it spoke).
        time.sleep(SILENT_RANK_GRACE_S)
    raise SystemExit(2)
