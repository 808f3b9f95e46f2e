"""The pathology presets of ``conf/experiment/pathologies/``: one deliberately broken run per
finding code and healthy runs beside them. Each documents its symptom and expected finding in
its header; each is trained through the real CLI into a real sqlite store, and the doctor's
primary finding (``trainlab diagnose RUN_ID --json``, and the run's own ``diagnosis.json``)
must be the code it promises; a healthy preset must get ``healthy`` and no error.

The folder is discovered: a new preset is tested the day it is added.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from helpers import all_runs, client_for, explain, run_cli, sqlite_uri
from trainlab.config.paths import config_dir
from trainlab.doctor.detectors import DETECTORS

FOLDER = config_dir() / "experiment" / "pathologies"
PRESETS = sorted(p.stem for p in FOLDER.glob("*.yaml"))
HEALTHY = [name for name in PRESETS if name.startswith("healthy")]
BROKEN = [name for name in PRESETS if name not in HEALTHY]


def expected_code(name: str) -> str:
    return "healthy" if name.startswith("healthy") else name


def header(name: str) -> list[str]:
    return (FOLDER / f"{name}.yaml").read_text().splitlines()[:3]


def test_one_broken_preset_per_finding_and_two_healthy_ones() -> None:
    assert set(BROKEN) == set(DETECTORS)
    assert len(HEALTHY) >= 2


@pytest.mark.parametrize("name", PRESETS)
def test_preset_documents_its_command_symptom_and_finding(name: str) -> None:
    package, command, symptom = header(name)
    assert package == "# @package _global_"
    assert command == f"# trainlab train experiment=pathologies/{name}"
    assert symptom.endswith(f"Expect: {expected_code(name)}.")
    assert len(symptom) > 60  # says what the run shows, not only the code


def test_every_preset_composes_and_validates() -> None:
    from trainlab.config.compose import compose_in_context, hydra_context

    with hydra_context() as folder:
        for name in PRESETS:
            cfg = compose_in_context([f"experiment=pathologies/{name}"], folder)
            assert cfg.tracking.experiment == "pathologies", name
            assert cfg.trainer.max_epochs <= 150, name


def train_and_diagnose(name: str, tmp_path: Path) -> tuple[Any, dict[str, Any], str]:
    """Train the preset through the CLI; (the run, ``diagnose --json``, train's stdout)."""
    uri = sqlite_uri(tmp_path)
    done = run_cli(
        "train",
        f"experiment=pathologies/{name}",
        "trainer.progress=plain",
        "trainer.device=cpu",
        f"tracking.uri={uri}",
        cwd=tmp_path,
    )
    assert done.returncode in (0, 1), explain(done)  # a diverging run may fail: still diagnosed
    assert "Traceback" not in done.stderr, explain(done)
    (run,) = all_runs(uri)
    diagnosed = run_cli("diagnose", run.info.run_id, "--json", f"tracking.uri={uri}", cwd=tmp_path)
    assert diagnosed.returncode == 0, explain(diagnosed)
    report = json.loads(diagnosed.stdout)
    client = client_for(uri)
    logged = json.loads(
        Path(
            client.download_artifacts(run.info.run_id, "diagnosis.json", str(tmp_path))
        ).read_text()
    )
    assert logged["primary"] == report["primary"]
    assert [f["code"] for f in logged["findings"]] == [f["code"] for f in report["findings"]]
    assert run.data.tags["trainlab.diagnosis"] == report["primary"]
    return run, report, done.stdout + done.stderr


def check(name: str, report: dict[str, Any], output: str) -> None:
    code = expected_code(name)
    assert report["primary"] == code, json.dumps(report, indent=2)
    first = report["findings"][0]
    assert first["evidence"] and first["advice"]
    if code == "healthy":
        assert not [f for f in report["findings"] if f["severity"] == "error"], report
        assert "Diagnosis: healthy." in output
    else:
        assert first["severity"] in ("error", "warning")
        assert re.search(rf"Diagnosis: {code} \((error|warning)\)", output), output[-2000:]
        assert f"trainlab diagnose {report['run_id']}" in output


# Two quick presets in the fast suite; every preset in the slow one.
@pytest.mark.parametrize("name", ["lr_too_low", "healthy_digits"])
def test_quick_presets_get_their_diagnosis(name: str, tmp_path: Path) -> None:
    _, report, output = train_and_diagnose(name, tmp_path)
    check(name, report, output)


@pytest.mark.slow
@pytest.mark.parametrize("name", [n for n in PRESETS if n not in ("lr_too_low", "healthy_digits")])
def test_every_preset_gets_its_diagnosis(name: str, tmp_path: Path) -> None:
    _, report, output = train_and_diagnose(name, tmp_path)
    check(name, report, output)


def test_diagnose_reports_in_words_and_rejects_unknown_runs(tmp_path: Path) -> None:
    done = run_cli(
        "diagnose", "0123456789abcdef", f"tracking.uri={sqlite_uri(tmp_path)}", cwd=tmp_path
    )
    assert done.returncode == 2 and "no run '0123456789abcdef'" in done.stderr
    assert "Traceback" not in done.stderr
    assert run_cli("diagnose", "--help", cwd=tmp_path).stdout.startswith("usage: trainlab diagnose")
    assert run_cli("diagnose", cwd=tmp_path).returncode == 2
    assert run_cli("diagnose", "a", "b", cwd=tmp_path).returncode == 2
