"""The table printed when a run ends: best epoch and metric, run id, how to open the UI."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

from trainlab.tracking.store import runs_url

if TYPE_CHECKING:  # the recipe imports torch; a sweep's launcher prints its table without it
    from trainlab.train.recipe import RunSummary

UI_HINT = "trainlab ui"


def ui_command(tracking_uri: str) -> str:
    if tracking_uri.startswith("sqlite:///outputs/mlflow.db") or not tracking_uri:
        return UI_HINT
    return f"{UI_HINT} tracking.uri={tracking_uri}"


def summary_rows(summary: RunSummary) -> list[tuple[str, str]]:
    best = (
        f"{summary.best_value:.4g} at epoch {summary.best_epoch}"
        if summary.best_value is not None
        else "-"
    )
    rows = [
        ("status", summary.status),
        ("run", f"{summary.run_name} ({summary.run_id})"),
        ("epochs / steps", f"{summary.epochs} / {summary.steps}"),
        (f"best {summary.monitor}", best),
    ]
    rows += [(name, f"{value:.4g}") for name, value in sorted(summary.final_metrics.items())]
    rows += [
        ("time", f"{summary.seconds:.1f} s"),
        ("MLflow store", summary.tracking_uri),
        (
            "open the UI",
            f"{ui_command(summary.tracking_uri)}, then "
            + runs_url(
                summary.tracking_uri
                if summary.tracking_uri.startswith("http")
                else "http://127.0.0.1:5000",
                summary.experiment_id,
            ),
        ),
    ]
    return rows


def one_line(summary: RunSummary) -> str:
    """The best monitored value, its epoch and the run id, for a sweep's per-job line."""
    if summary.best_value is None:
        return f"run {summary.run_id}"
    return (
        f"best {summary.monitor} {summary.best_value:.4g} at epoch {summary.best_epoch} "
        f"(run {summary.run_id}, {summary.seconds:.1f} s)"
    )


def print_summary(summary: RunSummary, rich: bool | None = None) -> None:
    """A rich table on a terminal, aligned plain lines otherwise."""
    rows = summary_rows(summary)
    if rich is None:
        rich = sys.stdout.isatty()
    if not rich:
        width = max(len(name) for name, _ in rows)
        for name, value in rows:
            print(f"{name.ljust(width)}  {value}")
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title="trainlab run", show_header=False, title_justify="left")
    table.add_column(style="bold")
    table.add_column()
    for name, value in rows:
        table.add_row(name, value)
    Console().print(table)
