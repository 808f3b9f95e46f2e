"""Composition and validation of the real config tree, in-process (fast).

Every bad input must raise a ConfigError that names the offending key (its full path) and says
what to do; several problems are reported together.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from omegaconf import OmegaConf

from helpers import config_groups
from trainlab.config.compose import compose_config
from trainlab.config.errors import ConfigError, Problem

# (overrides, key the problem must name, fragments its message must contain).
# "{csv}" / "{regression_csv}" / "{missing}" are replaced with files of the test's temp dir.
BAD_INPUTS = [
    pytest.param(
        ["trainer.max_epoch=3"],
        "trainer.max_epoch",
        ["unknown key 'max_epoch'", "Did you mean 'max_epochs'?"],
        id="typo-key",
    ),
    pytest.param(["model.dropout=abc"], "model.dropout", ["'abc'", "Float"], id="wrong-type-float"),
    # optimizer.lr also takes `auto` (the range test), so its schema type is Any and the
    # constraint is what rejects other words.
    pytest.param(
        ["optimizer.lr=abc"], "optimizer.lr", ["'abc'", "a number > 0, or auto"], id="lr-word"
    ),
    pytest.param(["optimizer.lr=[0.1,0.2]"], "optimizer.lr", ["a number > 0"], id="lr-list"),
    pytest.param(["seed=abc"], "seed", ["'abc'", "Integer"], id="wrong-type-int"),
    pytest.param(
        ["optimizer=adm"],
        "optimizer",
        ["no option 'adm'", "available: ", "Did you mean 'adam'?", "trainlab list optimizer"],
        id="unknown-option",
    ),
    pytest.param(
        ["regularizer=[l1,l3]"],
        "regularizer",
        ["no option 'l3'", "available: ", "trainlab list regularizer"],
        id="unknown-option-in-list",
    ),
    pytest.param(["optimizer.lr=-0.1"], "optimizer.lr", ["-0.1", "> 0"], id="negative-lr"),
    pytest.param(["optimizer.lr=0"], "optimizer.lr", ["> 0"], id="zero-lr"),
    pytest.param(
        ["optimizer.betas=[0.9]"],
        "optimizer.betas",
        ["exactly 2 values"],
        id="betas-one-value",
    ),
    pytest.param(
        ["optimizer=adamw", "optimizer.betas=[0.9,0.99,0.999]"],
        "optimizer.betas",
        ["exactly 2 values"],
        id="betas-three-values",
    ),
    pytest.param(
        ["optimizer.betas=[0.9,1.0]"], "optimizer.betas", ["[0, 1)"], id="beta-out-of-range"
    ),
    pytest.param(["model.dropout=1.5"], "model.dropout", ["1.5", "[0, 1)"], id="dropout-1.5"),
    pytest.param(["model.dropout=1.0"], "model.dropout", ["[0, 1)"], id="dropout-1.0"),
    pytest.param(["trainer.batch_size=0"], "trainer.batch_size", ["0", ">= 1"], id="batch-size-0"),
    pytest.param(["model.hidden_sizes=[64,0]"], "model.hidden_sizes", [">= 1"], id="hidden-size-0"),
    pytest.param(
        ["scheduler=plateau", "scheduler.patience=-1"],
        "scheduler.patience",
        ["-1", ">= 0"],
        id="negative-patience",
    ),
    pytest.param(
        ["model.activation=rleu"],
        "model.activation",
        ["'rleu'", "Did you mean 'relu'?"],
        id="unknown-choice",
    ),
    pytest.param(
        ["dataset=csv", "dataset.path={missing}", "dataset.target=label"],
        "dataset.path",
        ["does not exist", "nowhere.csv"],
        id="csv-path-missing",
    ),
    pytest.param(
        ["dataset=csv", "dataset.path={csv}", "dataset.target=lable"],
        "dataset.target",
        ["'lable'", "f1, f2, f3, label", "Did you mean 'label'?"],
        id="csv-target-missing",
    ),
    pytest.param(
        ["dataset=csv"],
        "dataset.path",
        ["is required", "dataset.path=VALUE"],
        id="csv-required-keys",
    ),
    pytest.param(
        ["loss=bce"], "loss", ["bce is for two classes", "10", "cross_entropy"], id="bce-10-class"
    ),
    pytest.param(
        ["loss=mse"], "loss", ["regression loss", "classification"], id="mse-on-classification"
    ),
    pytest.param(
        ["dataset=csv", "dataset.path={regression_csv}", "dataset.target=y", "loss=cross_entropy"],
        "loss",
        ["needs class labels", "regression"],
        id="cross-entropy-on-regression",
    ),
    pytest.param(
        ["trainer.monitor=val/accuracy"],
        "trainer.monitor",
        ["'val/accuracy'", "val/acc", "val/loss"],
        id="unknown-monitor",
    ),
    pytest.param(
        ["scheduler=plateau", "scheduler.monitor=val/mae"],
        "scheduler.monitor",
        ["'val/mae'", "classification"],
        id="unknown-plateau-monitor",
    ),
    pytest.param(
        ["optimizer=sgd", "optimizer.nesterov=true", "optimizer.momentum=0"],
        "optimizer.nesterov",
        ["momentum > 0"],
        id="nesterov-without-momentum",
    ),
    pytest.param(
        ["sed=1"], "sed", ["unknown key 'sed'", "Did you mean 'seed'?"], id="unknown-top-level"
    ),
    pytest.param(["trainer.device=tpu"], "trainer.device", ["'tpu'", "cpu"], id="unknown-device"),
]


def _fill(overrides: list[str], tmp_path: Path, csv: Path, regression: Path) -> list[str]:
    files = {
        "{csv}": str(csv),
        "{regression_csv}": str(regression),
        "{missing}": str(tmp_path / "nowhere.csv"),
    }
    filled = []
    for override in overrides:
        for token, value in files.items():
            override = override.replace(token, value)
        filled.append(override)
    return filled


def _problems_for(error: ConfigError, key: str) -> list[Problem]:
    return [problem for problem in error.problems if problem.key == key]


def test_default_config_composes_and_validates() -> None:
    from trainlab.config.validation import validate_config

    cfg = compose_config([])
    assert validate_config(cfg) == []
    # The defaults list of conf/train.yaml and the keys other tools rely on (DESIGN.md).
    assert cfg.dataset.name == "digits"
    assert cfg.model.name == "mlp"
    assert cfg.optimizer.name == "adam"
    assert cfg.scheduler.name == "none"
    assert cfg.loss.name == "auto"
    assert dict(cfg.regularizer) == {}
    assert cfg.seed == 0
    assert cfg.trainer.max_epochs == 20
    assert cfg.trainer.batch_size == 64
    assert cfg.optimizer.lr == pytest.approx(1e-3)
    assert cfg.tracking.uri == "sqlite:///outputs/mlflow.db"
    assert cfg.tracking.experiment == "trainlab"
    # Fully resolvable: no ??? left, no interpolation that fails.
    plain = OmegaConf.to_container(cfg, resolve=True, throw_on_missing=True)
    assert isinstance(plain, dict)


def test_overrides_reach_the_composed_config() -> None:
    cfg = compose_config(
        ["optimizer=sgd", "optimizer.lr=0.05", "trainer.max_epochs=3", "regularizer=[l1,l2]"]
    )
    assert cfg.optimizer.name == "sgd"
    assert cfg.optimizer.lr == pytest.approx(0.05)
    assert cfg.optimizer.momentum == pytest.approx(0.9)
    assert cfg.trainer.max_epochs == 3
    assert sorted(cfg.regularizer) == ["l1", "l2"]


def test_tracking_uri_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "sqlite:///somewhere/else.db")
    assert compose_config([]).tracking.uri == "sqlite:///somewhere/else.db"


@pytest.mark.parametrize(("overrides", "key", "fragments"), BAD_INPUTS)
def test_bad_input_is_a_config_error_naming_the_key(
    overrides: list[str],
    key: str,
    fragments: list[str],
    tmp_path: Path,
    classification_csv: Path,
    regression_csv: Path,
) -> None:
    with pytest.raises(ConfigError) as raised:
        compose_config(_fill(overrides, tmp_path, classification_csv, regression_csv))
    error = raised.value
    named = _problems_for(error, key)
    assert named, f"no problem names {key!r}: {error.problems}"
    message = " ".join(problem.message for problem in named)
    for fragment in fragments:
        assert fragment in message, f"{fragment!r} not in {message!r}"
    rendered = error.render()
    assert f"{key}: " in rendered
    assert "Traceback" not in rendered


@pytest.mark.parametrize("group", ["optimizer", "scheduler", "regularizer", "dataset", "loss"])
def test_unknown_option_lists_every_available_option(group: str) -> None:
    with pytest.raises(ConfigError) as raised:
        compose_config([f"{group}=no_such_option"])
    (problem,) = raised.value.problems
    assert problem.key == group
    listed = problem.message.split("available: ", 1)[1].split(".", 1)[0].split(", ")
    assert listed == config_groups()[group]


def test_missing_required_csv_keys_are_both_reported() -> None:
    with pytest.raises(ConfigError) as raised:
        compose_config(["dataset=csv"])
    assert {p.key for p in raised.value.problems} == {"dataset.path", "dataset.target"}


def test_several_problems_are_reported_together() -> None:
    overrides = [
        "trainer.max_epoch=3",  # unknown key
        "optimizer.lr=-1",  # out of range
        "model.dropout=1.5",  # out of range
        "loss=bce",  # a combination that cannot train (10 classes)
    ]
    with pytest.raises(ConfigError) as raised:
        compose_config(overrides)
    keys = {problem.key for problem in raised.value.problems}
    assert keys == {"trainer.max_epoch", "optimizer.lr", "model.dropout", "loss"}
    assert "4 problems found" in raised.value.render()


def test_several_problems_with_an_unknown_option_are_reported_together() -> None:
    overrides = ["optimizer=adm", "sed=1", "trainer.batch_size=0", "trainer.monitor=val/accuracy"]
    with pytest.raises(ConfigError) as raised:
        compose_config(overrides)
    keys = {problem.key for problem in raised.value.problems}
    assert keys == {"optimizer", "sed", "trainer.batch_size", "trainer.monitor"}


def test_every_job_of_a_sweep_is_validated() -> None:
    from trainlab.cli.train import validate_command_line

    with pytest.raises(ConfigError) as raised:
        validate_command_line(["-m", "optimizer.lr=0.01,-1", "model.dropout=0.1,1.5"])
    keys = {problem.key for problem in raised.value.problems}
    assert keys == {"optimizer.lr", "model.dropout"}

    configs = validate_command_line(["-m", "optimizer=sgd,adam", "optimizer.lr=0.01,0.001"])
    assert sorted((c.optimizer.name, c.optimizer.lr) for c in configs) == [
        ("adam", 0.001),
        ("adam", 0.01),
        ("sgd", 0.001),
        ("sgd", 0.01),
    ]


@pytest.mark.parametrize(
    "override",
    [
        "model.dropout=0.0",
        "model.dropout=0.99",
        "trainer.batch_size=1",
        "optimizer.lr=1e-9",
        "scheduler=plateau scheduler.patience=0",
        "optimizer=sgd optimizer.nesterov=true optimizer.momentum=0.5",
        "trainer.monitor=val/acc",
        "dataset=moons loss=bce",
    ],
)
def test_values_at_the_edge_of_the_range_are_accepted(override: str) -> None:
    compose_config(override.split())
