"""The user's own files: a CSV table or a NumPy ``.npz`` archive.

CSV: text columns (or the ones named in ``dataset.categorical``) are one-hot encoded; missing
cells are rejected with the lines to fix, or left as NaN for the split to fill from the
training rows (``dataset.missing=impute_*``). Every problem found is reported at once.
"""

from __future__ import annotations

import csv
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from trainlab.config.suggest import did_you_mean
from trainlab.data.base import (
    CLASSIFICATION,
    REGRESSION,
    Arrays,
    DatasetError,
    DatasetInfo,
    DatasetSpec,
)

# Integer-like targets with at most this many distinct values are taken as class labels.
MAX_AUTO_CLASSES = 50
# Cells read as "no value" (compared lower-cased, after stripping spaces).
MISSING_MARKERS = frozenset({"", "na", "n/a", "nan", "null", "?"})
IMPUTE_ADVICE = (
    "set dataset.missing=impute_mean, impute_median or impute_most_frequent to fill them from "
    "the training split"
)


def _existing_file(cfg: Any, kind: str) -> Path:
    path = Path(str(cfg.path)).expanduser()
    if not path.is_file():
        raise DatasetError(
            "dataset.path",
            f"file {str(path)!r} does not exist (resolved to {path.resolve()}); "
            f"give the path of {kind}",
        )
    return path


def _raise_all(problems: list[DatasetError]) -> None:
    if problems:
        raise DatasetError(problems[0].key, str(problems[0]), tuple(problems[1:]))


def _is_missing(cell: str) -> bool:
    return cell.strip().lower() in MISSING_MARKERS


def _is_number(cell: str) -> bool:
    try:
        float(cell)
    except ValueError:
        return False
    return True


def _natural_key(value: str) -> tuple[int, float | str]:
    try:
        return (0, float(value))
    except ValueError:
        return (1, value)


def _lines(rows: list[int], limit: int = 5) -> str:
    shown = ", ".join(str(row) for row in rows[:limit])
    return shown + (f" and {len(rows) - limit} more" if len(rows) > limit else "")


def _infer_task(values: list[str]) -> str:
    try:
        numbers = [float(value) for value in values]
    except ValueError:
        return CLASSIFICATION  # text labels
    integral = all(number.is_integer() for number in numbers)
    return CLASSIFICATION if integral and len(set(numbers)) <= MAX_AUTO_CLASSES else REGRESSION


def _check_classes(count: int, where: str) -> None:
    if count < 2:
        raise DatasetError(
            "dataset.target",
            f"{where} holds a single class; classification needs at least two (use "
            "dataset.task=regression if the target is a measurement)",
        )


# --- CSV ------------------------------------------------------------------------------------


@dataclass
class _Table:
    """A parsed CSV file: which columns are what, before any array is built."""

    path: Path
    header: list[str]
    body: list[list[str]]  # cells stripped; line numbers are index + 2
    target_index: int
    categories: dict[int, list[str]]  # column index -> its categories, in order
    task: str
    classes: list[str]
    missing_cells: int
    difficulty: np.ndarray | None = None  # dataset.difficulty_column, taken out of the table

    @property
    def num_features(self) -> int:
        numeric = len(self.header) - 1 - len(self.categories)
        return numeric + sum(len(values) for values in self.categories.values())


def _read_rows(path: Path) -> tuple[list[str], list[list[str]]]:
    # utf-8-sig: a byte-order mark (as Excel writes) is not part of the first column's name.
    with path.open(newline="", encoding="utf-8-sig") as handle:
        rows = [row for row in csv.reader(handle) if any(cell.strip() for cell in row)]
    if len(rows) < 3:
        raise DatasetError("dataset.path", f"{path} has {len(rows)} lines; need a header and rows")
    header = [name.strip() for name in rows[0]]
    for number, row in enumerate(rows[1:], start=2):
        if len(row) != len(header):
            raise DatasetError(
                "dataset.path",
                f"row {number} of {path.name} has {len(row)} cells but the header has "
                f"{len(header)} columns; every row needs one value per column",
            )
    return header, [[cell.strip() for cell in row] for row in rows[1:]]


def _parse_table(cfg: Any) -> _Table:
    """Read and check the file; every problem found is raised together."""
    path = _existing_file(cfg, "a CSV file with a header row")
    header, body = _read_rows(path)
    header, body, difficulty = _take_difficulty(cfg, path, header, body)
    problems: list[DatasetError] = []
    columns = ", ".join(header)
    if cfg.target not in header:
        problems.append(
            DatasetError(
                "dataset.target",
                f"column {cfg.target!r} is not in {path.name}; its columns are {columns}."
                f"{did_you_mean(str(cfg.target), header)}",
            )
        )
    named = None if cfg.categorical is None else [str(name) for name in cfg.categorical]
    for name in named or []:
        if name not in header:
            problems.append(
                DatasetError(
                    "dataset.categorical",
                    f"column {name!r} is not in {path.name}; its columns are {columns}."
                    f"{did_you_mean(name, header)}",
                )
            )
        elif name == cfg.target:
            problems.append(
                DatasetError(
                    "dataset.categorical",
                    f"{name!r} is the target column; remove it from dataset.categorical "
                    "(class labels are encoded by dataset.task)",
                )
            )
    _raise_all(problems)

    target_index = header.index(cfg.target)
    categories: dict[int, list[str]] = {}
    missing_by_column: dict[str, list[int]] = {}
    for index, name in enumerate(header):
        cells = [row[index] for row in body]
        missing_rows = [line for line, cell in enumerate(cells, start=2) if _is_missing(cell)]
        present = [cell for cell in cells if not _is_missing(cell)]
        if index == target_index:
            if missing_rows:
                problems.append(
                    DatasetError(
                        "dataset.target",
                        f"the target column {name!r} of {path.name} has no value on line(s) "
                        f"{_lines(missing_rows)}; a target cannot be imputed: drop those rows",
                    )
                )
            continue
        if missing_rows:
            missing_by_column[name] = missing_rows
        text = [cell for cell in present if not _is_number(cell)]
        # Auto-detection takes a column as categories only if none of its cells is a number:
        # a stray word in a numeric column is more likely a typo than a category.
        auto_categorical = named is None and text and len(text) == len(present)
        if auto_categorical or (named is not None and name in named):
            categories[index] = sorted(set(present), key=_natural_key)
        elif text:
            line = next(n for n, c in enumerate(cells, start=2) if c == text[0])
            advice = (
                "fix the cell, or list the column in dataset.categorical to one-hot encode it"
                if named is None
                else "add it to dataset.categorical to one-hot encode it, or drop the column"
            )
            problems.append(
                DatasetError(
                    "dataset.path" if named is None else "dataset.categorical",
                    f"column {name!r} of {path.name} is not numeric (line {line}: "
                    f"{text[0]!r}); {advice}",
                )
            )
        elif any(not np.isfinite(float(cell)) for cell in present):
            problems.append(
                DatasetError(
                    "dataset.path",
                    f"column {name!r} of {path.name} has an infinite value; replace or drop it",
                )
            )
    if missing_by_column and cfg.missing == "reject":
        where = "; ".join(
            f"column {name!r}: line(s) {_lines(rows)}" for name, rows in missing_by_column.items()
        )
        count = sum(len(rows) for rows in missing_by_column.values())
        problems.append(
            DatasetError(
                "dataset.missing",
                f"{path.name} has {count} missing value(s) ({where}) and dataset.missing=reject; "
                f"fill them in, or {IMPUTE_ADVICE}",
            )
        )
    _raise_all(problems)

    raw_targets = [row[target_index] for row in body]
    task = _infer_task(raw_targets) if cfg.task == "auto" else str(cfg.task)
    classes: list[str] = []
    if task == CLASSIFICATION:
        classes = sorted(set(raw_targets), key=_natural_key)
        _check_classes(len(classes), f"column {cfg.target!r} of {path.name}")
    else:
        bad = [line for line, cell in enumerate(raw_targets, start=2) if not _is_number(cell)]
        if bad:
            raise DatasetError(
                "dataset.task",
                f"regression needs a numeric target but column {cfg.target!r} of {path.name} "
                f"has text on line(s) {_lines(bad)}; use dataset.task=classification or fix "
                "those cells",
            )
    missing_cells = sum(len(rows) for rows in missing_by_column.values())
    return _Table(
        path, header, body, target_index, categories, task, classes, missing_cells, difficulty
    )


def _take_difficulty(
    cfg: Any, path: Path, header: list[str], body: list[list[str]]
) -> tuple[list[str], list[list[str]], np.ndarray | None]:
    """The table without ``dataset.difficulty_column`` (a per-example difficulty for
    ``curriculum=score``, higher is harder), and that column's numbers."""
    name = cfg.difficulty_column
    if name is None:
        return header, body, None
    if name not in header:
        raise DatasetError(
            "dataset.difficulty_column",
            f"column {name!r} is not in {path.name}; its columns are {', '.join(header)}."
            f"{did_you_mean(str(name), header)}",
        )
    if name == cfg.target:
        raise DatasetError(
            "dataset.difficulty_column",
            f"{name!r} is the target column; name the column that scores how hard each row is",
        )
    index = header.index(name)
    cells = [row[index] for row in body]
    bad = [line for line, cell in enumerate(cells, start=2) if not _is_number(cell)]
    if bad:
        raise DatasetError(
            "dataset.difficulty_column",
            f"the difficulty column {name!r} of {path.name} needs a number on every row; "
            f"line(s) {_lines(bad)} have none",
        )
    kept = [i for i in range(len(header)) if i != index]
    return (
        [header[i] for i in kept],
        [[row[i] for i in kept] for row in body],
        np.array([float(cell) for cell in cells], dtype=np.float64),
    )


def _describe_csv(cfg: Any) -> DatasetInfo:
    table = _parse_table(cfg)
    return DatasetInfo(table.task, len(table.classes), (table.num_features,))


def _load_csv(cfg: Any) -> Arrays:
    table = _parse_table(cfg)
    blocks: list[np.ndarray] = []
    for index in range(len(table.header)):
        if index == table.target_index:
            continue
        cells = [row[index] for row in table.body]
        if index in table.categories:
            values = table.categories[index]
            block = np.zeros((len(cells), len(values)))
            for row, cell in enumerate(cells):
                if _is_missing(cell):
                    block[row] = np.nan  # the whole group is imputed from the training rows
                else:
                    block[row, values.index(cell)] = 1.0
        else:
            block = np.array([[np.nan if _is_missing(c) else float(c)] for c in cells])
        blocks.append(block)
    features = np.concatenate(blocks, axis=1).astype(np.float32)
    raw_targets = [row[table.target_index] for row in table.body]
    if table.task == CLASSIFICATION:
        lookup = {value: label for label, value in enumerate(table.classes)}
        targets = np.array([lookup[value] for value in raw_targets], dtype=np.int64)
    else:
        targets = np.array([float(value) for value in raw_targets], dtype=np.float32)
    info = DatasetInfo(table.task, len(table.classes), (table.num_features,))
    return Arrays(features, targets, info, missing=str(cfg.missing), difficulty=table.difficulty)


# --- NPZ ------------------------------------------------------------------------------------


def _open_npz(cfg: Any) -> tuple[Path, Any]:
    path = _existing_file(cfg, "a .npz file written by numpy.savez")
    try:
        archive = np.load(path, allow_pickle=False)
    except (OSError, ValueError, zipfile.BadZipFile) as error:
        raise DatasetError(
            "dataset.path", f"{path.name} is not a NumPy .npz archive ({error})"
        ) from None
    if not hasattr(archive, "files"):
        raise DatasetError(
            "dataset.path",
            f"{path.name} holds a single array; save features and targets together with "
            "numpy.savez(path, x=features, y=targets)",
        )
    problems = [
        DatasetError(
            key,
            f"{path.name} has no array {name!r}; its arrays are {', '.join(archive.files)}."
            f"{did_you_mean(str(name), archive.files)}",
        )
        for key, name in (
            ("dataset.features_key", cfg.features_key),
            ("dataset.targets_key", cfg.targets_key),
        )
        if name not in archive.files
    ]
    _raise_all(problems)
    return path, archive


def _npz_shape(archive: Any, key: str) -> tuple[int, ...]:
    """An array's shape from its header, without reading the data."""
    with archive.zip.open(f"{key}.npy") as handle:
        version = np.lib.format.read_magic(handle)
        reader = (
            np.lib.format.read_array_header_1_0
            if version == (1, 0)
            else np.lib.format.read_array_header_2_0
        )
        shape, _, _ = reader(handle)
    return tuple(int(size) for size in shape)


def _npz_targets(cfg: Any, path: Path, targets: np.ndarray) -> tuple[str, np.ndarray, int]:
    """The task, the targets as labels or floats, and the number of classes."""
    if targets.ndim == 2 and targets.shape[1] == 1:
        targets = targets[:, 0]
    if targets.ndim != 1:
        raise DatasetError(
            "dataset.targets_key",
            f"array {cfg.targets_key!r} of {path.name} has shape {targets.shape}; "
            "give one target per example (shape (samples,))",
        )
    text = targets.dtype.kind in "USO"
    if cfg.task == "auto":
        distinct = np.unique(targets)
        integral = targets.dtype.kind in "iub" or bool(np.all(np.mod(distinct, 1) == 0))
        few = len(distinct) <= MAX_AUTO_CLASSES
        task = CLASSIFICATION if text or (integral and few) else REGRESSION
    else:
        task = str(cfg.task)
    if task == CLASSIFICATION:
        classes, labels = np.unique(targets, return_inverse=True)
        _check_classes(len(classes), f"array {cfg.targets_key!r} of {path.name}")
        return task, labels.astype(np.int64), len(classes)
    if text:
        raise DatasetError(
            "dataset.task",
            f"regression needs numbers but {cfg.targets_key!r} of {path.name} holds text; "
            "use dataset.task=classification",
        )
    return task, targets.astype(np.float32), 0


def _npz_info(cfg: Any) -> tuple[Path, Any, DatasetInfo, np.ndarray]:
    path, archive = _open_npz(cfg)
    shape = _npz_shape(archive, cfg.features_key)
    task, targets, num_classes = _npz_targets(cfg, path, archive[cfg.targets_key])
    if not shape or shape[0] != len(targets):
        raise DatasetError(
            "dataset.path",
            f"{path.name}: {cfg.features_key!r} has shape {shape} but {cfg.targets_key!r} has "
            f"{len(targets)} targets; the first axis of the features counts the examples",
        )
    input_shape = shape[1:] if len(shape) > 1 else (1,)
    return path, archive, DatasetInfo(task, num_classes, input_shape), targets


def _load_npz(cfg: Any) -> Arrays:
    path, archive, info, targets = _npz_info(cfg)
    features = np.asarray(archive[cfg.features_key], dtype=np.float32).reshape(
        len(targets), *info.input_shape
    )
    if np.isinf(features).any():
        raise DatasetError(
            "dataset.path", f"{cfg.features_key!r} of {path.name} has infinite values"
        )
    missing = int(np.isnan(features).sum())
    if missing and cfg.missing == "reject":
        raise DatasetError(
            "dataset.missing",
            f"{cfg.features_key!r} of {path.name} has {missing} NaN value(s) and "
            f"dataset.missing=reject; {IMPUTE_ADVICE}",
        )
    return Arrays(features, targets, info, missing=str(cfg.missing))


SPECS = [
    DatasetSpec(
        "csv",
        _describe_csv,
        _load_csv,
        provides_difficulty=lambda cfg: cfg is not None and cfg.difficulty_column is not None,
    ),
    DatasetSpec("npz", lambda cfg: _npz_info(cfg)[2], _load_npz),
]
