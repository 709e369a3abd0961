"""Hash-based noise: pure functions of global integer coordinates and a salt.

Every value is a hash of integer lattice or pixel coordinates, so a field sampled on
any window equals the same window cut from the whole scene; this is what makes
windowed rendering bit-identical to whole-scene rendering.
"""

from __future__ import annotations

import math
import zlib

import numpy as np

_F32 = np.float32


def salt_for(seed: int, tag: str) -> int:
    """A 32-bit salt for one noise field of one scene (stable across platforms)."""
    return zlib.crc32(f"{seed}/{tag}".encode())


def mix(x: np.ndarray) -> np.ndarray:
    """The lowbias32 integer finaliser: uint32 in, well-mixed uint32 out."""
    x = x ^ (x >> np.uint32(16))
    x = x * np.uint32(0x7FEB352D)
    x = x ^ (x >> np.uint32(15))
    x = x * np.uint32(0x846CA68B)
    return x ^ (x >> np.uint32(16))


def hash2(i: np.ndarray, j: np.ndarray, salt: int) -> np.ndarray:
    """Hash of integer coordinate pairs (broadcasting; negatives wrap) to uint32."""
    a = np.asarray(i).astype(np.uint32)
    b = np.asarray(j).astype(np.uint32)
    return mix((a * np.uint32(0x9E3779B1)) ^ mix(b + np.uint32(salt & 0xFFFFFFFF)))


def unit(h: np.ndarray) -> np.ndarray:
    """uint32 hash to float32 uniform in [0, 1)."""
    return (h >> np.uint32(8)).astype(_F32) * _F32(1.0 / 16777216.0)


def value_noise(rows: np.ndarray, cols: np.ndarray, scale: float, salt: int) -> np.ndarray:
    """Smooth value noise in [0, 1) on the grid ``rows x cols`` (global pixel indices).

    Lattice values are hashes of global lattice coordinates; interpolation is
    separable (rows first, then columns) with smoothstep weights, so each output
    pixel depends only on its own global coordinates.
    """
    v = (rows + 0.5) / scale
    u = (cols + 0.5) / scale
    i0 = np.floor(v).astype(np.int64)
    j0 = np.floor(u).astype(np.int64)
    tv = v - i0
    tu = u - j0
    sv = (tv * tv * (3.0 - 2.0 * tv)).astype(_F32)
    su = (tu * tu * (3.0 - 2.0 * tu)).astype(_F32)
    ilat = np.arange(i0[0], i0[-1] + 2)
    jlat = np.arange(j0[0], j0[-1] + 2)
    lat = unit(hash2(ilat[:, None], jlat[None, :], salt))
    ri = i0 - ilat[0]
    cj = j0 - jlat[0]
    a = lat[ri] * (_F32(1) - sv)[:, None] + lat[ri + 1] * sv[:, None]
    return a[:, cj] * (_F32(1) - su) + a[:, cj + 1] * su


def fbm(rows: np.ndarray, cols: np.ndarray, scale: float, octaves: int, salt: int) -> np.ndarray:
    """Fractal value noise: ``octaves`` octaves from ``scale`` px down, gain 0.5.

    Rescaled so that its spread is close to that of a single octave, centred on 0.5.
    """
    total = value_noise(rows, cols, scale, salt)
    amp, norm = 1.0, 1.0
    for o in range(1, octaves):
        amp *= 0.5
        norm += amp
        total += value_noise(rows, cols, scale / 2**o, salt + 7919 * o) * _F32(amp)
    # A sum of independent octaves is narrower than one octave; widen it back.
    spread = norm / math.sqrt(sum(0.25**o for o in range(octaves)))
    return (total * _F32(1.0 / norm) - _F32(0.5)) * _F32(spread * 0.8) + _F32(0.5)


def white(rows: np.ndarray, cols: np.ndarray, salt: int) -> np.ndarray:
    """Per-pixel uniform noise in [0, 1) on the grid ``rows x cols``."""
    return unit(hash2(rows[:, None], cols[None, :], salt))


def cells(
    px: np.ndarray, py: np.ndarray, cell: float, salt: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Cellular (Worley) noise at points: one jittered feature point per grid cell.

    Only the 2 x 2 cells nearest each point are searched (4 instead of 9 distance
    evaluations); the rare misses only make a crown a little irregular.

    Args:
        px, py: float coordinates of the points (1-D).
        cell: grid cell size in px.
        salt: noise salt.

    Returns:
        Distance to the nearest feature point, the offset (x, y) from that point to
        the query point, and a uniform [0, 1) value attached to that feature point.
    """
    fx = (px / _F32(cell)).astype(_F32)
    fy = (py / _F32(cell)).astype(_F32)
    gx = np.floor(fx - _F32(0.5)).astype(np.int32)
    gy = np.floor(fy - _F32(0.5)).astype(np.int32)
    best = np.full(px.shape, np.inf, dtype=_F32)
    bdx = np.zeros(px.shape, dtype=_F32)
    bdy = np.zeros(px.shape, dtype=_F32)
    bval = np.zeros(px.shape, dtype=_F32)
    for oy in (0, 1):
        for ox in (0, 1):
            cx = gx + ox
            cy = gy + oy
            h = hash2(cx, cy, salt)
            jx = unit(h)
            h2 = mix(h ^ np.uint32(0x5BD1E995))
            jy = unit(h2)
            dx = (fx - cx.astype(_F32) - _F32(0.1) - _F32(0.8) * jx) * _F32(cell)
            dy = (fy - cy.astype(_F32) - _F32(0.1) - _F32(0.8) * jy) * _F32(cell)
            d2 = dx * dx + dy * dy
            m = d2 < best
            best = np.where(m, d2, best)
            bdx = np.where(m, dx, bdx)
            bdy = np.where(m, dy, bdy)
            bval = np.where(m, unit(mix(h2)), bval)
    return np.sqrt(best), bdx, bdy, bval
