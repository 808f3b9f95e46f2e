"""Compare the child runs of a sweep: one row per run, best first, swept params only."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

from trainlab.metrics import mode_for

if TYPE_CHECKING:
    from mlflow import MlflowClient
    from mlflow.entities import Run


@dataclass
class RunRow:
    """One run as the comparison table shows it."""

    run_id: str
    name: str
    status: str
    value: float | None
    params: dict[str, str]
    seconds: float | None


def child_runs(client: MlflowClient, parent_run_id: str) -> list[Run]:
    parent = client.get_run(parent_run_id)
    return list(
        client.search_runs(
            [parent.info.experiment_id],
            filter_string=f"tags.mlflow.parentRunId = '{parent_run_id}'",
            max_results=5000,
        )
    )


def run_overrides(run: Run) -> dict[str, str]:
    """The command-line overrides a run was launched with (``key=value`` pairs)."""
    pairs = run.data.tags.get("trainlab.overrides", "").split()
    return dict(pair.split("=", 1) for pair in pairs if "=" in pair)


def differing_settings(runs: list[Run]) -> tuple[list[str], list[dict[str, str]]]:
    """The overrides that differ between runs (what a sweep swept), else differing params."""
    settings = [run_overrides(run) for run in runs]
    if not any(settings):
        settings = [dict(run.data.params) for run in runs]
    keys = list(dict.fromkeys(key for s in settings for key in s))
    keys = [k for k in keys if len({s.get(k) for s in settings}) > 1]
    return keys, settings


def rank_runs(runs: list[Run], monitor: str, mode: str = "auto") -> list[RunRow]:
    """Rows sorted best first by ``monitor`` (runs without it last)."""
    direction = mode_for(monitor, mode)
    keys, settings = differing_settings(runs)
    rows = []
    for run, setting in zip(runs, settings, strict=True):
        history_value = run.data.metrics.get(f"best/{monitor}", run.data.metrics.get(monitor))
        end = run.info.end_time
        rows.append(
            RunRow(
                run_id=run.info.run_id,
                name=run.info.run_name or run.info.run_id,
                status=run.info.status,
                value=None if history_value is None else float(history_value),
                params={k: setting.get(k, "") for k in keys},
                seconds=(end - run.info.start_time) / 1000 if end else None,
            )
        )

    def sort_key(row: RunRow) -> tuple[int, float]:
        if row.value is None or math.isnan(row.value):
            return (1, 0.0)
        return (0, row.value if direction == "min" else -row.value)

    return sorted(rows, key=sort_key)
