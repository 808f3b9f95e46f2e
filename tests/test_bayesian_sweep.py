"""Bayesian search with pruning (``hydra/sweeper=trainlab_optuna``) through the real CLI and a
real sqlite MLflow store and Optuna study: TPE trials as child runs, pruned trials FINISHED
and tagged, the study beside the store and continued by the same command; a bad search space
fails before anything is recorded. The parser of the search space is tested on its own."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from helpers import all_runs, client_for, explain, metric_steps, run_cli
from trainlab.sweeps.search_space import parse_search_space

EPOCHS = 4
SEARCH = (
    "-m",
    "hparams_search=lr_wd",
    f"trainer.max_epochs={EPOCHS}",
    "trainer.limit_train_batches=4",
    "trainer.progress=none",
    "model.hidden_sizes=[16]",
    # a space wide enough that some trials are hopeless at epoch 1
    "optimizer=choice(adam,sgd)",
    "optimizer.lr=tag(log, interval(1e-5, 1e-1))",
    "hydra.sweeper.sampler.n_startup_trials=3",
    "hydra.sweeper.pruner.n_startup_trials=2",
    "hydra.sweeper.pruner.n_warmup_steps=0",
)


def _study(folder: Path) -> object:
    import optuna

    storage = f"sqlite:///{folder / 'outputs' / 'optuna.db'}"
    (summary,) = optuna.get_all_study_summaries(storage)
    return optuna.load_study(study_name=summary.study_name, storage=storage)


@pytest.mark.slow
def test_bayesian_search_prunes_trials_and_continues_the_study(tmp_path: Path) -> None:
    from optuna.trial import TrialState

    uri = f"sqlite:///{tmp_path / 'outputs' / 'mlflow.db'}"
    done = run_cli("train", *SEARCH, "hydra.sweeper.n_trials=6", cwd=tmp_path)
    assert done.returncode == 0, explain(done)
    assert "Traceback" not in done.stderr, explain(done)
    assert (tmp_path / "outputs" / "optuna.db").is_file(), "the study lives beside mlflow.db"

    runs = all_runs(uri)
    (parent,) = [r for r in runs if r.data.tags.get("trainlab.role") == "sweep"]
    children = [r for r in runs if r is not parent]
    assert parent.info.status == "FINISHED"
    assert len(children) == 6
    assert {c.info.status for c in children} == {"FINISHED"}

    study = _study(tmp_path)
    trials = {str(t.number): t for t in study.trials}
    assert len(trials) == 6
    client = client_for(uri)
    pruned = 0
    for child in children:
        trial = trials[child.data.tags["trainlab.optuna_trial"]]
        assert trial.user_attrs["mlflow_run_id"] == child.info.run_id
        # the trial trained what it sampled
        assert child.data.params["optimizer.name"] == trial.params["optimizer"]
        assert math.isclose(
            float(child.data.params["optimizer.lr"]), trial.params["optimizer.lr"], rel_tol=1e-5
        )
        epochs = len(metric_steps(client, child.info.run_id, "val/acc"))
        if child.data.tags.get("trainlab.pruned") == "true":
            pruned += 1
            assert trial.state == TrialState.PRUNED
            assert epochs < EPOCHS, "a pruned trial stops early"
            assert int(child.data.tags["trainlab.pruned_at_epoch"]) == epochs
            # the pruner saw every epoch the run recorded
            assert sorted(trial.intermediate_values) == list(range(1, epochs + 1))
        else:
            assert trial.state == TrialState.COMPLETE
            assert epochs == EPOCHS
            assert trial.value == pytest.approx(child.data.metrics["best/val/acc"])
    assert pruned >= 1, "the median pruner stopped no trial"
    assert done.stdout.count("PRUNED") == pruned, done.stdout
    assert study.direction.name == "MAXIMIZE", "val/acc is maximised"

    # The same command again, with a larger total: the study goes on under the same parent.
    again = run_cli("train", *SEARCH, "hydra.sweeper.n_trials=8", cwd=tmp_path)
    assert again.returncode == 0, explain(again)
    runs_after = all_runs(uri)
    parents = [r for r in runs_after if r.data.tags.get("trainlab.role") == "sweep"]
    assert [p.info.run_id for p in parents] == [parent.info.run_id]
    children_after = [r for r in runs_after if r.info.run_id != parent.info.run_id]
    assert len(children_after) == 8
    assert {c.info.run_id for c in children} <= {c.info.run_id for c in children_after}
    assert len(_study(tmp_path).trials) == 8

    # And once more with the same total: nothing left to run.
    third = run_cli("train", *SEARCH, "hydra.sweeper.n_trials=8", cwd=tmp_path)
    assert third.returncode == 0, explain(third)
    assert len(all_runs(uri)) == 9


def test_a_bad_search_space_fails_before_anything_is_recorded(tmp_path: Path) -> None:
    done = run_cli(
        "train",
        "-m",
        "hparams_search=lr_wd",
        "optimizer.lr=tag(log, interval(0, 0.1))",
        "optimizer.weight_decay=interval(-1, 0.1)",
        "optimizer.lrr=tag(log, interval(1e-4, 0.1))",
        "hydra.sweeper.pruner.name=medain",
        cwd=tmp_path,
    )
    assert done.returncode == 2, explain(done)
    assert "Traceback" not in done.stderr
    assert "a log scale needs a lower bound above 0" in done.stderr
    assert "optimizer.weight_decay: -1.0 is not allowed; expected >= 0" in done.stderr
    assert "unknown key 'lrr'" in done.stderr and "Did you mean 'lr'?" in done.stderr
    assert "no pruner 'medain'" in done.stderr and "Did you mean 'median'?" in done.stderr
    assert not (tmp_path / "outputs").exists(), "no store, no study, no run"


def test_the_search_space_grammar_maps_to_optuna_distributions() -> None:
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

    space, problems = parse_search_space(
        {
            "optimizer.lr": "tag(log, interval(1e-4, 1e-1))",
            "model.dropout": "interval(0, 0.5)",
            "model.depth": "tag(int, interval(1, 4))",
            "trainer.batch_size": "range(32, 257, 32)",
            "optimizer": "choice(adam, sgd)",
            "model.hidden_sizes": "choice([64], [64,64])",
        },
        ["optimizer=adamw,sgd", "trainer.max_epochs=3"],
    )
    assert problems == []
    dims = {d.key: d.distribution() for d in space.dimensions}
    assert dims["optimizer.lr"] == FloatDistribution(1e-4, 1e-1, log=True)
    assert dims["model.dropout"] == FloatDistribution(0.0, 0.5)
    assert dims["model.depth"] == IntDistribution(1, 4)
    assert dims["trainer.batch_size"] == IntDistribution(32, 256, step=32)
    # the command line's sweep wins over the preset's
    assert dims["optimizer"] == CategoricalDistribution(["adamw", "sgd"])
    assert dims["model.hidden_sizes"] == CategoricalDistribution(["[64]", "[64,64]"])
    assert space.fixed == ["trainer.max_epochs=3"]
    overrides = space.trial_overrides(
        {
            "optimizer.lr": 0.00123456789,
            "model.dropout": 0.1,
            "model.depth": 2,
            "trainer.batch_size": 64,
            "optimizer": "sgd",
            "model.hidden_sizes": "[64,64]",
        }
    )
    assert "optimizer.lr=0.00123457" in overrides and "model.hidden_sizes=[64,64]" in overrides


@pytest.mark.parametrize(
    ("written", "expected"),
    [
        ("interval(0.1, 0.01)", "the lower bound must be below the upper bound"),
        ("tag(log, interval(0, 1))", "a log scale needs a lower bound above 0"),
        ("tag(int, interval(1.5, 4))", "tagged int but its bounds are not integers"),
        ("choice(adam)", "at least two different choices"),
        ("range(5, 1)", "holds no value"),
        ("tag(lgo, interval(1, 2))", "unknown tag 'lgo'"),
        ("interval(1,", "cannot parse"),
    ],
)
def test_a_badly_written_search_space_is_a_problem_with_its_key(
    written: str, expected: str
) -> None:
    _, problems = parse_search_space({"optimizer.lr": written}, [])
    assert len(problems) == 1, problems
    assert problems[0].key == "hydra.sweeper.params.optimizer.lr"
    assert expected in problems[0].message


@pytest.mark.slow
def test_a_trial_stopped_mid_run_is_resumed_into_its_run_when_the_command_runs_again(
    tmp_path: Path,
) -> None:
    import signal
    import subprocess

    from optuna.trial import TrialState

    from helpers import cli_command, cli_env, wait_for_step_checkpoints

    steps_per_epoch, epochs = 23, 20  # long enough that trial 1 is mid-run at the signal
    args = (
        "-m",
        "hparams_search=lr_wd",
        f"trainer.max_epochs={epochs}",
        "trainer.progress=none",
        "model.hidden_sizes=[16]",
        "trainer.checkpoint_every_n_steps=5",
        "trainer.keep_last_checkpoints=100",
        "hydra.sweeper.n_trials=3",
        "hydra.sweeper.pruner.name=none",
    )
    process = subprocess.Popen(
        cli_command("train", *args),
        cwd=tmp_path,
        env=cli_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        # trial 0 has finished and trial 1 is early in its first epoch
        wait_for_step_checkpoints(process, tmp_path, 10, 2, "too early")
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=120) == 143
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    study = _study(tmp_path)
    states = [t.state for t in study.trials]
    assert states == [TrialState.COMPLETE, TrialState.RUNNING], states
    stopped_run = study.trials[1].user_attrs["mlflow_run_id"]
    uri = f"sqlite:///{tmp_path / 'outputs' / 'mlflow.db'}"
    assert client_for(uri).get_run(stopped_run).info.status == "KILLED"

    done = run_cli("train", *args, cwd=tmp_path)
    assert done.returncode == 0, explain(done)
    study = _study(tmp_path)
    assert [t.state for t in study.trials] == [TrialState.COMPLETE] * 3
    assert study.trials[1].user_attrs["mlflow_run_id"] == stopped_run
    runs = all_runs(uri)
    assert len(runs) == 4, "one parent, three trials: the stopped one went on in its own run"
    resumed = client_for(uri).get_run(stopped_run)
    assert resumed.info.status == "FINISHED"
    assert resumed.data.tags["trainlab.resumed_from"].startswith("step ")
    steps = metric_steps(client_for(uri), stopped_run, "train/loss")
    assert steps == list(range(1, epochs * steps_per_epoch + 1))
    assert study.trials[1].value == pytest.approx(resumed.data.metrics["best/val/acc"])


@pytest.mark.slow
def test_trials_in_joblib_workers_report_to_the_shared_study(tmp_path: Path) -> None:
    from optuna.trial import TrialState

    done = run_cli(
        "train",
        *SEARCH,
        "hydra/launcher=joblib",
        "hydra.launcher.n_jobs=2",
        "hydra.sweeper.n_jobs=2",
        "hydra.sweeper.n_trials=4",
        cwd=tmp_path,
    )
    assert done.returncode == 0, explain(done)
    assert "Traceback" not in done.stderr and "database is locked" not in done.stderr
    uri = f"sqlite:///{tmp_path / 'outputs' / 'mlflow.db'}"
    client = client_for(uri)
    children = [r for r in all_runs(uri) if r.data.tags.get("trainlab.role") != "sweep"]
    assert len(children) == 4
    study = _study(tmp_path)
    assert {t.state for t in study.trials} <= {TrialState.COMPLETE, TrialState.PRUNED}
    for trial in study.trials:  # every epoch a worker trained reached the study
        run_id = trial.user_attrs["mlflow_run_id"]
        epochs = len(metric_steps(client, run_id, "val/acc"))
        assert sorted(trial.intermediate_values) == list(range(1, epochs + 1))
