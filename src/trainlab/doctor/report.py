"""How a diagnosis is shown: the full report of ``trainlab diagnose`` (rich on a terminal,
plain lines otherwise, JSON with ``--json``) and the short block under a run's summary."""

from __future__ import annotations

import json
import math
import sys
from typing import Any

from trainlab.doctor.findings import ERROR, HEALTHY, WARNING, Diagnosis

STYLE = {ERROR: "bold red", WARNING: "yellow", "info": "dim"}


def to_json(diagnosis: Diagnosis) -> str:
    """``{"primary": CODE, "run_id": ..., "findings": [...]}``; NaN becomes null."""
    return json.dumps(_plain(diagnosis.to_dict()), indent=2)


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if hasattr(value, "item"):  # numpy scalars
        return _plain(value.item())
    return value


def report_lines(diagnosis: Diagnosis) -> list[str]:
    """The full report as plain text lines."""
    lines = [f"Diagnosis of run {diagnosis.run_id}: {diagnosis.primary}"]
    for number, finding in enumerate(diagnosis.findings, 1):
        lines.append(f"{number}. [{finding.severity}] {finding.code}")
        lines.append(f"   evidence: {finding.evidence}")
        lines.append(f"   advice:   {finding.advice}")
    return lines


def print_report(diagnosis: Diagnosis, rich: bool | None = None) -> None:
    if rich is None:
        rich = sys.stdout.isatty()
    if not rich:
        print("\n".join(report_lines(diagnosis)), flush=True)
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(
        title=f"Diagnosis of run {diagnosis.run_id}: {diagnosis.primary}",
        title_justify="left",
        show_lines=True,
    )
    table.add_column("#", justify="right")
    table.add_column("finding")
    table.add_column("evidence", ratio=3)
    table.add_column("advice", ratio=2)
    for number, finding in enumerate(diagnosis.findings, 1):
        style = STYLE.get(finding.severity, "")
        table.add_row(
            str(number),
            f"[{style}]{finding.code}[/]\n[{style}]{finding.severity}[/]",
            finding.evidence,
            finding.advice,
        )
    Console().print(table)


def short_summary(diagnosis: Diagnosis) -> str:
    """A few lines for the end of a run: the primary finding with its evidence, the other
    problems by code, and where the full report is."""
    first = diagnosis.findings[0] if diagnosis.findings else None
    if first is None or first.code == HEALTHY:
        head = "Diagnosis: healthy."
        if first is not None:
            head += f" {first.evidence}"
        return head
    lines = [
        f"Diagnosis: {first.code} ({first.severity}): {first.evidence}",
        f"  Try: {first.advice}",
    ]
    others = [f.code for f in diagnosis.problems[1:]]
    if others:
        lines.append(f"  Also found: {', '.join(others)}.")
    lines.append(f"  Full report: trainlab diagnose {diagnosis.run_id}")
    return "\n".join(lines)
