"""A config problem names the key, the value, what was expected, and what to do next."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a config, found before anything runs."""

    key: str  # full path, e.g. "optimizer.lr"; "" for the config as a whole
    message: str

    def __str__(self) -> str:
        return f"{self.key}: {self.message}" if self.key else self.message


class ConfigError(Exception):
    """Every problem found in a config, reported together (exit code 2)."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        super().__init__(self.render())

    def render(self) -> str:
        count = len(self.problems)
        noun = "problem" if count == 1 else "problems"
        lines = [f"The config is not valid; {count} {noun} found:"]
        lines += [f"  - {problem}" for problem in self.problems]
        lines.append(
            "Check a value with `trainlab validate [OVERRIDES]`; see the options with "
            "`trainlab list`."
        )
        return "\n".join(lines)


class UsageError(Exception):
    """A bad command line or input that is not a config key (exit code 2, no traceback)."""
