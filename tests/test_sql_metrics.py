"""The bulk metric writer stores what MLflow's own ``log_batch`` stores.

Both paths write the same points into two runs of one real sqlite store; MLflow's client then
reads each run's histories and latest values back, which must be identical."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from helpers import client_for, sqlite_uri
from trainlab.tracking.sender import MlflowStore, Point
from trainlab.tracking.sql_metrics import SqlMetricWriter

POINTS: list[Point] = [
    ("train/loss", 2.5, 1, 1000),
    ("train/loss", 1.5, 2, 1001),
    ("train/loss", math.nan, 3, 1002),  # stored as 0 with is_nan, read back as NaN
    ("train/grad_norm", math.inf, 1, 1000),
    ("train/grad_norm", -math.inf, 2, 1001),
    ("val/acc", 0.5, 5, 1003),
    ("val/acc", 0.25, 5, 1003),  # same step and time: the larger value is the latest
    ("val/acc", 0.75, 4, 1009),  # an older step logged later: not the latest
]


def _history(client, run_id: str, key: str) -> list[tuple[int, int, float]]:  # type: ignore[no-untyped-def]
    rows = client.get_metric_history(run_id, key)
    return sorted((m.step, m.timestamp, m.value) for m in rows)


def _same(a: float, b: float) -> bool:
    return (math.isnan(a) and math.isnan(b)) or a == b


@pytest.fixture
def store(tmp_path: Path):  # type: ignore[no-untyped-def]
    uri = sqlite_uri(tmp_path)
    client = client_for(uri)
    experiment = client.create_experiment("bulk")
    return uri, client, experiment


def assert_bulk_rows_match_log_batch(uri: str) -> None:
    """The same points through ``log_batch`` and through the bulk writer, into two runs of
    the store at ``uri``, read back identical (histories and latest values)."""
    from mlflow.entities import Metric

    client = client_for(uri)
    experiment = client.create_experiment("bulk-vs-log-batch")
    reference = client.create_run(experiment).info.run_id
    bulk_run = client.create_run(experiment).info.run_id
    metrics = [Metric(name, value, stamp, step) for name, value, step, stamp in POINTS]
    client.log_batch(reference, metrics=metrics, synchronous=True)
    writer = SqlMetricWriter.for_uri(uri)
    assert writer is not None, f"a {uri.split(':')[0]} store gets the bulk writer"
    writer.send(bulk_run, POINTS[:4])
    writer.send(bulk_run, POINTS[4:])  # a second batch updates the latest values

    for key in ("train/loss", "train/grad_norm", "val/acc"):
        ours, theirs = _history(client, bulk_run, key), _history(client, reference, key)
        assert len(ours) == len(theirs), key
        for (s1, t1, v1), (s2, t2, v2) in zip(ours, theirs, strict=True):
            assert (s1, t1) == (s2, t2) and _same(v1, v2), (key, ours, theirs)
    latest_ours = client.get_run(bulk_run).data.metrics
    latest_theirs = client.get_run(reference).data.metrics
    assert latest_ours.keys() == latest_theirs.keys()
    for key, value in latest_theirs.items():
        assert _same(latest_ours[key], value), (key, latest_ours, latest_theirs)
    assert latest_ours["val/acc"] == 0.5


def test_bulk_rows_match_log_batch(tmp_path: Path) -> None:
    assert_bulk_rows_match_log_batch(sqlite_uri(tmp_path))


def test_a_batch_sent_twice_is_stored_once(store) -> None:  # type: ignore[no-untyped-def]
    uri, client, experiment = store
    run_id = client.create_run(experiment).info.run_id
    sender_store = MlflowStore(uri, run_id)
    assert sender_store.bulk is not None
    sender_store.send(POINTS)
    sender_store.send(POINTS)  # a retry after a failure that had in fact reached the store
    assert len(client.get_metric_history(run_id, "train/loss")) == 3
    assert sender_store.bulk is not None, "a duplicate is not a failure of the bulk path"


def test_a_failing_bulk_path_falls_back_to_log_batch(store) -> None:  # type: ignore[no-untyped-def]
    uri, client, experiment = store
    run_id = client.create_run(experiment).info.run_id
    sender_store = MlflowStore(uri, run_id)

    class Broken:
        def send(self, run_id: str, points: list[Point]) -> None:
            raise RuntimeError("a table this writer does not know")

    sender_store.bulk = Broken()  # type: ignore[assignment]
    for step in range(3):
        sender_store.send([("train/loss", 1.0, step, 1000 + step)])
    assert len(client.get_metric_history(run_id, "train/loss")) == 3, "log_batch stored them"
    assert sender_store.bulk is None, "given up after repeated failures where log_batch works"


def test_an_http_store_has_no_bulk_writer() -> None:
    assert SqlMetricWriter.for_uri("http://127.0.0.1:9") is None
