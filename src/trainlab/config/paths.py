"""Where the config tree lives: inside an installed wheel, or at the repository root."""

from __future__ import annotations

from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent.parent


def config_dir() -> Path:
    """The ``conf/`` folder: packaged with a wheel, or the checkout's top-level one."""
    for candidate in (PACKAGE_DIR / "conf", PACKAGE_DIR.parent.parent / "conf"):
        if (candidate / "train.yaml").is_file():
            return candidate
    raise FileNotFoundError(
        f"trainlab's config tree was not found next to {PACKAGE_DIR}: reinstall the package "
        "(make install) or run from a checkout that has conf/train.yaml."
    )
