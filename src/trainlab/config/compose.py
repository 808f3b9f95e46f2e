"""Compose the config with Hydra's compose API and turn every failure into a :class:`Problem`.

Hydra stops at the first bad override; here each override is tried on its own as well, so a
command line with three mistakes reports all three, each with its key and a did-you-mean.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from trainlab.config.errors import ConfigError, Problem
from trainlab.config.paths import config_dir
from trainlab.config.schema import register_schemas
from trainlab.config.suggest import did_you_mean
from trainlab.config.validation import validate_config

CONFIG_NAME = "train"


@contextmanager
def hydra_context(directory: Path | None = None) -> Iterator[Path]:
    """Initialise Hydra's compose API on the config tree (``conf/`` unless given)."""
    from hydra import initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    register_schemas()
    folder = (directory or config_dir()).resolve()
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(folder), version_base="1.3", job_name="trainlab"):
        yield folder


def compose_config(overrides: list[str], directory: Path | None = None) -> DictConfig:
    """The validated config for ``overrides``; raises :class:`ConfigError` with every problem."""
    with hydra_context(directory) as folder:
        return compose_in_context(overrides, folder)


def compose_in_context(overrides: list[str], folder: Path) -> DictConfig:
    """Like :func:`compose_config`, inside an already initialised :func:`hydra_context`."""
    from hydra import compose

    job_overrides = [o for o in overrides if not is_hydra_override(o)]
    try:
        cfg = compose(config_name=CONFIG_NAME, overrides=job_overrides)
    except Exception as error:  # Hydra and OmegaConf raise many types; each becomes a Problem
        problems, partial = _isolate_problems(job_overrides, folder, error)
        if partial is not None:
            problems += validate_config(partial)
        raise ConfigError(problems) from None
    problems = validate_config(cfg)
    if problems:
        raise ConfigError(problems)
    return cfg


class SweepComposer:
    """Composes every job of a sweep inside a :func:`hydra_context`, faster than one
    :func:`compose_in_context` per job: Hydra's composition (the defaults tree, loading and
    merging every group's config with its schema) costs ~0.15 s, and the jobs of a sweep
    usually differ only in values (``optimizer.lr=0.1,0.01``). The config of each distinct
    set of config-group choices is composed once; each job's value overrides are then applied
    to a copy with Hydra's own code for that step (``ConfigLoaderImpl._apply_overrides_to_
    config``), and the result validated as usual. Anything unusual (a delete or add override,
    a package, an error) goes through the full :func:`compose_in_context`, which also gives
    the usual error report; ``tests/test_compose.py`` checks both paths give equal configs."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self._bases: dict[tuple[str, ...], DictConfig] = {}

    def compose(self, overrides: list[str]) -> DictConfig:
        import copy

        from hydra._internal.config_loader_impl import ConfigLoaderImpl

        job_overrides = [o for o in overrides if not is_hydra_override(o)]
        split = self._split(job_overrides)
        if split is None:
            return compose_in_context(overrides, self.folder)
        groups = [str(o.input_line) for o in split[0]]
        values = split[1]
        try:
            key = tuple(groups)
            if key not in self._bases:
                from hydra import compose

                self._bases[key] = compose(config_name=CONFIG_NAME, overrides=groups)
            cfg = copy.deepcopy(self._bases[key])
            ConfigLoaderImpl._apply_overrides_to_config(values, cfg)
        except Exception:  # the full composition reports it with every detail
            return compose_in_context(overrides, self.folder)
        problems = validate_config(cfg)
        if problems:
            raise ConfigError(problems)
        return cfg

    @staticmethod
    def _split(overrides: list[str]) -> tuple[list[Any], list[Any]] | None:
        from hydra.core.global_hydra import GlobalHydra

        return split_value_overrides(GlobalHydra.instance().config_loader(), overrides)


def split_value_overrides(loader: Any, overrides: list[str]) -> tuple[list[Any], list[Any]] | None:
    """(config-group overrides, value overrides), parsed, for Hydra's config
    ``loader``, or None when an override is not a plain ``group=option`` or ``key=value``
    (a sweep, a delete, an add, a package) or cannot be parsed."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    repository = getattr(loader, "repository", None)
    if repository is None:
        return None
    try:
        parsed = OverridesParser.create(config_loader=loader).parse_overrides(overrides)
    except Exception:
        return None
    groups: list[Any] = []
    values: list[Any] = []
    for override in parsed:
        if override.is_sweep_override() or override.is_delete() or override.is_add():
            return None
        if override.is_force_add() or override.package is not None:
            return None
        if repository.group_exists(override.key_or_group):
            groups.append(override)
        else:
            values.append(override)
    return groups, values


def expand_sweep(overrides: list[str]) -> list[list[str]]:
    """Every job's overrides of a grid sweep (``a=1,2 b=x,y`` -> 4 lists), as Hydra's basic
    sweeper would launch them, including the sweep a preset declares in
    ``hydra.sweeper.params`` (the command line wins for a key in both, as in Hydra). Falls
    back to the non-sweep overrides for sweeps it cannot enumerate (intervals for a Bayesian
    sweeper)."""
    from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
    from hydra.core.global_hydra import GlobalHydra
    from hydra.core.override_parser.overrides_parser import OverridesParser

    job_overrides = [o for o in overrides if not is_hydra_override(o)]
    given = {o.lstrip("+~").split("=", 1)[0] for o in job_overrides}
    declared = [
        f"{key}={value}" for key, value in _declared_sweep(overrides).items() if key not in given
    ]
    parser = OverridesParser.create(config_loader=GlobalHydra.instance().config_loader())
    parsed = parser.parse_overrides([*declared, *job_overrides])
    try:
        return BasicSweeper.split_arguments(parsed, max_batch_size=None)[0]
    except Exception:
        return [[str(o.input_line) for o in parsed if not o.is_sweep_override()]]


def _declared_sweep(overrides: list[str]) -> dict[str, str]:
    """``hydra.sweeper.params`` of the composed config (a preset's own sweep), or nothing
    when the config does not compose (its problems are reported by the caller)."""
    from hydra import compose

    try:
        cfg = compose(config_name=CONFIG_NAME, overrides=overrides, return_hydra_config=True)
        params = cfg.hydra.sweeper.get("params") or {}
    except Exception:
        return {}
    return {str(key): str(value) for key, value in params.items()}


def is_hydra_override(override: str) -> bool:
    key = override.lstrip("+~").split("=", 1)[0]
    return key == "hydra" or key.startswith(("hydra.", "hydra/"))


def _is_group_override(override: str, folder: Path) -> bool:
    key = override.lstrip("+~").split("=", 1)[0].split("@", 1)[0]
    return "." not in key and (folder / key).is_dir()


def _isolate_problems(
    overrides: list[str], folder: Path, original: Exception
) -> tuple[list[Problem], DictConfig | None]:
    """Try the overrides one at a time (group choices first, as Hydra applies them), keeping
    the good ones, so every bad one is reported. Returns the config of the good ones."""
    from hydra import compose

    ordered = sorted(overrides, key=lambda o: 0 if _is_group_override(o, folder) else 1)
    accepted: list[str] = []
    problems: list[Problem] = []
    cfg: DictConfig | None = None
    for override in ordered:
        try:
            cfg = compose(config_name=CONFIG_NAME, overrides=[*accepted, override])
        except Exception as error:
            problems.append(describe_error(error, override, folder))
        else:
            accepted.append(override)
    if not problems:  # each override works alone; together they clash
        problems.append(describe_error(original, " ".join(overrides), folder))
        return problems, None
    if cfg is None:
        try:
            cfg = compose(config_name=CONFIG_NAME, overrides=accepted)
        except Exception:
            cfg = None
    return problems, cfg


def describe_error(error: BaseException, override: str, folder: Path) -> Problem:
    """One short, actionable problem from a Hydra or OmegaConf exception."""
    from hydra.errors import MissingConfigException, OverrideParseException
    from omegaconf.errors import ConfigKeyError, OmegaConfBaseException

    if isinstance(error, OverrideParseException):
        return Problem(
            "",
            f"cannot parse {override!r}: {error}. Overrides look like key=value, "
            "group=option or +new_key=value.",
        )
    if isinstance(error, MissingConfigException):
        return _missing_option(override, folder, error)
    cause = error.__cause__ if isinstance(error.__cause__, OmegaConfBaseException) else error
    if isinstance(cause, OmegaConfBaseException):
        full_key = str(getattr(cause, "full_key", "") or override.split("=", 1)[0])
        key = str(getattr(cause, "key", "") or full_key.rsplit(".", 1)[-1])
        if isinstance(cause, ConfigKeyError | AttributeError) or "not in" in str(cause):
            return Problem(
                full_key,
                f"unknown key {key!r}{_where(cause)}."
                f"{did_you_mean(key, _fields_of(cause))} Run `trainlab train --cfg "
                "job` to see every key.",
            )
        first_line = str(getattr(cause, "msg", cause)).splitlines()[0]
        return Problem(full_key, f"{first_line} (from {override!r}).")
    return Problem("", f"{override!r}: {str(error).splitlines()[0]}")


def _missing_option(override: str, folder: Path, error: Exception) -> Problem:
    key, _, value = override.lstrip("+~").partition("=")
    group = key.split("@", 1)[0]
    options = sorted(p.stem for p in (folder / group).glob("*.yaml")) if group else []
    if not options:
        return Problem(group, str(error).splitlines()[0])
    wanted = value.strip("[]").split(",")
    unknown = [w.strip() for w in wanted if w.strip() and w.strip() not in options]
    name = unknown[0] if unknown else value
    return Problem(
        group,
        f"no option {name!r}; available: {', '.join(options)}."
        f"{did_you_mean(name, options)} See `trainlab list {group}`.",
    )


def _where(cause: BaseException) -> str:
    schema = getattr(cause, "object_type", None)
    return f" in {schema.__name__}" if isinstance(schema, type) else ""


def _fields_of(cause: BaseException) -> list[str]:
    schema = getattr(cause, "object_type", None)
    if isinstance(schema, type) and dataclasses.is_dataclass(schema):
        return [f.name for f in dataclasses.fields(schema)]
    return []
