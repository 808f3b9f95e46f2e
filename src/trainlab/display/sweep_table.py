"""The table printed when a sweep ends: its child runs, best first."""

from __future__ import annotations

import sys

from trainlab.tools.compare import RunRow


def print_sweep_table(
    title: str, rows: list[RunRow], monitor: str, rich: bool | None = None
) -> None:
    """Status, the monitored metric, the params that differ, and the run id of each child."""
    keys = list(rows[0].params) if rows else []
    header = ["#", "status", monitor, *keys, "seconds", "run id"]
    body = [
        [
            str(rank),
            row.status,
            "-" if row.value is None else f"{row.value:.4g}",
            *(row.params[k] for k in keys),
            "-" if row.seconds is None else f"{row.seconds:.1f}",
            row.run_id,
        ]
        for rank, row in enumerate(rows, start=1)
    ]
    if rich is None:
        rich = sys.stdout.isatty()
    if not rich:
        print(title)
        widths = [max(len(r[i]) for r in [header, *body]) for i in range(len(header))]
        for line in [header, *body]:
            print("  ".join(cell.ljust(w) for cell, w in zip(line, widths, strict=True)))
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title, title_justify="left")
    for name in header:
        table.add_column(name)
    for index, line in enumerate(body):
        table.add_row(*line, style="bold green" if index == 0 else None)
    Console().print(table)
