"""Compare runs: the children of a sweep or every run of an experiment, best first.

One row per run with the parameters that differ between them, or, for a k-fold sweep
(``dataset.fold`` swept), one row per configuration with the metric's mean and standard
deviation over its folds. ``trainlab compare`` prints these rows, writes them as CSV and
draws them; ``trainlab train -m`` prints the same ranking when a sweep ends.
"""

from __future__ import annotations

import csv
import math
import statistics
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from trainlab.metrics import mode_for

if TYPE_CHECKING:
    from mlflow import MlflowClient
    from mlflow.entities import Run

FOLD_KEY = "dataset.fold"
# Runs that are not training jobs: a sweep's parent and the tools' own runs.
NOT_TRAINING_ROLES = ("sweep", "lr-find", "batch-size-find")


@dataclass
class RunRow:
    """One run as the comparison table shows it."""

    run_id: str
    name: str
    status: str
    value: float | None
    params: dict[str, str]
    seconds: float | None


@dataclass
class GroupRow:
    """One configuration of a k-fold sweep: its folds' runs and the metric over them."""

    params: dict[str, str]
    runs: list[RunRow] = field(default_factory=list)

    @property
    def values(self) -> list[float]:
        return [r.value for r in self.runs if r.value is not None and not math.isnan(r.value)]

    @property
    def mean(self) -> float | None:
        return statistics.fmean(self.values) if self.values else None

    @property
    def std(self) -> float | None:
        return statistics.stdev(self.values) if len(self.values) > 1 else None

    @property
    def status(self) -> str:
        counts: dict[str, int] = {}
        for run in self.runs:
            counts[run.status] = counts.get(run.status, 0) + 1
        return ", ".join(f"{n} {status}" for status, n in counts.items())

    @property
    def seconds(self) -> float | None:
        times = [r.seconds for r in self.runs if r.seconds is not None]
        return sum(times) if times else None


def child_runs(client: MlflowClient, parent_run_id: str) -> list[Run]:
    """Every child run of a sweep's parent (the comparison table, the resumed sweep's
    lookup of a job's earlier run)."""
    parent = client.get_run(parent_run_id)
    return list(
        client.search_runs(
            [parent.info.experiment_id],
            filter_string=f"tags.mlflow.parentRunId = '{parent_run_id}'",
            max_results=50_000,
        )
    )


def experiment_runs(client: MlflowClient, experiment_id: str) -> list[Run]:
    """The training runs of an experiment: sweep children and single runs alike."""
    runs = client.search_runs([experiment_id], max_results=5000)
    return [r for r in runs if r.data.tags.get("trainlab.role") not in NOT_TRAINING_ROLES]


def run_overrides(run: Run) -> dict[str, str]:
    """The command-line overrides a run was launched with (``key=value`` pairs)."""
    pairs = run.data.tags.get("trainlab.overrides", "").split()
    return dict(pair.lstrip("+~").split("=", 1) for pair in pairs if "=" in pair)


def run_setting(run: Run, key: str) -> str | None:
    """A run's value of ``key``: its override (``optimizer=adam``) or its param
    (``optimizer.lr``, any key of the resolved config)."""
    value = run_overrides(run).get(key)
    return value if value is not None else run.data.params.get(key)


# Params that describe where or how a run ran, or follow from the data: never what sets two
# runs of an experiment apart.
NOISE_PARAMS = ("torch.num_threads", "device", "loss.resolved", "model.num_parameters")
NOISE_PREFIXES = ("data.", "tracking.", "trainer.progress", "lr_find.", "batch_size_find.")


def differing_settings(
    runs: list[Run], prefer_params: bool = False
) -> tuple[list[str], list[dict[str, str]]]:
    """The overrides that differ between runs (what a sweep swept), else differing params.
    ``prefer_params``: the resolved config's params first (runs of an experiment, launched by
    different command lines), without those that only describe the machine or the data."""
    by_overrides = [run_overrides(run) for run in runs]
    by_params = [
        {
            k: v
            for k, v in run.data.params.items()
            if k not in NOISE_PARAMS and not k.startswith(NOISE_PREFIXES)
        }
        for run in runs
    ]
    for settings in (by_params, by_overrides) if prefer_params else (by_overrides, by_params):
        keys = _differing(settings)
        if keys:
            return keys, settings
    return [], by_overrides


def _differing(settings: list[dict[str, str]]) -> list[str]:
    """Keys with two or more different values (a key only some runs have, such as an sgd
    run's momentum beside adam runs, counts by the values it has)."""
    keys = list(dict.fromkeys(key for s in settings for key in s))
    return [k for k in keys if len({s[k] for s in settings if k in s}) > 1]


def rank_runs(
    runs: list[Run],
    monitor: str,
    mode: str = "auto",
    values: dict[str, float | None] | None = None,
    prefer_params: bool = False,
) -> list[RunRow]:
    """Rows sorted best first by ``monitor`` (runs without it last). ``values`` (run id ->
    value) replaces what is read from the runs' summary metrics (``best/<monitor>``, else the
    last ``monitor``)."""
    keys, settings = differing_settings(runs, prefer_params)
    rows = []
    for run, setting in zip(runs, settings, strict=True):
        if values is not None and run.info.run_id in values:
            value = values[run.info.run_id]
        else:
            value = summary_value(run, monitor)
        end = run.info.end_time
        rows.append(
            RunRow(
                run_id=run.info.run_id,
                name=run.info.run_name or run.info.run_id,
                status=run.info.status,
                value=value,
                params={k: setting.get(k, "") for k in keys},
                seconds=(end - run.info.start_time) / 1000 if end else None,
            )
        )
    direction = mode_for(monitor, mode)
    return sorted(rows, key=lambda row: _sort_key(row.value, direction))


def summary_value(run: Run, monitor: str) -> float | None:
    metrics = run.data.metrics
    value = metrics.get(f"best/{monitor}", metrics.get(monitor))
    return None if value is None else float(value)


def best_from_history(client: MlflowClient, run_id: str, metric: str, mode: str) -> float | None:
    """The best value a run logged for ``metric`` (for metrics without a ``best/`` summary)."""
    points = [p.value for p in client.get_metric_history(run_id, metric) if math.isfinite(p.value)]
    if not points:
        return None
    return min(points) if mode == "min" else max(points)


def _sort_key(value: float | None, direction: str) -> tuple[int, float]:
    if value is None or math.isnan(value):
        return (1, 0.0)
    return (0, value if direction == "min" else -value)


def is_kfold(runs: list[Run], keys: list[str]) -> bool:
    """A k-fold sweep: the runs differ in ``dataset.fold`` (with ``dataset.folds`` >= 2)."""
    folds = {run.data.params.get("dataset.folds") for run in runs}
    fold_values = {run_setting(run, FOLD_KEY) for run in runs}
    many_folds = any(f is not None and f.isdigit() and int(f) >= 2 for f in folds)
    return many_folds and (FOLD_KEY in keys or len(fold_values) > 1)


def group_folds(rows: list[RunRow], mode: str, monitor: str) -> list[GroupRow]:
    """One row per configuration (every differing setting but the fold), best mean first."""
    groups: dict[tuple[tuple[str, str], ...], GroupRow] = {}
    for row in rows:
        params = {k: v for k, v in row.params.items() if k != FOLD_KEY}
        key = tuple(sorted(params.items()))
        groups.setdefault(key, GroupRow(params=params)).runs.append(row)
    direction = mode_for(monitor, mode)
    return sorted(groups.values(), key=lambda g: _sort_key(g.mean, direction))


def by_param(
    rows: list[RunRow], runs: list[Run], param: str, monitor: str, mode: str
) -> list[GroupRow]:
    """The runs grouped by their value of ``param``, in the param's order (numbers by size)."""
    setting = {run.info.run_id: run_setting(run, param) for run in runs}
    groups: dict[str, GroupRow] = {}
    for row in rows:
        value = setting.get(row.run_id)
        value = "" if value is None else value
        groups.setdefault(value, GroupRow(params={param: value})).runs.append(row)
    return sorted(groups.values(), key=lambda g: _param_order(g.params[param]))


def _param_order(value: str) -> tuple[int, float, str]:
    number = as_number(value)
    return (0, number, "") if number is not None else (1, 0.0, value)


def as_number(value: str) -> float | None:
    try:
        number = float(value)
    except ValueError:
        return None
    return number if math.isfinite(number) else None


def known_settings(runs: Iterable[Run]) -> list[str]:
    """Every key ``--by`` accepts for these runs: their overrides' keys and their params."""
    keys: dict[str, None] = {}
    for run in runs:
        keys.update(dict.fromkeys(run_overrides(run)))
        keys.update(dict.fromkeys(run.data.params))
    return list(keys)


def write_rows_csv(path: Path, monitor: str, rows: list[RunRow]) -> None:
    keys = list(rows[0].params) if rows else []
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["rank", "run_id", "name", "status", monitor, *keys, "seconds"])
        for rank, row in enumerate(rows, start=1):
            writer.writerow(
                [
                    rank,
                    row.run_id,
                    row.name,
                    row.status,
                    "" if row.value is None else repr(row.value),
                    *(row.params[k] for k in keys),
                    "" if row.seconds is None else f"{row.seconds:.3f}",
                ]
            )


def write_groups_csv(path: Path, monitor: str, groups: list[GroupRow]) -> None:
    keys = list(groups[0].params) if groups else []
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        header = ["rank", *keys, f"{monitor} mean", f"{monitor} std", "runs", "status"]
        writer.writerow([*header, "seconds", "run_ids"])
        for rank, group in enumerate(groups, start=1):
            writer.writerow(
                [
                    rank,
                    *(group.params[k] for k in keys),
                    "" if group.mean is None else repr(group.mean),
                    "" if group.std is None else repr(group.std),
                    len(group.runs),
                    group.status,
                    "" if group.seconds is None else f"{group.seconds:.3f}",
                    " ".join(r.run_id for r in group.runs),
                ]
            )
