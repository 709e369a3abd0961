"""Where labels are trusted and how the area is split: the area of interest of a
raster (AOI polygons within its footprint, in pixel coordinates), square blocks
of a fixed size on the ground, a seeded choice of validation blocks, and crop
windows that lie wholly inside one block and inside the area. ``half`` names one
half of each raster (``--half upper``), so "train on one half, score the other"
needs no hand-drawn AOI file.

The invariant: every crop window lies inside a single block, and every block
belongs to one split, so training and validation crops never share a pixel.
Pixels outside the area (outside the AOI or the raster) are never in a crop.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from rasterio.windows import Window

#: Side of the spatial validation blocks on the ground, in metres.
DEFAULT_BLOCK_M = 256.0
#: A block is at least this many crops wide, so scaled crops still fit in one.
MIN_BLOCK_TILES = 2
#: The halves of a raster that ``half`` names, in the raster's own orientation
#: (upper: the first rows, as the image is shown; north on a north-up raster).
HALVES = ("upper", "lower", "left", "right")


def half_window(width: int, height: int, half: str) -> Window:
    """One half of a ``width`` x ``height`` raster.

    The rows are cut at ``height // 2`` (upper: rows above, lower: the rest) and
    the columns at ``width // 2``, so the two halves of a pair share no pixel and
    together cover the raster.

    Raises:
        ValueError: ``half`` is not one of :data:`HALVES`.
    """
    rows, cols = height // 2, width // 2
    windows = {
        "upper": Window(0, 0, width, rows),
        "lower": Window(0, rows, width, height - rows),
        "left": Window(0, 0, cols, height),
        "right": Window(cols, 0, width - cols, height),
    }
    if half not in windows:
        raise ValueError(f"half must be one of {', '.join(HALVES)}, got {half!r}")
    return windows[half]


def area_in_pixels(
    width: int,
    height: int,
    transform: Any,
    aoi: Sequence[Any] | None = None,
    half: str | None = None,
) -> Any:
    """The raster's trusted area as a shapely geometry in pixel coordinates:
    its footprint (or the ``half`` of it, see :func:`half_window`), within the
    AOI polygons (in the raster's CRS) when given."""
    from shapely import affinity, box
    from shapely.ops import unary_union

    if half is None:
        footprint = box(0, 0, width, height)
    else:
        w = half_window(width, height, half)
        c0, r0 = int(w.col_off), int(w.row_off)
        footprint = box(c0, r0, c0 + int(w.width), r0 + int(w.height))
    if aoi is None:
        return footprint
    inv = ~transform
    polys = [
        affinity.affine_transform(g, [inv.a, inv.b, inv.d, inv.e, inv.xoff, inv.yoff])
        for g in aoi
        if g is not None and not g.is_empty and "Polygon" in g.geom_type
    ]
    if not polys:
        return box(0, 0, 0, 0)
    return unary_union(polys).buffer(0).intersection(footprint)


def block_side_px(tile: int, gsd: float | None, block_m: float) -> int:
    """The block side in pixels: ``block_m`` on the ground, at least
    :data:`MIN_BLOCK_TILES` crops."""
    wanted = round(block_m / gsd) if gsd else 0
    return max(MIN_BLOCK_TILES * tile, int(wanted))


def block_windows(width: int, height: int, side: int) -> list[Window]:
    """The grid of blocks of ``side`` pixels over a raster (edge blocks clipped)."""
    return [
        Window(c, r, min(side, width - c), min(side, height - r))
        for r in range(0, height, side)
        for c in range(0, width, side)
    ]


def crop_positions(block: Window, area: Any, tile: int, stride: int) -> list[tuple[int, int]]:
    """Top-left corners ``(col, row)`` on a ``stride`` grid of the ``tile`` windows
    that lie wholly inside ``block`` and ``area``."""
    from shapely import box, prepare

    c0, r0 = int(block.col_off), int(block.row_off)
    w, h = int(block.width), int(block.height)
    if w < tile or h < tile:
        return []
    prepare(area)
    out = []
    for r in range(r0, r0 + h - tile + 1, stride):
        for c in range(c0, c0 + w - tile + 1, stride):
            if area.contains(box(c, r, c + tile, r + tile)):
                out.append((c, r))
    return out


def choose_validation(
    eligible: Sequence[bool], val_fraction: float, seed: int
) -> tuple[list[str], str | None]:
    """Seeded choice of validation blocks among the eligible ones.

    Returns:
        ``(split per block: "train", "val" or "" for ineligible, problem or None)``;
        at least one block goes to each split.
    """
    idx = [i for i, ok in enumerate(eligible) if ok]
    splits = [""] * len(eligible)
    if len(idx) < 2:
        return splits, (
            f"the area holds {len(idx)} block(s) with room for a crop, too few to split "
            "training from validation; lower --val-block-m (or give more area)"
        )
    rng = np.random.default_rng(seed)
    n_val = min(len(idx) - 1, max(1, round(val_fraction * len(idx))))
    val = {idx[int(i)] for i in rng.permutation(len(idx))[:n_val]}
    for i in idx:
        splits[i] = "val" if i in val else "train"
    return splits, None


@dataclass(frozen=True)
class BlockCrops:
    """One block of one raster and the crop windows it holds.

    Attributes:
        block: the block's window.
        positions: top-left corners of the ``tile`` windows inside the block and the area.
        split: ``"train"`` or ``"val"``.
    """

    block: Window
    positions: tuple[tuple[int, int], ...]
    split: str


def pick_window(
    blocks: Sequence[BlockCrops],
    area: Any,
    tile: int,
    side: int,
    stride: int,
    rng: np.random.Generator,
    *,
    jitter: bool = True,
) -> Window:
    """A random ``side`` x ``side`` window inside one of ``blocks`` and inside ``area``.

    A block is drawn with probability proportional to its positions, then one
    position; with ``jitter`` the window moves up to a stride off the grid, and a
    ``side`` other than ``tile`` is centred on it. Whenever the moved or resized
    window would leave the block or the area, the grid window of ``tile`` is used.
    """
    from shapely import box

    weights = np.array([len(b.positions) for b in blocks], dtype=np.float64)
    b = blocks[int(rng.choice(len(blocks), p=weights / weights.sum()))]
    c, r = b.positions[int(rng.integers(len(b.positions)))]
    bc, br = int(b.block.col_off), int(b.block.row_off)
    bw, bh = int(b.block.width), int(b.block.height)
    side = min(side, bw, bh)
    cc = c + tile / 2 + (rng.uniform(-stride / 2, stride / 2) if jitter else 0.0)
    rc = r + tile / 2 + (rng.uniform(-stride / 2, stride / 2) if jitter else 0.0)
    c1 = int(round(min(max(cc - side / 2, bc), bc + bw - side)))
    r1 = int(round(min(max(rc - side / 2, br), br + bh - side)))
    if (c1, r1, side) != (c, r, tile) and area.contains(box(c1, r1, c1 + side, r1 + side)):
        return Window(c1, r1, side, side)
    return Window(c, r, tile, tile)
