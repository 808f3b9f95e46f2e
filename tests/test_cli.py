"""The real ``trainlab`` command line in a subprocess: help, list, validate, and bad input that
must fail fast with exit code 2, a short message, no traceback and no run left in the store."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from helpers import all_runs, cli_env, config_groups, explain, sqlite_uri, write_classification_csv

RunCli = Callable[..., subprocess.CompletedProcess[str]]


def test_help_lists_the_commands(run_cli: RunCli, tmp_path: Path) -> None:
    done = run_cli("--help", cwd=tmp_path)
    assert done.returncode == 0, explain(done)
    for command in ("train", "list", "validate", "ui"):
        assert f"\n  {command} " in done.stdout
    assert "Exit codes" in done.stdout
    assert done.stderr == ""


def test_no_arguments_prints_the_usage(run_cli: RunCli, tmp_path: Path) -> None:
    done = run_cli(cwd=tmp_path)
    assert done.returncode == 0, explain(done)
    assert done.stdout.startswith("usage: trainlab <command>")


def test_version(run_cli: RunCli, tmp_path: Path) -> None:
    import trainlab

    done = run_cli("--version", cwd=tmp_path)
    assert done.returncode == 0, explain(done)
    assert done.stdout.strip() == f"trainlab {trainlab.__version__}"


def test_unknown_command_exits_2_with_a_suggestion(run_cli: RunCli, tmp_path: Path) -> None:
    done = run_cli("trian", cwd=tmp_path)
    assert done.returncode == 2, explain(done)
    assert "unknown command 'trian'" in done.stderr
    assert "Did you mean 'train'?" in done.stderr
    assert "Traceback" not in done.stderr


def test_list_shows_every_option_of_every_group(run_cli: RunCli, tmp_path: Path) -> None:
    done = run_cli("list", cwd=tmp_path)
    assert done.returncode == 0, explain(done)
    lines = done.stdout.splitlines()
    for group, options in config_groups().items():
        assert f"{group}:" in lines, f"group {group} missing from `trainlab list`"
        for option in options:
            assert any(line.strip().split()[:1] == [option] for line in lines), option


def test_list_optimizer_shows_each_option_with_its_description(
    run_cli: RunCli, tmp_path: Path
) -> None:
    done = run_cli("list", "optimizer", cwd=tmp_path)
    assert done.returncode == 0, explain(done)
    lines = [line.strip() for line in done.stdout.splitlines() if line.strip()]
    assert lines[0] == "optimizer:"
    described = {line.split()[0]: line.split(None, 1)[1] for line in lines[1:]}
    assert set(described) == set(config_groups()["optimizer"])
    assert {"sgd", "adam", "adamw"} <= set(described)
    # The description is the second header line of each YAML file.
    assert described["sgd"].startswith("SGD with momentum")
    assert described["adam"].startswith("Adam:")
    assert described["adamw"].startswith("AdamW:")
    assert "dataset:" not in done.stdout


def test_list_unknown_group_exits_2(run_cli: RunCli, tmp_path: Path) -> None:
    done = run_cli("list", "optimiser", cwd=tmp_path)
    assert done.returncode == 2, explain(done)
    assert "Did you mean 'optimizer'?" in done.stderr
    assert "Traceback" not in done.stderr


# Runs trainlab's real main() and reports which heavy modules the command imported.
_IMPORT_PROBE = """
import sys
from trainlab.cli.main import main
code = main(sys.argv[1:])
print("HEAVY", code, *(name in sys.modules for name in ("torch", "mlflow")))
"""


@pytest.mark.parametrize(
    "args",
    [["--help"], ["list"], ["list", "optimizer"], ["--version"], ["compare", "--help"]],
    ids=" ".join,
)
def test_light_commands_import_neither_torch_nor_mlflow(args: list[str], tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-c", _IMPORT_PROBE, *args],
        cwd=tmp_path,
        env=cli_env(),
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, explain(done)
    report = done.stdout.strip().splitlines()[-1].split()
    assert report == ["HEAVY", "0", "False", "False"], report


def test_the_import_probe_does_see_heavy_imports(tmp_path: Path) -> None:
    """The probe above is able to fail: a command that needs torch shows it (checking a CUDA
    device asks torch)."""
    done = subprocess.run(
        [sys.executable, "-c", _IMPORT_PROBE, "validate", "trainer.device=cuda"],
        cwd=tmp_path,
        env=cli_env(),
        capture_output=True,
        text=True,
        check=False,
    )
    report = done.stdout.strip().splitlines()[-1].split()
    assert report[0] == "HEAVY" and report[2] == "True", explain(done)


def test_train_cfg_job_prints_the_config_and_trains_nothing(
    run_cli: RunCli, tmp_path: Path
) -> None:
    uri = sqlite_uri(tmp_path)
    done = run_cli("train", "--cfg", "job", "optimizer=sgd", f"tracking.uri={uri}", cwd=tmp_path)
    assert done.returncode == 0, explain(done)
    assert "name: sgd" in done.stdout
    assert "max_epochs: 20" in done.stdout
    assert not (tmp_path / "mlflow.db").exists(), "--cfg job inspects; it must not run"


def test_validate_good_config_exits_0_and_prints_it(run_cli: RunCli, tmp_path: Path) -> None:
    done = run_cli("validate", "optimizer=sgd", "optimizer.lr=0.05", cwd=tmp_path)
    assert done.returncode == 0, explain(done)
    assert "Config OK (1 job checked)." in done.stdout
    assert "name: sgd" in done.stdout
    assert "lr: 0.05" in done.stdout
    assert not (tmp_path / "outputs").exists(), "validate must not run anything"


def test_validate_sweep_checks_every_job(run_cli: RunCli, tmp_path: Path) -> None:
    done = run_cli("validate", "-m", "optimizer=sgd,adam", "optimizer.lr=0.1,0.01", cwd=tmp_path)
    assert done.returncode == 0, explain(done)
    assert "Config OK (4 jobs checked)." in done.stdout


def test_validate_reports_every_problem_and_exits_2(run_cli: RunCli, tmp_path: Path) -> None:
    done = run_cli(
        "validate", "trainer.max_epoch=3", "optimizer.lr=-1", "model.dropout=1.5", cwd=tmp_path
    )
    assert done.returncode == 2, explain(done)
    assert "3 problems found" in done.stderr
    assert "trainer.max_epoch: unknown key 'max_epoch'" in done.stderr
    assert "Did you mean 'max_epochs'?" in done.stderr
    assert "optimizer.lr: " in done.stderr
    assert "model.dropout: " in done.stderr
    assert "Traceback" not in done.stderr + done.stdout


def test_validate_missing_required_keys_exits_2(run_cli: RunCli, tmp_path: Path) -> None:
    done = run_cli("validate", "dataset=csv", cwd=tmp_path)
    assert done.returncode == 2, explain(done)
    assert "dataset.path: is required" in done.stderr
    assert "dataset.target: is required" in done.stderr
    assert "Traceback" not in done.stderr


# (arguments after `trainlab train`, a key and a hint the message must show). They all fail
# before training, so each costs about a second.
CLI_BAD_INPUTS = [
    pytest.param(["trainer.max_epoch=3"], ["trainer.max_epoch", "max_epochs"], id="typo-key"),
    pytest.param(["optimizer.lr=abc"], ["optimizer.lr", "'abc'"], id="wrong-type"),
    pytest.param(["optimizer=adm"], ["optimizer", "Did you mean 'adam'?"], id="unknown-option"),
    pytest.param(["optimizer.lr=-0.1"], ["optimizer.lr", "> 0"], id="negative-lr"),
    pytest.param(["model.dropout=1.5"], ["model.dropout", "[0, 1)"], id="dropout"),
    pytest.param(["optimizer.betas=[0.9]"], ["optimizer.betas", "2 values"], id="betas-length"),
    pytest.param(["trainer.batch_size=0"], ["trainer.batch_size", ">= 1"], id="batch-size-0"),
    pytest.param(
        ["scheduler=plateau", "scheduler.patience=-1"],
        ["scheduler.patience", ">= 0"],
        id="negative-patience",
    ),
    pytest.param(
        ["dataset=csv", "dataset.path=nowhere.csv", "dataset.target=label"],
        ["dataset.path", "nowhere.csv", "does not exist"],
        id="csv-path-missing",
    ),
    pytest.param(
        ["dataset=csv", "dataset.path=data.csv", "dataset.target=lable"],
        ["dataset.target", "Did you mean 'label'?"],
        id="csv-target-missing",
    ),
    pytest.param(
        ["dataset=csv", "dataset.path=text_feature.csv", "dataset.target=label"],
        ["dataset.path", "not numeric", "line 3"],
        id="csv-non-numeric-feature",
    ),
    pytest.param(
        ["dataset=csv", "dataset.path=ragged.csv", "dataset.target=label"],
        ["dataset.path", "cells"],
        id="csv-ragged-row",
    ),
    pytest.param(["dataset=csv"], ["dataset.path", "dataset.target"], id="csv-required-keys"),
    pytest.param(["loss=bce"], ["loss", "cross_entropy"], id="bce-10-class"),
    pytest.param(
        ["trainer.monitor=val/accuracy"], ["trainer.monitor", "val/acc"], id="unknown-monitor"
    ),
    pytest.param(
        ["optimizer=sgd", "optimizer.nesterov=true", "optimizer.momentum=0"],
        ["optimizer.nesterov"],
        id="nesterov",
    ),
    pytest.param(["sed=1"], ["sed", "Did you mean 'seed'?"], id="unknown-top-level"),
    pytest.param(["trainer.max_epochs=["], ["cannot parse"], id="unparsable"),
    pytest.param(
        ["-m", "optimizer.lr=0.01,-1"], ["optimizer.lr", "> 0"], id="sweep-with-one-bad-job"
    ),
    pytest.param(["--no-such-flag"], ["trainlab train"], id="unknown-flag"),
]


@pytest.mark.parametrize(("args", "shown"), CLI_BAD_INPUTS)
def test_train_with_bad_input_exits_2_and_leaves_no_run(
    args: list[str], shown: list[str], run_cli: RunCli, tmp_path: Path
) -> None:
    write_classification_csv(tmp_path / "data.csv")
    (tmp_path / "text_feature.csv").write_text("a,b,label\n1,2,0\n3,x,1\n5,6,0\n7,8,1\n1,1,0\n")
    (tmp_path / "ragged.csv").write_text("a,b,label\n1,2,0\n3,1\n5,6,0\n7,8,1\n1,1,0\n")
    uri = sqlite_uri(tmp_path)
    done = run_cli("train", *args, f"tracking.uri={uri}", "trainer.max_epochs=1", cwd=tmp_path)

    assert done.returncode == 2, explain(done)
    assert "Traceback" not in done.stderr + done.stdout
    for text in shown:
        assert text in done.stderr, f"{text!r} not in stderr:\n{done.stderr}"
    assert len(done.stderr.splitlines()) <= 40, "the message should be short"
    assert "epoch 1/" not in done.stdout, "nothing may train"
    if (tmp_path / "mlflow.db").exists():
        runs = all_runs(uri)
        assert not [run for run in runs if run.info.status == "RUNNING"]
        assert runs == [], f"bad input left runs behind: {[r.info.run_id for r in runs]}"


def test_a_sweep_with_cfg_exits_2_instead_of_a_traceback(run_cli: RunCli, tmp_path: Path) -> None:
    done = run_cli("train", "-m", "optimizer=sgd,adam", "--cfg", "hydra", cwd=tmp_path)
    assert done.returncode == 2, explain(done)
    assert "cannot be combined with --cfg" in done.stderr
    assert "Traceback" not in done.stderr


def test_validate_checks_every_arm_of_a_sweep_declared_in_a_preset(
    run_cli: RunCli, tmp_path: Path
) -> None:
    """compare_schedulers declares its six schedules in hydra.sweeper.params."""
    done = run_cli("validate", "-m", "experiment=compare_schedulers", cwd=tmp_path)
    assert done.returncode == 0, explain(done)
    assert "Config OK (6 jobs checked)." in done.stdout
    # The command line replaces the preset's sweep for the same key, as in Hydra.
    bad = run_cli(
        "validate", "-m", "experiment=compare_schedulers", "scheduler=step,stpe", cwd=tmp_path
    )
    assert bad.returncode == 2, explain(bad)
    assert "no option 'stpe'" in bad.stderr


def test_an_empty_experiment_name_is_named_in_the_error(run_cli: RunCli, tmp_path: Path) -> None:
    done = run_cli("validate", "tracking.experiment=''", cwd=tmp_path)
    assert done.returncode == 2, explain(done)
    assert "tracking.experiment: is empty" in done.stderr
