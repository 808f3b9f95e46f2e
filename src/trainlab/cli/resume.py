"""``trainlab resume RUN_ID``: continue a run from its newest good checkpoint, into the same
MLflow run (RUNNING again, then FINISHED), also after a SIGKILL left it RUNNING."""

from __future__ import annotations

import sys

from trainlab.config.errors import UsageError

HELP = """usage: trainlab resume RUN_ID [tracking.uri=URI]

Continues run RUN_ID from its newest checkpoint that loads (last.pt, else older step files)
with the config it was started with, into the same MLflow run. Weights, optimizer, schedule,
counters, early-stopping state, every RNG and the position in the data are restored, so with
trainer.deterministic=true on the CPU the result is bit-identical to an uninterrupted run."""


def run(args: list[str]) -> int:
    if not args or args[0] in ("-h", "--help"):
        print(HELP)
        return 0 if args else 2
    run_id, overrides = args[0], args[1:]
    from omegaconf import OmegaConf

    from trainlab.config.compose import compose_config
    from trainlab.tracking.mlflow_tracker import MlflowTracker
    from trainlab.tracking.run_tags import COMMAND_ENV
    from trainlab.tracking.store import checkpoint_folder, make_client
    from trainlab.train.checkpoint import CheckpointFolder
    from trainlab.train.job import train_and_track
    from trainlab.train.recipe import GRADIENT_ARTIFACT_MODULES, JobContext, TrainingRecipe
    from trainlab.train.signals import stop_on_signals

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
    print(
        f"Resuming run {run_id} from {path} (epoch {state['epoch']}, step {state['step']}).",
        flush=True,
    )
    cfg = OmegaConf.create(state["config"])
    overrides_tag = run.data.tags.get("trainlab.overrides", "")
    context = JobContext(overrides=overrides_tag.split(), command=f"trainlab resume {run_id}")
    recipe = TrainingRecipe(cfg, context)
    recipe.setup()
    recipe.restore(state)
    import os

    os.environ[COMMAND_ENV] = f"trainlab resume {run_id}"
    with stop_on_signals():
        # Checkpoints written before tracking.flush_every_s existed lack the key.
        flush_every_s = float(OmegaConf.select(cfg, "tracking.flush_every_s", default=1.0))
        monitored = bool(OmegaConf.select(cfg, "trainer.gradient_monitor.every_n_steps"))
        tracker = MlflowTracker.reopen(
            uri,
            run_id,
            flush_every_s=flush_every_s,
            preload=GRADIENT_ARTIFACT_MODULES if monitored else (),
        )
        tracker.set_tags({"trainlab.resumed_from": f"step {state['step']} ({path.name})"})
        train_and_track(recipe, tracker, resumed=True)
    sys.stdout.flush()
    return 0
