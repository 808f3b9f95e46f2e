"""The gradient heat-map drawn with Pillow: geometry, colours, and the awkward inputs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from trainlab.train.heatmap import MISSING, ROW_HEIGHT, VIRIDIS, WIDTH, plot_heatmap, viridis


def summary(grad_norm: list[list[float | None]], steps: list[int]) -> dict[str, object]:
    return {"steps": steps, "layers": [f"layer{i}" for i in range(len(grad_norm))],
            "grad_norm": grad_norm}  # fmt: skip


def pixel_of_cell(image: Image.Image, row: int, column: int, columns: int) -> tuple[int, ...]:
    """The colour at the centre of a cell (found from the plot's frame, not assumed)."""
    array = np.asarray(image)
    dark = (array.sum(axis=2) < 150).astype(int)
    frame_rows = np.flatnonzero(dark.sum(axis=1) > WIDTH // 2)  # the frame's top and bottom
    top, bottom = frame_rows.min() + 1, frame_rows.max()
    frame_columns = np.flatnonzero(dark[top + 2] > 0)
    left, right = frame_columns.min() + 1, frame_columns[frame_columns < WIDTH - 60].max()
    y = top + (bottom - top) * (row + 0.5) / ((bottom - top) // ROW_HEIGHT)
    x = left + (right - left) * (column + 0.5) / columns
    return tuple(int(c) for c in array[int(y), int(x)])


def test_the_map_colours_each_cell_by_its_log_norm(tmp_path: Path) -> None:
    norms = [[1e-6, 1e-3, 1.0], [1.0, 1e-6, 1e-3]]
    path = plot_heatmap(summary(norms, [10, 20, 30]), tmp_path / "map.png")
    image = Image.open(path)
    assert image.format == "PNG" and image.width == WIDTH
    assert image.height > 2 * ROW_HEIGHT
    low, high = VIRIDIS[0], VIRIDIS[-1]
    assert pixel_of_cell(image, 0, 0, 3) == low  # 1e-6: the smallest value, viridis' dark end
    assert pixel_of_cell(image, 0, 2, 3) == high  # 1.0: the largest, the yellow end
    assert pixel_of_cell(image, 1, 0, 3) == high
    middle = pixel_of_cell(image, 0, 1, 3)  # 1e-3, halfway in log10
    assert middle == tuple(int(c) for c in viridis(np.array(0.5)))


def test_missing_zero_and_infinite_norms_are_grey_and_do_not_break_the_scale(
    tmp_path: Path,
) -> None:
    norms: list[list[float | None]] = [[None, 0.0, float("inf"), 1e-2], [1.0, 1e-2, 1.0, 1.0]]
    image = Image.open(plot_heatmap(summary(norms, [1, 2, 3, 4]), tmp_path / "map.png"))
    for column in range(3):
        assert pixel_of_cell(image, 0, column, 4) == MISSING
    assert pixel_of_cell(image, 0, 3, 4) == VIRIDIS[0]
    assert pixel_of_cell(image, 1, 0, 4) == VIRIDIS[-1]


@pytest.mark.parametrize("steps", [1, 7, 400])
def test_any_number_of_samples_draws(tmp_path: Path, steps: int) -> None:
    norms = [[float(s + 1) for s in range(steps)] for _ in range(3)]
    path = plot_heatmap(summary(norms, list(range(1, steps + 1))), tmp_path / "map.png")
    assert Image.open(path).size == (WIDTH, Image.open(path).height)


def test_all_values_equal_or_none_finite_still_draws(tmp_path: Path) -> None:
    for norms in ([[0.5, 0.5]], [[None, 0.0]]):
        path = plot_heatmap(summary(norms, [1, 2]), tmp_path / "map.png")
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_viridis_matches_matplotlib() -> None:
    from matplotlib import colormaps

    fractions = np.linspace(0, 1, 101)
    ours = viridis(fractions).astype(int)
    theirs = (np.asarray(colormaps["viridis"](fractions))[:, :3] * 255).round().astype(int)
    assert np.abs(ours - theirs).max() <= 6  # 17 anchors, linear between them


def test_after_the_warm_up_drawing_imports_nothing_more(tmp_path: Path) -> None:
    """The metric sender warms up when it starts, so the map drawn at the end of the run
    imports nothing then (Pillow's format plugins included), in a fresh interpreter."""
    import subprocess
    import sys

    script = f"""
import sys
from pathlib import Path
from trainlab.train.heatmap import plot_heatmap, warm_up
warm_up()
before = set(sys.modules)
plot_heatmap({summary([[1.0, 2.0], [0.5, None]], [5, 10])!r}, Path({str(tmp_path)!r}) / "map.png")
print(sorted(set(sys.modules) - before))
"""
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]", done.stdout
    assert (tmp_path / "map.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
