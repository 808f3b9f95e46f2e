"""Pictures of a comparison: validation curves overlaid, or a metric against a parameter."""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import TYPE_CHECKING

from trainlab.tools.compare import GroupRow, RunRow, as_number

if TYPE_CHECKING:
    from mlflow import MlflowClient

MAX_LABEL = 48


def plot_curves(
    client: MlflowClient, rows: list[RunRow], metric: str, title: str, path: Path
) -> Path:
    """``metric`` per epoch, one line per run; the best run (first row) drawn boldest."""
    from matplotlib.figure import Figure

    figure = Figure(figsize=(9, 5.5), layout="constrained")
    axes = figure.add_subplot()
    for rank, row in enumerate(rows):
        history = sorted(client.get_metric_history(row.run_id, metric), key=lambda p: p.step)
        if not history:
            continue
        epochs = range(1, len(history) + 1)
        label = _label(row.name)
        if rank == 0:
            label = f"{label} (best)"
        axes.plot(
            epochs,
            [point.value for point in history],
            label=label,
            linewidth=2.6 if rank == 0 else 1.2,
            zorder=3 if rank == 0 else 2,
        )
    axes.set_xlabel("epoch")
    axes.set_ylabel(metric)
    axes.set_title(textwrap.fill(title, 100), fontsize=9)
    axes.grid(alpha=0.3)
    if len(rows) <= 20:
        axes.legend(fontsize=7, loc="best")
    figure.savefig(path, dpi=110)
    return path


def plot_by_param(groups: list[GroupRow], param: str, metric: str, title: str, path: Path) -> Path:
    """Each run's ``metric`` against its value of ``param`` (dots) and the mean per value
    (a line with the standard deviation as error bars); a log axis for rates spanning
    decades."""
    from matplotlib.figure import Figure

    figure = Figure(figsize=(8, 5), layout="constrained")
    axes = figure.add_subplot()
    numbers = [as_number(g.params[param]) for g in groups]
    numeric = all(n is not None for n in numbers)
    positions = (
        [float(n) for n in numbers if n is not None] if numeric else list(range(len(groups)))
    )
    for x, group in zip(positions, groups, strict=True):
        axes.scatter([x] * len(group.values), group.values, color="tab:blue", alpha=0.5, s=18)
    means = [
        (x, g.mean, g.std or 0.0)
        for x, g in zip(positions, groups, strict=True)
        if g.mean is not None
    ]
    if means:
        axes.errorbar(
            [m[0] for m in means],
            [m[1] for m in means],
            yerr=[m[2] for m in means],
            color="tab:orange",
            marker="o",
            capsize=3,
            label="mean (± std)",
        )
        axes.legend(fontsize=8)
    if numeric and positions and min(positions) > 0 and max(positions) / min(positions) >= 20:
        axes.set_xscale("log")
    if not numeric:
        axes.set_xticks(positions, [_label(g.params[param], 20) for g in groups], rotation=30)
    axes.set_xlabel(param)
    axes.set_ylabel(metric)
    axes.set_title(textwrap.fill(title, 100), fontsize=9)
    axes.grid(alpha=0.3)
    figure.savefig(path, dpi=110)
    return path


def _label(text: str, limit: int = MAX_LABEL) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"
