"""Validate a composed config: value ranges, required keys and combinations that cannot work.

Every problem is collected, none raised early, so a user fixes them all in one go.
"""

from __future__ import annotations

import contextlib
import dataclasses
from typing import Any

from omegaconf import DictConfig, ListConfig, OmegaConf

from trainlab.config.constraints import constraint_of
from trainlab.config.errors import Problem
from trainlab.config.suggest import did_you_mean


def validate_config(cfg: DictConfig) -> list[Problem]:
    """All problems of ``cfg``: ranges and required keys first, then combinations."""
    from omegaconf.errors import MissingMandatoryValue

    from trainlab.config.combinations import check_combinations

    problems = _check_fields(cfg, prefix="")
    # A required key left unset (``???``) is reported above; the combinations need its value.
    with contextlib.suppress(MissingMandatoryValue):
        problems += check_combinations(cfg)
    return problems


def _check_fields(node: DictConfig, prefix: str) -> list[Problem]:
    problems: list[Problem] = []
    schema = OmegaConf.get_type(node)
    fields = (
        {f.name: f for f in dataclasses.fields(schema)}
        if schema is not None and dataclasses.is_dataclass(schema)
        else {}
    )
    for key in node:
        name = str(key)
        path = f"{prefix}{name}"
        if OmegaConf.is_missing(node, name):
            problems.append(Problem(path, f"is required; set it on the command line: {path}=VALUE"))
            continue
        value = node[name]
        if isinstance(value, DictConfig):
            problems += _check_fields(value, prefix=f"{path}.")
            continue
        field = fields.get(name)
        constraint = constraint_of(field) if field is not None else None
        if constraint is None:
            continue
        plain = OmegaConf.to_container(value) if isinstance(value, ListConfig) else value
        if not constraint.accepts(plain):
            problems.append(
                Problem(
                    path,
                    f"{_show(plain)} is not allowed; expected {constraint.describe()}."
                    + (did_you_mean(str(plain), constraint.choices) if constraint.choices else ""),
                )
            )
    return problems


def _show(value: Any) -> str:
    return repr(value) if isinstance(value, str) else str(value)
