"""The gradient heat-map PNG (log10 gradient norm, layers x sampled steps), drawn with Pillow.

Pillow rather than matplotlib because the map is drawn at the end of every run that has the
gradient monitor on, on the path from the last step to the run's FINISHED status: importing
``matplotlib.figure`` costs about 0.33 s of CPU and drawing the figure about 55 ms, where
Pillow's import is about 25 ms and this drawing about 5 ms (the picture is a grid of cells,
two axes of labels and a colour bar, which needs no plotting library). The colours are
viridis (matplotlib's default map), interpolated between 17 of its colours.
"""

from __future__ import annotations

import functools
import importlib
import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np
    from PIL import Image, ImageDraw, ImageFont

# viridis at 0, 1/16, ..., 1 (matplotlib's default colormap sampled at 17 points; linear
# between them it is within 6/255 of matplotlib's own, tested).
VIRIDIS = (
    (68, 1, 84),
    (72, 24, 106),
    (71, 45, 123),
    (66, 64, 134),
    (59, 82, 139),
    (51, 99, 141),
    (44, 114, 142),
    (38, 130, 142),
    (33, 145, 140),
    (31, 160, 136),
    (40, 174, 128),
    (63, 188, 115),
    (94, 201, 98),
    (132, 212, 75),
    (173, 220, 48),
    (216, 226, 25),
    (253, 231, 37),
)
# What drawing imports (~25 ms): a process that runs several jobs imports it once, so that
# every job's forked metric sender has it.
HEATMAP_MODULES = ("numpy", "PIL.Image", "PIL.ImageDraw", "PIL.ImageFont", __name__)
# What the metric sender calls as soon as it starts (SenderSettings.warm_up), in a run that
# will draw the map at its end.
WARM_UP = f"{__name__}:warm_up"
MISSING = (235, 235, 235)  # a sample without a finite norm (none recorded, or zero)
INK = (30, 30, 30)
WIDTH = 900
ROW_HEIGHT = 45
FONT_SIZE = 13
MAX_X_TICKS = 8


def warm_up() -> None:
    """Import what drawing needs, and what Pillow imports on its first ``save`` (its format
    plugins), and load the fonts: ~50-80 ms that the first map would otherwise spend at the
    end of the run, while the run waits for its artifacts."""
    for module in HEATMAP_MODULES:
        importlib.import_module(module)
    from PIL import Image

    Image.preinit()
    _fonts()


@functools.cache
def _fonts() -> tuple[Any, Any]:
    """Pillow's built-in font at the label and title sizes (loaded once per process)."""
    from PIL import ImageFont

    return ImageFont.load_default(size=FONT_SIZE), ImageFont.load_default(size=FONT_SIZE + 2)


def viridis(fractions: np.ndarray) -> np.ndarray:
    """RGB bytes (..., 3) for ``fractions`` in [0, 1]."""
    import numpy as np

    anchors = np.linspace(0.0, 1.0, len(VIRIDIS))
    table = np.array(VIRIDIS, dtype=float)
    channels = [np.interp(fractions, anchors, table[:, c]) for c in range(3)]
    return np.stack(channels, axis=-1).round().astype(np.uint8)


def log_norms(grad_norm: list[list[float | None]]) -> np.ndarray:
    """log10 of the norms (layers x samples); NaN where a norm is missing, zero or not finite."""
    import numpy as np

    values = np.array(grad_norm, dtype=float)  # None becomes NaN
    with np.errstate(divide="ignore", invalid="ignore"):
        logged = np.log10(values)
    logged[~np.isfinite(logged)] = np.nan
    return logged


def colour_cells(logged: np.ndarray) -> tuple[np.ndarray, float, float]:
    """The cells' RGB (layers x samples x 3) and the value range the colours span."""
    import numpy as np

    finite = logged[np.isfinite(logged)]
    low, high = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 1.0)
    span = high - low if high > low else 1.0
    cells = viridis(np.clip(np.nan_to_num((logged - low) / span, nan=0.0), 0.0, 1.0))
    cells[~np.isfinite(logged)] = MISSING
    return cells, low, low + span


def write_artifacts(data: dict[str, Any], folder: Path) -> list[Path]:
    """The gradient monitor's artifacts from its summary (``GradientMonitor.summary``):
    ``gradients.json`` and this heat map. A function of plain data in a module that does not
    import torch, so the metric sender process draws them off the training process (see
    :meth:`~trainlab.tracking.mlflow_tracker.MlflowTracker.log_rendered`) without importing
    torch (a sender forked from a fork server has not)."""
    import json

    folder.mkdir(parents=True, exist_ok=True)
    stats = folder / "gradients.json"
    stats.write_text(json.dumps(data))
    return [stats, plot_heatmap(data, folder / "gradient_heatmap.png")]


def plot_heatmap(data: dict[str, Any], path: Path) -> Path:
    """Write the heat map of the monitor's summary ``data`` (see
    :meth:`~trainlab.train.gradient_monitor.GradientMonitor.summary`) to ``path``."""
    import numpy as np
    from PIL import Image, ImageDraw

    layers: list[str] = list(data["layers"])
    steps: list[int] = list(data["steps"])
    logged = log_norms(data["grad_norm"]).reshape(len(layers), -1)
    cells, low, high = colour_cells(logged)
    font, title_font = _fonts()

    label_width = max((int(font.getlength(name)) for name in layers), default=0)
    left, top, bottom, right = label_width + 16, 34, 46, 80
    plot_width = WIDTH - left - right
    plot_height = max(1, ROW_HEIGHT * len(layers))
    image = Image.new("RGB", (WIDTH, top + plot_height + bottom), "white")
    draw = ImageDraw.Draw(image)

    if cells.size:
        grid = Image.fromarray(np.ascontiguousarray(cells), "RGB")
        image.paste(grid.resize((plot_width, plot_height), Image.Resampling.NEAREST), (left, top))
    draw.rectangle((left - 1, top - 1, left + plot_width, top + plot_height), outline=INK)
    draw.text((left + plot_width / 2, 8), "log10 gradient norm per layer", INK, title_font, "ma")

    for row, name in enumerate(layers):
        middle = top + ROW_HEIGHT * (row + 0.5)
        draw.line((left - 5, middle, left - 1, middle), INK)
        draw.text((left - 8, middle), name, INK, font, "rm")
    _x_ticks(draw, font, steps, left, top + plot_height, plot_width)
    draw.text((left + plot_width / 2, top + plot_height + 26), "step", INK, font, "ma")
    _colour_bar(image, draw, font, (left + plot_width + 14, top, plot_height), low, high)
    image.save(path, "PNG")
    return path


def _x_ticks(
    draw: ImageDraw.ImageDraw,
    font: ImageFont.FreeTypeFont | ImageFont.ImageFont,
    steps: list[int],
    left: int,
    baseline: int,
    width: int,
) -> None:
    """Up to eight step labels under the centres of their columns."""
    if not steps:
        return
    count = min(MAX_X_TICKS, len(steps))
    indices = sorted({round(i * (len(steps) - 1) / max(1, count - 1)) for i in range(count)})
    column = width / len(steps)
    for index in indices:
        x = left + column * (index + 0.5)
        draw.line((x, baseline, x, baseline + 4), INK)
        draw.text((x, baseline + 6), str(steps[index]), INK, font, "ma")


def _colour_bar(
    image: Image.Image,
    draw: ImageDraw.ImageDraw,
    font: ImageFont.FreeTypeFont | ImageFont.ImageFont,
    box: tuple[int, int, int],
    low: float,
    high: float,
) -> None:
    """A vertical viridis bar, ``high`` at the top, with five value labels."""
    import numpy as np
    from PIL import Image

    x, top, height = box
    bar_width = 14
    fractions = np.linspace(1.0, 0.0, height)[:, None].repeat(bar_width, axis=1)
    image.paste(Image.fromarray(np.ascontiguousarray(viridis(fractions)), "RGB"), (x, top))
    draw.rectangle((x - 1, top - 1, x + bar_width, top + height), outline=INK)
    for i in range(5):
        fraction = i / 4
        y = top + (height - 1) * (1 - fraction)
        value = low + (high - low) * fraction
        draw.line((x + bar_width, y, x + bar_width + 4, y), INK)
        draw.text((x + bar_width + 7, y), _tick_label(value), INK, font, "lm")


def _tick_label(value: float) -> str:
    if not math.isfinite(value):
        return "nan"
    return f"{value:.2g}" if abs(value) < 10 else f"{value:.0f}"
