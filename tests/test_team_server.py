"""A team's tracking server: PostgreSQL as MLflow's backend store, ``mlflow server`` in front
of it on loopback, a two-job parallel sweep sent to it over HTTP, and everything read back
with MlflowClient (and counted in PostgreSQL itself). The README's recipe, tested.

The test starts a private PostgreSQL cluster (initdb + pg_ctl in a temp folder, as the
``postgres`` user when run as root, listening on 127.0.0.1 only) and stops it at the end."""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from helpers import all_runs, client_for, digits_steps_per_epoch, explain, metric_steps, run_cli
from mlflow_server import MlflowServer, free_port
from test_sql_metrics import assert_bulk_rows_match_log_batch

EPOCHS = 2


def postgres_bin(name: str) -> str | None:
    """A PostgreSQL server program: on PATH, or in Debian's versioned folder."""
    found = shutil.which(name)
    if found:
        return found
    candidates = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    return candidates[-1] if candidates else None


pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        postgres_bin("initdb") is None, reason="no PostgreSQL (.ci/run installs it)"
    ),
]


def as_postgres(command: list[str]) -> list[str]:
    """PostgreSQL refuses to run as root: drop to the ``postgres`` user then."""
    if os.geteuid() == 0:
        return ["runuser", "-u", "postgres", "--", *command]
    return command


@pytest.fixture
def postgres() -> Iterator[str]:
    """A fresh cluster with an empty ``mlflow`` database; yields its SQLAlchemy URI."""
    folder = Path(tempfile.mkdtemp(prefix="trainlab-pg-"))
    data = folder / "data"
    if os.geteuid() == 0:
        shutil.chown(folder, "postgres", "postgres")
    port = free_port()

    def run(*command: str) -> None:
        done = subprocess.run(
            as_postgres(list(command)), capture_output=True, text=True, check=False, cwd=folder
        )
        assert done.returncode == 0, f"{command}: {done.stdout}\n{done.stderr}"

    run(str(postgres_bin("initdb")), "-D", str(data), "-A", "trust", "-U", "postgres",
        "--no-sync", "-E", "UTF8")  # fmt: skip
    options = f"-h 127.0.0.1 -p {port} -k {folder} -c fsync=off -c full_page_writes=off"
    pg_ctl = str(postgres_bin("pg_ctl"))
    run(pg_ctl, "-D", str(data), "-o", options, "-l", str(folder / "postgres.log"), "-w",
        "-t", "120", "start")  # fmt: skip
    try:
        run(str(postgres_bin("createdb")), "-h", "127.0.0.1", "-p", str(port), "-U", "postgres",
            "mlflow")  # fmt: skip
        yield f"postgresql://postgres@127.0.0.1:{port}/mlflow"
    finally:
        with contextlib.suppress(AssertionError):
            run(pg_ctl, "-D", str(data), "-m", "fast", "-w", "stop")
        shutil.rmtree(folder, ignore_errors=True)


def count_rows(database_uri: str, table: str) -> int:
    import sqlalchemy

    engine = sqlalchemy.create_engine(database_uri)
    try:
        with engine.connect() as connection:
            query = sqlalchemy.text(f"select count(*) from {table}")
            return int(connection.execute(query).scalar() or 0)
    finally:
        engine.dispose()


def test_a_parallel_sweep_through_a_server_on_postgresql(postgres: str, tmp_path: Path) -> None:
    server = MlflowServer(postgres, tmp_path / "artifacts").start()
    try:
        done = run_cli(
            "train", "-m", "hydra/launcher=parallel", "hydra.launcher.n_jobs=2",
            "optimizer.lr=0.01,0.001", f"trainer.max_epochs={EPOCHS}",
            f"tracking.uri={server.uri}", "tracking.experiment=team",
            cwd=tmp_path,
        )  # fmt: skip
        assert done.returncode == 0, explain(done)
        assert "Traceback" not in done.stderr, explain(done)

        runs = all_runs(server.uri)
        parent = next(r for r in runs if r.data.tags.get("trainlab.role") == "sweep")
        children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id]
        assert parent.info.status == "FINISHED"
        assert sorted(c.info.run_name for c in children) == [
            "optimizer.lr=0.001",
            "optimizer.lr=0.01",
        ]
        assert {c.info.status for c in children} == {"FINISHED"}
        client = client_for(server.uri)
        per_epoch = digits_steps_per_epoch(64)
        for child in children:
            run_id = child.info.run_id
            assert metric_steps(client, run_id, "train/loss") == list(
                range(1, EPOCHS * per_epoch + 1)
            )
            assert metric_steps(client, run_id, "val/loss") == [
                per_epoch * (e + 1) for e in range(EPOCHS)
            ]
            # Checkpoints went up through the server (no local artifact folder).
            artifacts = {a.path for a in client.list_artifacts(run_id, "checkpoints")}
            assert "checkpoints/last.pt" in artifacts
        # The records live in PostgreSQL itself.
        assert count_rows(postgres, "runs") == 3
        assert count_rows(postgres, "metrics") > 0
    finally:
        server.stop()


def test_bulk_metric_rows_on_postgresql_match_log_batch(postgres: str) -> None:
    """A run logging straight to PostgreSQL (``tracking.uri=postgresql://...``, no server)
    gets the metric sender's bulk writer; its rows are the ones ``log_batch`` writes."""
    assert_bulk_rows_match_log_batch(postgres)
