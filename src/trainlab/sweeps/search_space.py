"""The search space of a Bayesian sweep, written in Hydra's override grammar (as Hydra's own
Optuna sweeper reads it), turned into Optuna distributions and checked before anything runs.

    optimizer.lr: tag(log, interval(1e-4, 1e-1))   a float on a log scale
    trainer.batch_size: range(32, 257, 32)          integers 32, 64, ..., 256
    model.depth: tag(int, interval(1, 4))           an integer 1..4
    optimizer: choice(adam, adamw, sgd)             a categorical choice (also adam,adamw,sgd)
    model.hidden_sizes: choice([64], [128], [64,64])

Every bound and every choice is composed and validated like a training config, so an unknown
key, a learning rate of 0 or an optimizer that does not exist fails in a second, exit 2.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from trainlab.config.errors import ConfigError, Problem

# Hydra's name for the sweeper this module serves (conf: hydra/sweeper=trainlab_optuna).
SWEEPER_TARGET = "hydra_plugins.trainlab_plugins.optuna_sweeper.TrainlabOptunaSweeper"


@dataclass(frozen=True)
class Dimension:
    """One searched key: a float or int range (log or linear) or a list of choices."""

    key: str
    kind: str  # "float", "int" or "choice"
    low: float = 0.0
    high: float = 0.0
    step: int | None = None
    log: bool = False
    choices: tuple[str, ...] = ()  # override text of each choice ("adam", "[64,64]")
    written: str = ""  # as the user wrote it, for messages

    def distribution(self) -> Any:
        from optuna.distributions import (
            CategoricalDistribution,
            FloatDistribution,
            IntDistribution,
        )

        if self.kind == "float":
            return FloatDistribution(self.low, self.high, log=self.log)
        if self.kind == "int":
            return IntDistribution(int(self.low), int(self.high), log=self.log, step=self.step or 1)
        return CategoricalDistribution(list(self.choices))

    def override(self, value: Any) -> str:
        """The override that trains ``value`` (a float keeps 6 significant digits)."""
        if self.kind == "float":
            return f"{self.key}={float(value):.6g}"
        if self.kind == "int":
            return f"{self.key}={int(value)}"
        return f"{self.key}={value}"

    def probes(self) -> list[str]:
        """The overrides to compose when checking this dimension: both ends, every choice."""
        if self.kind == "choice":
            return [self.override(choice) for choice in self.choices]
        return [self.override(self.low), self.override(self.high)]


@dataclass
class SearchSpace:
    dimensions: list[Dimension]
    fixed: list[str]  # the command line's plain overrides, the same for every trial

    def trial_overrides(self, params: dict[str, Any]) -> list[str]:
        return [*self.fixed, *(d.override(params[d.key]) for d in self.dimensions)]


def parse_search_space(
    params: dict[str, str], arguments: list[str]
) -> tuple[SearchSpace, list[Problem]]:
    """``hydra.sweeper.params`` plus the command line (whose sweeps join the space and win
    for a key in both) -> the space and every problem found in how it is written."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    parser = OverridesParser.create()
    problems: list[Problem] = []
    declared = {str(k): str(v) for k, v in params.items()}
    lines: dict[str, str] = {}
    fixed: list[str] = []
    for key, value in declared.items():
        lines[key] = f"{key}={value}"
    for argument in arguments:
        key = argument.lstrip("+~").split("=", 1)[0]
        lines.pop(key, None)
        try:
            (override,) = parser.parse_overrides([argument])
        except Exception as error:
            problems.append(Problem(key, f"cannot parse {argument!r}: {_first_line(error)}"))
            continue
        if override.is_sweep_override():
            lines[key] = argument
        else:
            fixed.append(argument)
    dimensions = []
    for key, line in lines.items():
        try:
            (override,) = parser.parse_overrides([line])
        except Exception as error:
            problems.append(
                Problem(
                    f"hydra.sweeper.params.{key}",
                    f"cannot parse {line.split('=', 1)[1]!r}: {_first_line(error)}. Write a "
                    "range as tag(log, interval(1e-4, 1e-1)), range(1, 5) or choice(a, b).",
                )
            )
            continue
        dimension, problem = _dimension(override, line.split("=", 1)[1])
        if problem is not None:
            problems.append(problem)
        elif dimension is not None:
            dimensions.append(dimension)
        else:  # a plain value in the preset: fixed for every trial
            fixed.insert(0, line)
    if not dimensions and not problems:
        problems.append(
            Problem(
                "hydra.sweeper.params",
                "the search space is empty: pick a preset (hparams_search=lr_wd, see `trainlab "
                "list hparams_search`) or sweep a key, e.g. 'optimizer.lr=tag(log, "
                "interval(1e-4, 1e-1))'.",
            )
        )
    return SearchSpace(dimensions, fixed), problems


def _dimension(override: Any, written: str) -> tuple[Dimension | None, Problem | None]:
    from hydra.core.override_parser.types import ChoiceSweep, IntervalSweep, RangeSweep

    key = str(override.get_key_element())
    value = override.value()
    where = f"hydra.sweeper.params.{key}"
    tags = set(getattr(value, "tags", set()) or set())
    unknown_tags = tags - {"log", "int"}
    if unknown_tags:
        return None, Problem(
            where, f"unknown tag {sorted(unknown_tags)[0]!r} in {written!r}; use log or int."
        )
    log = "log" in tags
    if isinstance(value, IntervalSweep):
        low, high = float(value.start or 0), float(value.end or 0)
        kind = "int" if "int" in tags else "float"
        problem = _check_bounds(where, written, low, high, log)
        if problem is None and kind == "int" and (low != int(low) or high != int(high)):
            problem = Problem(where, f"{written!r} is tagged int but its bounds are not integers.")
        return Dimension(key, kind, low, high, log=log, written=written), problem
    if isinstance(value, RangeSweep):
        numbers = [value.start, value.stop, value.step]
        values = list(override.sweep_string_iterator())
        if not values:
            return None, Problem(where, f"{written!r} holds no value (is start < stop?).")
        if all(float(n) == int(n) for n in numbers if n is not None):
            start, step = int(value.start or 0), int(value.step or 1)
            last = int(values[-1])
            if log and step != 1:
                return None, Problem(where, f"{written!r}: a log-scale range needs step 1.")
            problem = _check_bounds(where, written, start, last, log) if log else None
            if start == last:
                problem = Problem(where, f"{written!r} holds a single value; set it plainly.")
            return Dimension(key, "int", start, last, step=step, log=log, written=written), problem
        return Dimension(key, "choice", choices=tuple(values), written=written), None
    if isinstance(value, ChoiceSweep):
        choices = tuple(override.sweep_string_iterator())
        if len(set(choices)) < 2:
            return None, Problem(where, f"{written!r} needs at least two different choices.")
        if log:
            return None, Problem(where, f"{written!r}: a choice has no log scale; drop the tag.")
        return Dimension(key, "choice", choices=choices, written=written), None
    if override.is_sweep_override():  # glob() and other forms Optuna has no distribution for
        return None, Problem(
            where, f"{written!r} cannot be searched; use interval, range or choice."
        )
    return None, None


def _check_bounds(where: str, written: str, low: float, high: float, log: bool) -> Problem | None:
    if not (math.isfinite(low) and math.isfinite(high)) or low >= high:
        return Problem(where, f"{written!r}: the lower bound must be below the upper bound.")
    if log and low <= 0:
        return Problem(
            where,
            f"{written!r}: a log scale needs a lower bound above 0 (got {low:g}); e.g. "
            f"tag(log, interval({high / 1000:g}, {high:g})).",
        )
    return None


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


def check_search_space(space: SearchSpace, folder: Path) -> list[Problem]:
    """Compose and validate the config at both ends of every range and at every choice
    (inside an initialised :func:`~trainlab.config.compose.hydra_context`)."""
    from trainlab.config.compose import compose_in_context

    fixed = space.fixed
    try:  # a bad fixed override is the caller's to report; check the space without it
        compose_in_context(fixed, folder)
    except ConfigError:
        fixed = [o for o in fixed if "." not in o.split("=", 1)[0]]
        try:
            compose_in_context(fixed, folder)
        except ConfigError:
            fixed = []
    space = SearchSpace(space.dimensions, fixed)
    base = [d.probes()[0] for d in space.dimensions]
    problems: list[Problem] = []
    for index, dimension in enumerate(space.dimensions):
        for probe in dimension.probes():
            job = [*space.fixed, *base[:index], probe, *base[index + 1 :]]
            try:
                compose_in_context(job, folder)
            except ConfigError as error:
                for problem in error.problems:
                    owner = _owner(problem.key, space.dimensions)
                    if owner is dimension:
                        message = f"{problem.message} (from the search space: {dimension.key}"
                        found = Problem(problem.key, f"{message}={dimension.written})")
                    elif owner is not None:
                        continue  # another dimension's bound: reported when it is probed
                    else:
                        found = problem
                    if found not in problems:
                        problems.append(found)
    return problems


def _owner(problem_key: str, dimensions: list[Dimension]) -> Dimension | None:
    """The dimension a problem's key belongs to: the same key, else the longest dimension
    key above it (``optimizer`` for ``optimizer.momentum``)."""
    for dimension in dimensions:
        if dimension.key == problem_key:
            return dimension
    above = [d for d in dimensions if problem_key.startswith(f"{d.key}.")]
    return max(above, key=lambda d: len(d.key)) if above else None


def bayesian_sweep_problems(overrides: list[str], folder: Path) -> list[Problem]:
    """Every problem of a ``trainlab train -m`` command line whose sweeper is trainlab's
    Optuna sweeper ([] for any other sweeper)."""
    from hydra import compose

    from trainlab.config.compose import CONFIG_NAME

    plain = [o for o in overrides if not _is_sweep(o)]
    groups = [o for o in plain if _is_hydra(o) or "." not in o.split("=", 1)[0]]
    cfg = None
    # The sweeper's settings, even when a bad key elsewhere stops the full composition
    # (that key is reported by the caller; the search space is checked all the same).
    for attempt in (plain, groups, [o for o in plain if _is_hydra(o)]):
        try:
            cfg = compose(config_name=CONFIG_NAME, overrides=attempt, return_hydra_config=True)
            break
        except Exception:
            continue
    if cfg is None or str(cfg.hydra.sweeper.get("_target_", "")) != SWEEPER_TARGET:
        return []
    import importlib.util

    if importlib.util.find_spec("optuna") is None:
        return [
            Problem(
                "hydra/sweeper",
                "trainlab_optuna needs Optuna: pip install 'trainlab[sweep]' (make install "
                "includes it).",
            )
        ]
    problems = _settings_problems(cfg.hydra.sweeper)
    job_overrides = [o for o in overrides if not _is_hydra(o)]
    space, parse_problems = parse_search_space(dict(cfg.hydra.sweeper.params or {}), job_overrides)
    problems += parse_problems
    return problems + check_search_space(space, folder)


def _settings_problems(sweeper: Any) -> list[Problem]:
    problems = []
    if int(sweeper.n_trials) < 1:
        problems.append(Problem("hydra.sweeper.n_trials", f"must be >= 1, got {sweeper.n_trials}."))
    if int(sweeper.n_jobs) < 1:
        problems.append(Problem("hydra.sweeper.n_jobs", f"must be >= 1, got {sweeper.n_jobs}."))
    from trainlab.sweeps.study import PRUNERS, SAMPLERS

    for key, name, known in (
        ("hydra.sweeper.sampler.name", sweeper.sampler.name, SAMPLERS),
        ("hydra.sweeper.pruner.name", sweeper.pruner.name, PRUNERS),
    ):
        if name not in known:
            from trainlab.config.suggest import did_you_mean

            problems.append(
                Problem(
                    key,
                    f"no {key.split('.')[2]} {name!r}; available: "
                    f"{', '.join(known)}.{did_you_mean(str(name), known)}",
                )
            )
    return problems


def _is_sweep(override: str) -> bool:
    from hydra.core.override_parser.overrides_parser import OverridesParser

    try:
        return bool(OverridesParser.create().parse_overrides([override])[0].is_sweep_override())
    except Exception:
        return False


def _is_hydra(override: str) -> bool:
    key = override.lstrip("+~").split("=", 1)[0]
    return key == "hydra" or key.startswith(("hydra.", "hydra/"))


def raise_problems(problems: list[Problem]) -> None:
    if problems:
        raise ConfigError(problems)
