"""``trainlab compare`` through the real CLI on a real store: two real sweeps (a grid over
optimizers, and a 3-fold cross-validation over learning rates) run once for the module."""

from __future__ import annotations

import csv
import statistics
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from helpers import all_runs, explain, run_cli, sqlite_uri

if TYPE_CHECKING:
    from mlflow.entities import Run

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
KFOLD_EXPERIMENT = "kfold"


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """A folder with one store holding a grid sweep (experiment trainlab) and a k-fold sweep
    (experiment kfold)."""
    folder = tmp_path_factory.mktemp("compare")
    uri = sqlite_uri(folder)
    common = ["trainer.max_epochs=3", f"tracking.uri={uri}", "hydra/launcher=parallel"]
    grid = run_cli("train", "-m", "optimizer=sgd,adam", *common, cwd=folder)
    assert grid.returncode == 0, explain(grid)
    kfold = run_cli(
        "train",
        "-m",
        "dataset.folds=3",
        "dataset.fold=0,1,2",
        "optimizer.lr=0.02,0.0003",
        f"tracking.experiment={KFOLD_EXPERIMENT}",
        *common,
        cwd=folder,
    )
    assert kfold.returncode == 0, explain(kfold)
    return folder, uri


def compare(store: tuple[Path, str], *args: str) -> str:
    folder, uri = store
    done = run_cli("compare", *args, f"tracking.uri={uri}", cwd=folder)
    assert done.returncode == 0, explain(done)
    assert "Traceback" not in done.stderr, explain(done)
    return done.stdout


def table_rows(output: str) -> list[list[str]]:
    """The body of a plain-text table: the cells of each line that starts with a rank (the
    best row's ``*`` mark left out; see :func:`marked_rank`)."""
    rows = []
    for line in output.splitlines():
        cells = line.split()
        if cells and cells[0] == "*":
            cells = cells[1:]
        if cells and cells[0].isdigit():
            rows.append(cells)
    return rows


def marked_rank(output: str) -> str:
    """The rank of the row marked best."""
    return next(line.split()[1] for line in output.splitlines() if line.startswith("*"))


def sweep_parents(uri: str) -> list[Run]:
    """The store's sweeps, oldest first."""
    parents = [r for r in all_runs(uri) if r.data.tags.get("trainlab.role") == "sweep"]
    return sorted(parents, key=lambda r: r.info.start_time)


def children_of(uri: str, parent: Run) -> list[Run]:
    return [r for r in all_runs(uri) if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id]


@pytest.mark.slow
def test_a_sweep_by_id_name_or_folder_best_first(store: tuple[Path, str]) -> None:
    uri = store[1]
    grid_parent = sweep_parents(uri)[0]
    by_id = compare(store, grid_parent.info.run_id)
    rows = table_rows(by_id)
    assert len(rows) == 2
    assert marked_rank(by_id) == "1", "the best row is marked"
    runs = children_of(uri, grid_parent)
    best = min(runs, key=lambda r: r.data.metrics["best/val/loss"])
    assert best.info.run_id in rows[0], by_id
    assert best.info.run_name in by_id
    # Only what differs: the optimizer, not the epochs every job shares.
    header = next(line for line in by_id.splitlines() if "status" in line)
    assert "optimizer" in header and "max_epochs" not in header and "duration" in header
    assert {r[1] for r in rows} == {"FINISHED"}

    by_name = compare(store, grid_parent.info.run_name)
    sweep_dir = grid_parent.data.tags["trainlab.sweep_dir"]
    by_folder = compare(store, sweep_dir)
    assert table_rows(by_name) == rows == table_rows(by_folder)


@pytest.mark.slow
def test_kfold_sweep_is_aggregated_per_configuration(store: tuple[Path, str]) -> None:
    folder, uri = store
    assert marked_rank(compare(store)) == "1"
    output = compare(store, "--csv", str(folder / "kfold.csv"))  # the newest sweep: k-fold
    assert "± " in output and "3 folds" in output, output
    rows = table_rows(output)
    assert len(rows) == 2, output  # two learning rates, three folds each

    children = children_of(uri, sweep_parents(uri)[1])
    assert len(children) == 6
    assert {c.data.params["dataset.fold"] for c in children} == {"0", "1", "2"}
    means = {
        lr: statistics.fmean(
            c.data.metrics["best/val/loss"] for c in children if c.data.params["optimizer.lr"] == lr
        )
        for lr in ("0.02", "0.0003")
    }
    with (folder / "kfold.csv").open() as handle:
        table = list(csv.DictReader(handle))
    assert [row["optimizer.lr"] for row in table] == sorted(means, key=means.__getitem__)
    for row in table:
        assert float(row["val/loss mean"]) == pytest.approx(means[row["optimizer.lr"]])
        assert row["runs"] == "3"
        assert float(row["val/loss std"]) >= 0
        assert len(row["run_ids"].split()) == 3


@pytest.mark.slow
def test_by_param_and_plots(store: tuple[Path, str]) -> None:
    folder, _ = store
    output = compare(store, "--by", "optimizer.lr", "--plot", str(folder / "by_lr.png"))
    rows = table_rows(output)
    lrs = [cell for row in rows for cell in row if cell in ("0.02", "0.0003")]
    assert lrs == ["0.0003", "0.02"], output  # in the parameter's order, not the metric's
    assert (folder / "by_lr.png").read_bytes().startswith(PNG_MAGIC)

    curves = compare(
        store, "--experiment", "trainlab", "--metric", "val/acc", "--plot", str(folder / "c.png")
    )
    assert "best val/acc first (maximised)" in curves
    accs = [float(row[2]) for row in table_rows(curves)]
    assert accs == sorted(accs, reverse=True), curves
    assert (folder / "c.png").read_bytes().startswith(PNG_MAGIC)


@pytest.mark.slow
@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["no-such-sweep"], "there is no sweep 'no-such-sweep'"),
        (["--by", "optimizer.lrr"], "no parameter 'optimizer.lrr'"),
        (["--experiment", "kfld"], "there is no experiment 'kfld'"),
        (["--metric", "val/acc_top5"], "logged the metric 'val/acc_top5'"),
    ],
)
def test_bad_input_is_one_paragraph_and_exit_2(
    store: tuple[Path, str], args: list[str], says: str
) -> None:
    folder, uri = store
    done = run_cli("compare", *args, f"tracking.uri={uri}", cwd=folder)
    assert done.returncode == 2, explain(done)
    assert says in done.stderr and "Traceback" not in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr


def test_no_store_or_bad_options_exit_2(tmp_path: Path) -> None:
    uri = sqlite_uri(tmp_path)
    for args in (["--experiment", "x"], ["--mode", "best"], ["--plot", "x.txt"], ["--frobnicate"]):
        done = run_cli("compare", *args, f"tracking.uri={uri}", cwd=tmp_path)
        assert done.returncode == 2, explain(done)
        assert done.stderr.startswith("trainlab compare: "), done.stderr
        assert "Traceback" not in done.stderr
