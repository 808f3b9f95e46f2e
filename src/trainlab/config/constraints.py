"""Declarative value constraints attached to schema fields.

A schema field says what it accepts next to its default (``lr: float = positive(1e-3)``),
so the rule lives in one place and the validator can report every violation at once,
naming the key, the value and the allowed range.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

_CONSTRAINT_KEY = "trainlab_constraint"


@dataclass(frozen=True)
class Constraint:
    """What a field accepts: numeric bounds, a set of choices, or both may be empty."""

    gt: float | None = None
    ge: float | None = None
    lt: float | None = None
    le: float | None = None
    choices: tuple[str, ...] = ()
    optional: bool = False  # None is an accepted value (meaning "derive it")
    length: int | None = None  # a list field must have exactly this many values
    # Words accepted besides the numeric range (``optimizer.lr=auto``); such a field is a
    # single value, never a list.
    keywords: tuple[str, ...] = ()

    def describe(self) -> str:
        """The allowed values in words, for error messages: ``> 0``, ``in [0, 1)``."""
        if self.length is not None:
            each = dataclasses.replace(self, length=None).describe()
            return f"exactly {self.length} values, each {each}"
        if self.choices:
            return "one of " + ", ".join(self.choices)
        if self.keywords:
            numeric = dataclasses.replace(self, keywords=()).describe()
            return f"a number {numeric}, or " + " or ".join(self.keywords)
        low = (
            f"[{_fmt(self.ge)}"
            if self.ge is not None
            else (f"({_fmt(self.gt)}" if self.gt is not None else None)
        )
        high = (
            f"{_fmt(self.le)}]"
            if self.le is not None
            else (f"{_fmt(self.lt)})" if self.lt is not None else None)
        )
        if low and high:
            return f"in {low}, {high}"
        if self.gt is not None:
            return f"> {_fmt(self.gt)}"
        if self.ge is not None:
            return f">= {_fmt(self.ge)}"
        if self.lt is not None:
            return f"< {_fmt(self.lt)}"
        if self.le is not None:
            return f"<= {_fmt(self.le)}"
        return "any value"

    def accepts(self, value: Any) -> bool:
        """True if ``value`` (a number, a string, or a list of numbers) satisfies the rule."""
        if value is None:
            return self.optional
        if self.choices:
            return str(value) in self.choices
        if self.keywords:
            if isinstance(value, str):
                return value in self.keywords
            if isinstance(value, Sequence):
                return False
        values = value if isinstance(value, Sequence) and not isinstance(value, str) else [value]
        if self.length is not None and len(values) != self.length:
            return False
        for item in values:
            if isinstance(item, bool) or not isinstance(item, int | float):
                return False
            number = float(item)
            if math.isnan(number):
                return False
            if self.gt is not None and not number > self.gt:
                return False
            if self.ge is not None and not number >= self.ge:
                return False
            if self.lt is not None and not number < self.lt:
                return False
            if self.le is not None and not number <= self.le:
                return False
        return True


def _fmt(number: float | None) -> str:
    assert number is not None
    return str(int(number)) if float(number).is_integer() else f"{number:g}"


def constrained(default: Any, **rule: Any) -> Any:
    """A dataclass field with a default and a :class:`Constraint` in its metadata."""
    constraint = Constraint(**rule)
    if isinstance(default, list):
        return dataclasses.field(
            default_factory=lambda: list(default), metadata={_CONSTRAINT_KEY: constraint}
        )
    return dataclasses.field(default=default, metadata={_CONSTRAINT_KEY: constraint})


def positive(default: Any, optional: bool = False) -> Any:
    """A number that must be > 0."""
    return constrained(default, gt=0, optional=optional)


def positive_or(default: Any, *keywords: str) -> Any:
    """A number that must be > 0, or one of the words ``keywords`` (``optimizer.lr=auto``).

    OmegaConf's structured configs have no float-or-string union, so such a field is typed
    ``Any`` in its schema and this constraint is what checks it.
    """
    return constrained(default, gt=0, keywords=tuple(keywords))


def non_negative(default: Any, optional: bool = False) -> Any:
    """A number that must be >= 0."""
    return constrained(default, ge=0, optional=optional)


def at_least(minimum: float, default: Any, optional: bool = False) -> Any:
    """A number that must be >= ``minimum``."""
    return constrained(default, ge=minimum, optional=optional)


def fraction(default: Any, *, closed_low: bool = True, closed_high: bool = False) -> Any:
    """A number in [0, 1) by default; the bounds' openness is configurable."""
    bounds: dict[str, float] = {"ge" if closed_low else "gt": 0.0}
    bounds["le" if closed_high else "lt"] = 1.0
    return constrained(default, **bounds)


def one_of(default: str, *choices: str) -> Any:
    """A string from a fixed set."""
    return constrained(default, choices=tuple(choices))


def constraint_of(field: dataclasses.Field[Any]) -> Constraint | None:
    """The constraint declared on a dataclass field, if any."""
    found = field.metadata.get(_CONSTRAINT_KEY)
    return found if isinstance(found, Constraint) else None
