"""The table of ``trainlab compare``: a rich table on a terminal, aligned text otherwise; the
best row highlighted (marked ``*`` in plain text)."""

from __future__ import annotations

import sys

from trainlab.tools.compare import GroupRow, RunRow


def format_value(value: float | None) -> str:
    return "-" if value is None else f"{value:.4g}"


def format_seconds(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds < 120:
        return f"{seconds:.1f} s"
    minutes, rest = divmod(round(seconds), 60)
    return f"{minutes // 60}h {minutes % 60:02d}m" if minutes >= 60 else f"{minutes}m {rest:02d}s"


def run_table(rows: list[RunRow], metric: str) -> tuple[list[str], list[list[str]]]:
    keys = list(rows[0].params) if rows else []
    header = ["#", "status", metric, *keys, "duration", "run", "run id"]
    body = [
        [
            str(rank),
            row.status,
            format_value(row.value),
            *(row.params[k] for k in keys),
            format_seconds(row.seconds),
            row.name,
            row.run_id,
        ]
        for rank, row in enumerate(rows, start=1)
    ]
    return header, body


def group_table(
    groups: list[GroupRow], metric: str, what: str = "folds"
) -> tuple[list[str], list[list[str]]]:
    keys = list(groups[0].params) if groups else []
    header = ["#", *keys, f"{metric} mean ± std", what, "status", "duration"]
    body = []
    for rank, group in enumerate(groups, start=1):
        spread = "" if group.std is None else f" ± {group.std:.2g}"
        body.append(
            [
                str(rank),
                *(group.params[k] for k in keys),
                format_value(group.mean) + spread,
                str(len(group.runs)),
                group.status,
                format_seconds(group.seconds),
            ]
        )
    return header, body


def print_table(
    title: str,
    header: list[str],
    body: list[list[str]],
    best: int | None = 0,
    rich: bool | None = None,
) -> None:
    """Print ``body`` under ``header``; row ``best`` (an index, or None) highlighted."""
    if rich is None:
        rich = sys.stdout.isatty()
    if not rich:
        print(title)
        marked = [["", *header]] + [
            ["*" if index == best else "", *line] for index, line in enumerate(body)
        ]
        widths = [max(len(row[i]) for row in marked) for i in range(len(marked[0]))]
        for line in marked:
            print("  ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)).rstrip())
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title, title_justify="left")
    for name in header:
        table.add_column(name, overflow="fold")
    for index, line in enumerate(body):
        table.add_row(*line, style="bold green" if index == best else None)
    Console().print(table)
