"""``trainlab validate [OVERRIDES]``: compose and check the config; print every problem."""

from __future__ import annotations

HELP = """usage: trainlab validate [OVERRIDES] [-m]

Composes the config exactly as `trainlab train` would and checks every key: unknown keys,
wrong types, values out of range, combinations that cannot train. Prints all problems at
once and exits 2, or prints the config and exits 0. With -m, checks every job of a sweep."""


def run(args: list[str]) -> int:
    if args and args[0] in ("-h", "--help"):
        print(HELP)
        return 0
    from omegaconf import OmegaConf

    from trainlab.cli.train import validate_command_line

    configs = validate_command_line(args)
    if len(configs) == 1:
        print(OmegaConf.to_yaml(configs[0], resolve=True), end="")
    print(f"Config OK ({len(configs)} job{'s' if len(configs) != 1 else ''} checked).")
    return 0
