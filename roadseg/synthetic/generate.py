"""Scenes in memory: a whole scene, one window of it, and its road share."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from roadseg.synthetic.layout import scene_layout
from roadseg.synthetic.rendering import render
from roadseg.synthetic.spec import Scene, SceneSpec, check_size


def render_window(
    height: int,
    width: int,
    spec: SceneSpec,
    row_off: int,
    col_off: int,
    win_h: int,
    win_w: int,
) -> tuple[np.ndarray, np.ndarray]:
    """Render one window of a scene.

    The result equals ``generate_scene(height, width, spec)`` sliced to the window,
    bit for bit: every pixel depends only on the seed and its global coordinates.
    Rendering needs some 120 bytes per window pixel of scratch memory, so keep
    windows to a few megapixels (:func:`write_scene` uses ``block`` x ``block``).

    Args:
        height, width: size of the whole scene in pixels.
        spec: the scene definition.
        row_off, col_off: top-left pixel of the window in the scene.
        win_h, win_w: window size in pixels.

    Returns:
        ``(image, mask)``: (win_h, win_w, 3) uint8 RGB and (win_h, win_w) uint8 0/1.

    Raises:
        ValueError: if the scene size is out of range or the window does not lie
            inside the scene.
    """
    height, width = check_size(height, width)
    if not (
        0 <= row_off
        and 0 <= col_off
        and win_h >= 1
        and win_w >= 1
        and row_off + win_h <= height
        and col_off + win_w <= width
    ):
        raise ValueError(
            f"window rows {row_off}..{row_off + win_h}, cols {col_off}..{col_off + win_w} "
            f"does not lie inside the {height} x {width} scene"
        )
    return render(
        scene_layout(height, width, spec), int(row_off), int(col_off), int(win_h), int(win_w)
    )


def generate_scene(height: int, width: int, spec: SceneSpec = SceneSpec()) -> Scene:
    """Generate a whole scene in memory (for sizes up to a few thousand pixels).

    Args:
        height, width: size in pixels.
        spec: seed and georeferencing; the same spec and size give the same scene.

    Returns:
        The :class:`Scene`: image, road mask, centerlines (pixel coordinates) and widths.

    Raises:
        ValueError: if the size is out of range.
    """
    height, width = check_size(height, width)
    lay = scene_layout(height, width, spec)
    image = np.empty((height, width, 3), dtype=np.uint8)
    mask = np.empty((height, width), dtype=np.uint8)
    for r, c, h, w in iter_blocks(height, width, 1024):
        image[r : r + h, c : c + w], mask[r : r + h, c : c + w] = render(lay, r, c, h, w)
    return Scene(image, mask, list(lay.centerlines), list(lay.widths))


def iter_blocks(height: int, width: int, block: int) -> Iterator[tuple[int, int, int, int]]:
    """Windows (row, col, height, width) of ``block`` px tiling the scene, row by row."""
    for r in range(0, height, block):
        for c in range(0, width, block):
            yield r, c, min(block, height - r), min(block, width - c)


def road_fraction(height: int, width: int, spec: SceneSpec = SceneSpec()) -> float:
    """Share of road pixels a scene will have, estimated from its layout (fast)."""
    height, width = check_size(height, width)
    lay = scene_layout(height, width, spec)
    area = sum(line.length * w for line, w in zip(lay.centerlines, lay.widths, strict=True))
    return float(area / (height * width))
