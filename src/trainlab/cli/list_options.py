"""``trainlab list [GROUP]``: every option of every config group, with its description.

Reads the YAML files' header comments (line 1: the command, line 2: what it is), so it needs
neither torch nor Hydra and answers at once.
"""

from __future__ import annotations

from pathlib import Path

from trainlab.config.errors import UsageError
from trainlab.config.paths import config_dir
from trainlab.config.suggest import did_you_mean

HELP = """usage: trainlab list [GROUP]

Lists the options of every config group (or of GROUP) with a one-line description.
Choose one with GROUP=OPTION, e.g. `trainlab train optimizer=sgd`."""


def describe_option(path: Path) -> tuple[str, str]:
    """(description, example command) from the option file's header comments."""
    comments = []
    for line in path.read_text().splitlines():
        stripped = line.strip()
        if not stripped.startswith("#"):
            break
        text = stripped.lstrip("#").strip()
        if not text.startswith("@"):
            comments.append(text)
    command = next((c for c in comments if c.startswith("trainlab ")), "")
    description = next((c for c in comments if not c.startswith("trainlab ")), "")
    return description, command


def groups(root: Path) -> dict[str, list[Path]]:
    """Group name -> option files, for every folder of the config tree (nested: a/b)."""
    found: dict[str, list[Path]] = {}
    for yaml_file in sorted(root.rglob("*.yaml")):
        if yaml_file.parent == root:
            continue
        found.setdefault(yaml_file.parent.relative_to(root).as_posix(), []).append(yaml_file)
    return found


def run(args: list[str]) -> int:
    if args and args[0] in ("-h", "--help"):
        print(HELP)
        return 0
    if len(args) > 1:
        raise UsageError(f"takes at most one group, got {' '.join(args)}. {HELP.splitlines()[0]}")
    root = config_dir()
    available = groups(root)
    wanted = args[0] if args else None
    if wanted is not None and wanted not in available:
        raise UsageError(
            f"no config group {wanted!r}.{did_you_mean(wanted, available)} "
            f"Groups: {', '.join(available)}."
        )
    for group, files in available.items():
        if wanted is not None and group != wanted:
            continue
        print(f"{group}:")
        width = max(len(f.stem) for f in files)
        for option in files:
            description, _ = describe_option(option)
            print(f"  {option.stem.ljust(width)}  {description}")
        print()
    return 0
