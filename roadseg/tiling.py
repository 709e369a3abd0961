"""Pure window-grid arithmetic and blending weights.

The grid is defined on one axis at a time; a 2-D grid is the product of a row
grid and a column grid. A raster of length ``n`` is extended by a reflected
margin of ``overlap // 2`` pixels on each side, so that even the outermost
pixels of the image sit well inside some tile, where a fully convolutional
network sees real context on every side. Tiles step by ``tile - overlap``; the
last tile is shifted back so that it ends exactly at the far margin (no tile
is wasted on padding beyond it).

Blending uses a separable weight window that is 1 in the tile's core and falls
smoothly (raised cosine) to a small positive floor over ``overlap`` pixels at
each edge. Every pixel's output is the weighted mean of the tiles covering it,
so a model that returns its input is reproduced exactly.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

#: Weight at the very edge of a tile. Positive so that the weighted mean is
#: defined everywhere, small so that edge pixels barely count where a tile
#: with better context covers them too.
EDGE_WEIGHT = 1e-3

#: Tile sides are multiples of this: the ResUNet halves the image three times.
TILE_MULTIPLE = 8


class Span(NamedTuple):
    """A 1-D tile: ``start`` (may be negative: reflected margin) and ``size``."""

    start: int
    size: int

    @property
    def stop(self) -> int:
        return self.start + self.size


class TileWindow(NamedTuple):
    """A 2-D tile in image pixel coordinates (row/col may be negative)."""

    row: int
    col: int
    height: int
    width: int


def is_tile_size(size: int) -> bool:
    """Whether ``size`` can be a tile side: a positive multiple of :data:`TILE_MULTIPLE`.

    The one home of this rule; the model, training and the CLI ask it.
    """
    return size > 0 and size % TILE_MULTIPLE == 0


def validate_tiling(tile: int, overlap: int) -> None:
    """Check tile size and overlap.

    Raises:
        ValueError: if the tile is not a positive multiple of 8 or the overlap
            is negative or leaves a stride below 8 pixels.
    """
    if not is_tile_size(tile):
        raise ValueError(
            f"tile size {tile} is not a positive multiple of 8; the network halves "
            "the image three times. Use e.g. 224, 512 or 1024."
        )
    if overlap < 0 or overlap % 2:
        raise ValueError(f"overlap {overlap} must be a non-negative even number of pixels")
    if tile - overlap < 8:
        raise ValueError(
            f"overlap {overlap} leaves a stride of {tile - overlap} px for tile size {tile}; "
            "use an overlap below tile size - 8"
        )


def axis_spans(length: int, tile: int, overlap: int) -> list[Span]:
    """Tiles along one axis of ``length`` pixels.

    The tiles cover ``[-overlap // 2, length + overlap // 2)`` (or just one
    tile when the raster is smaller than a tile: it is then padded).

    Args:
        length: number of pixels along the axis (> 0).
        tile: tile size.
        overlap: overlap between neighbouring tiles.

    Returns:
        The spans, in increasing order.
    """
    if length <= 0:
        raise ValueError(f"axis length must be positive, got {length}")
    validate_tiling(tile, overlap)
    margin = overlap // 2
    extent = length + 2 * margin
    if extent <= tile:
        # One tile; centre the image in it so both sides get context.
        start = -((tile - length) // 2)
        return [Span(start, tile)]
    stride = tile - overlap
    count = -(-(extent - tile) // stride) + 1  # ceil division
    starts = [-margin + i * stride for i in range(count - 1)]
    starts.append(length + margin - tile)
    return [Span(s, tile) for s in starts]


def tile_grid(height: int, width: int, tile: int, overlap: int) -> list[TileWindow]:
    """All tiles for a ``height`` x ``width`` raster, row-major order."""
    rows = axis_spans(height, tile, overlap)
    cols = axis_spans(width, tile, overlap)
    return [TileWindow(r.start, c.start, r.size, c.size) for r in rows for c in cols]


def ramp(size: int, overlap: int, floor: float = EDGE_WEIGHT) -> np.ndarray:
    """1-D blending weights: raised-cosine ramps of ``overlap`` px at each end.

    Returns a float32 array of ``size`` values in ``[floor, 1]``.
    """
    w = np.ones(size, dtype=np.float64)
    n = min(overlap, size // 2)
    if n > 0:
        # Pixel centres at (i + 0.5) / n along the ramp: symmetric and never 0.
        t = (np.arange(n) + 0.5) / n
        up = 0.5 - 0.5 * np.cos(np.pi * t)
        w[:n] = up
        w[size - n :] = up[::-1]
    return np.maximum(w, floor).astype(np.float32)


def weight_window(tile: int, overlap: int) -> np.ndarray:
    """2-D separable blending window of shape ``(tile, tile)``."""
    r = ramp(tile, overlap)
    return np.outer(r, r)


def reflect_index(idx: np.ndarray, length: int) -> np.ndarray:
    """Map pixel indices (possibly outside ``[0, length)``) into the raster by
    mirror reflection without repeating the edge pixel (numpy's ``reflect``).

    A length-1 axis maps everything to 0.
    """
    if length == 1:
        return np.zeros_like(idx)
    period = 2 * (length - 1)
    m = np.mod(idx, period)
    return np.where(m < length, m, period - m)
