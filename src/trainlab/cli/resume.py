"""``trainlab resume RUN_ID``: continue a run from its newest good checkpoint, into the same
MLflow run (RUNNING again, then FINISHED), also after a SIGKILL left it RUNNING."""

from __future__ import annotations

import sys
from typing import Any

from trainlab.config.errors import UsageError

HELP = """usage: trainlab resume RUN_ID [tracking.uri=URI] [trainer.strategy=auto|single|ddp]

Continues run RUN_ID from its newest checkpoint that loads (last.pt, else older step files)
with the config it was started with, into the same MLflow run. Weights, optimizer, schedule,
counters, early-stopping state, every RNG and the position in the data are restored, so with
trainer.deterministic=true on the CPU the result is bit-identical to an uninterrupted run.

A data-parallel run resumes under torchrun, with any number of processes that divides
trainer.batch_size (torchrun --standalone --nproc_per_node=2 -m trainlab resume RUN_ID), or
in one process with trainer.strategy=single."""


def run(args: list[str]) -> int:
    if not args or args[0] in ("-h", "--help"):
        print(HELP)
        return 0 if args else 2
    from trainlab import fork_server

    fork_server.start_for_senders()  # imports while this process loads the checkpoint
    try:
        return resume(args[0], args[1:])
    finally:
        fork_server.stop(fork_server.METRIC_SENDERS)


def resume(run_id: str, overrides: list[str]) -> int:
    strategy = [o.split("=", 1)[1] for o in overrides if o.startswith("trainer.strategy=")]
    overrides = [o for o in overrides if not o.startswith("trainer.strategy=")]
    from omegaconf import OmegaConf, open_dict

    from trainlab.config.compose import compose_config
    from trainlab.config.errors import ConfigError
    from trainlab.tracking.store import checkpoint_folder, make_client
    from trainlab.train.checkpoint import CheckpointFolder
    from trainlab.train.distributed import (
        device_for,
        launch_problems,
        resolve_launch,
        start_process_group,
        stop_process_group,
    )
    from trainlab.train.recipe import JobContext

    uri = str(compose_config(overrides).tracking.uri)
    client = make_client(uri)
    try:
        run = client.get_run(run_id)
    except Exception:
        raise UsageError(
            f"there is no run {run_id!r} in the store {uri}; copy the run id "
            "from the summary table or the MLflow UI (trainlab ui)."
        ) from None
    if run.info.status == "FINISHED":
        raise UsageError(f"run {run_id} already FINISHED; there is nothing to resume.")
    folder = CheckpointFolder(checkpoint_folder(run.info.artifact_uri, run_id))
    try:
        path, state = folder.newest_good()
    except FileNotFoundError as error:
        raise UsageError(f"cannot resume run {run_id}: {error}.") from None
    cfg = OmegaConf.create(state["config"])
    with open_dict(cfg):  # checkpoints from before trainer.strategy existed lack the key
        cfg.trainer.strategy = strategy[-1] if strategy else cfg.trainer.get("strategy", "auto")
    problems = launch_problems(cfg)
    if problems:
        raise ConfigError(problems)
    launch = resolve_launch(cfg)
    if launch.is_main:
        print(
            f"Resuming run {run_id} from {path} (epoch {state['epoch']}, step {state['step']}).",
            flush=True,
        )
    overrides_tag = run.data.tags.get("trainlab.overrides", "")
    context = JobContext(
        overrides=overrides_tag.split(), command=f"trainlab resume {run_id}", launch=launch
    )
    if launch.distributed:
        device = device_for(str(cfg.trainer.device), launch)
        assert device is not None
        start_process_group(launch, device)
    try:
        resume_into(recipe_of(cfg, context, state), uri, run_id, path.name, state)
    finally:
        stop_process_group()
    sys.stdout.flush()
    return 0


def recipe_of(cfg: Any, context: Any, state: dict[str, Any]) -> Any:
    from trainlab.train.recipe import TrainingRecipe

    recipe = TrainingRecipe(cfg, context)
    recipe.setup()
    recipe.restore(state)
    return recipe


def resume_into(recipe: Any, uri: str, run_id: str, source: str, state: dict[str, Any]) -> None:
    """Train the restored ``recipe`` on into run ``run_id`` (rank 0; other ranks train along
    without recording)."""
    import os

    from omegaconf import OmegaConf

    from trainlab.tracking.mlflow_tracker import MlflowTracker
    from trainlab.tracking.run_tags import COMMAND_ENV
    from trainlab.train.job import sender_warm_up, train_and_track, train_as_worker
    from trainlab.train.signals import stop_on_signals

    cfg = recipe.cfg
    grace = 2.0 if recipe.launch.distributed else 0.0
    if not recipe.launch.is_main:
        with stop_on_signals(repeat_grace_s=grace):
            train_as_worker(recipe)
        return
    os.environ[COMMAND_ENV] = f"trainlab resume {run_id}"
    with stop_on_signals(repeat_grace_s=grace):
        # Checkpoints written before tracking.flush_every_s existed lack the key.
        flush_every_s = float(OmegaConf.select(cfg, "tracking.flush_every_s", default=1.0))
        tracker = MlflowTracker.reopen(
            uri, run_id, flush_every_s=flush_every_s, warm_up=sender_warm_up(cfg)
        )
        tracker.set_tags({"trainlab.resumed_from": f"step {state['step']} ({source})"})
        train_and_track(recipe, tracker, resumed=True)
