"""Findings and the diagnosis: what the doctor says about a run, most important first."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

ERROR, WARNING, INFO = "error", "warning", "info"
SEVERITIES = (ERROR, WARNING, INFO)
HEALTHY = "healthy"


@dataclass
class Finding:
    """One thing the doctor found: a code, how bad it is, the numbers that show it, and the
    advice a training guide gives for it. ``details`` holds the numbers themselves."""

    code: str
    severity: str
    evidence: str
    advice: str
    details: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "code": self.code,
            "severity": self.severity,
            "evidence": self.evidence,
            "advice": self.advice,
            "details": self.details,
        }

    def headline(self) -> str:
        """One line: ``exploding gradients: total norm 3.1e+04 at step 40 ...``."""
        return f"{self.code.replace('_', ' ')}: {self.evidence}"


@dataclass
class Diagnosis:
    """Every finding of a run, sorted: errors, then warnings, then the rest; within a
    severity, causes before the symptoms they produce (the registry's order)."""

    findings: list[Finding]
    run_id: str = ""

    @property
    def primary(self) -> str:
        """The code of the most important finding (``healthy`` when nothing is wrong)."""
        return self.findings[0].code if self.findings else HEALTHY

    @property
    def problems(self) -> list[Finding]:
        return [f for f in self.findings if f.severity in (ERROR, WARNING)]

    def to_dict(self) -> dict[str, Any]:
        return {
            "primary": self.primary,
            "run_id": self.run_id,
            "findings": [finding.to_dict() for finding in self.findings],
        }
