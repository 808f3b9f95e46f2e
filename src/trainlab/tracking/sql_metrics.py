"""Metric points written straight into an MLflow SQL store's tables.

MLflow's ``log_batch`` on a SQL store builds one ORM object per point and costs about 11 ms
plus 0.08-0.14 ms per point (measured: 83 ms for 999 points on sqlite): for a small model
that trains 1,000 steps a second, the metric sender process spends half a core on it, and a
run's final flush waits ~0.2 s for its last batch. This writer does what ``log_batch`` does
to the tables in one transaction with two bulk statements (8 ms for the same 999 points):

* the points go into ``metrics`` (MLflow's table and column definitions, taken from its own
  SQLAlchemy models), a row that is already there (a batch sent again after a failure) is
  skipped, as ``log_batch`` skips it;
* ``latest_metrics`` keeps, per key, the point with the largest (step, timestamp, value),
  MLflow's rule; NaN is stored as 0 with ``is_nan`` set, infinities as the largest float.

Only for the dialects whose "insert, ignore duplicates" it knows (sqlite, PostgreSQL,
MySQL); any other store, and any store where this fails for a reason other than the
database being unavailable, goes through ``log_batch`` (see
:class:`~trainlab.tracking.sender.MlflowStore`). Tests compare both paths' stored rows.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mlflow import MlflowClient

Point = tuple[str, float, int, int]  # name, value, step, timestamp in ms
DIALECTS = ("sqlite", "postgresql", "mysql")


class SqlMetricWriter:
    """Bulk inserts of one run's points into an MLflow ``SqlAlchemyStore``'s tables."""

    def __init__(self, store: Any) -> None:
        from mlflow.store.tracking.dbmodels.models import SqlLatestMetric, SqlMetric

        self.engine = store.engine
        # MLflow's own (is_nan, value) for a metric: NaN as 0, infinities as the largest float.
        self.sanitize = store.sanitize_metric_value
        self.metrics = SqlMetric.__table__
        self.latest = SqlLatestMetric.__table__
        self.insert_new_rows = _insert_ignoring_duplicates(self.engine.dialect.name, self.metrics)

    @classmethod
    def for_client(cls, client: MlflowClient) -> SqlMetricWriter | None:
        """A writer on the client's SQL store, or None (an HTTP server, another dialect)."""
        try:
            from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore

            store = client._tracking_client.store
        except (ImportError, AttributeError):  # an MLflow laid out differently: log_batch
            return None
        if not isinstance(store, SqlAlchemyStore) or store.engine.dialect.name not in DIALECTS:
            return None
        return cls(store)

    def send(self, run_id: str, points: list[Point]) -> None:
        """Store ``points`` of run ``run_id``, all or none (one transaction)."""
        if not points:
            return
        rows = []
        newest: dict[str, dict[str, Any]] = {}
        for name, value, step, stamp in points:
            is_nan, stored = self.sanitize(value)
            row = {
                "run_uuid": run_id,
                "key": name,
                "value": stored,
                "timestamp": int(stamp),
                "step": int(step),
                "is_nan": is_nan,
            }
            rows.append(row)
            current = newest.get(name)
            if current is None or _order(row) > _order(current):
                newest[name] = row
        import sqlalchemy as sa

        latest = self.latest
        with self.engine.begin() as connection:
            connection.execute(self.insert_new_rows, rows)
            stored_rows = connection.execute(
                sa.select(latest).where(
                    latest.c.run_uuid == run_id, latest.c.key.in_(list(newest))
                )
            )
            known = {row.key: row for row in stored_rows}
            for name, row in newest.items():
                old = known.get(name)
                if old is None:
                    connection.execute(latest.insert(), [row])
                elif _order(row) > (old.step, old.timestamp, old.value):
                    connection.execute(
                        latest.update()
                        .where(latest.c.run_uuid == run_id, latest.c.key == name)
                        .values(
                            value=row["value"],
                            step=row["step"],
                            timestamp=row["timestamp"],
                            is_nan=row["is_nan"],
                        )
                    )


def _order(row: dict[str, Any]) -> tuple[int, int, float]:
    """MLflow's "more recent" order of two points of one key."""
    return row["step"], row["timestamp"], row["value"]


def _insert_ignoring_duplicates(dialect: str, table: Any) -> Any:
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert

        return insert(table).on_conflict_do_nothing()
    if dialect == "mysql":
        return table.insert().prefix_with("IGNORE")
    return table.insert().prefix_with("OR IGNORE")  # sqlite
