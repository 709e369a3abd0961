"""Procedural aerial-like RGB scenes with exact road masks and road centerlines.

A scene is defined by its size and a :class:`SceneSpec`. It is built in two stages:

1. A *layout*: vector geometry for the whole scene, in pixel coordinates (x = column,
   y = row, pixel centres at +0.5): road polylines with widths (straight streets,
   curves, T and X junctions, roundabouts), rivers, dirt tracks, towns, buildings,
   cars, trees and roundabout islands. One random generator seeded from ``spec.seed``
   and the size makes it; its cost grows with the number of objects, not of pixels
   (well under a second for 1024 x 1024, some 20-40 s for 16384 x 16384). It is
   cached, so rendering many windows of one scene builds it once.
2. *Rendering* of any window. Every pixel is a function of the layout, the seed and
   the pixel's global row and column only: textures are value noise and cellular
   noise made by hashing integer lattice coordinates, objects are rasterised from
   distances to their geometry, and the final blur reads a halo rendered the same
   way. A window rendered on its own is therefore bit-identical to the same window
   cut from the whole scene, which lets :func:`write_scene` stream scenes of any
   size in blocks with bounded memory.

The road mask is the road surface (distance from the pixel centre to a road
centerline <= half its width), including where tree crowns, cars or shadows hide it.
Rivers, dirt tracks, field boundaries, hedges and tramlines look like roads but are
never in the mask.
"""

from __future__ import annotations

import json
import math
import os
import uuid
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import numpy as np
import shapely
from affine import Affine
from scipy.ndimage import correlate1d
from shapely.geometry import LineString

__all__ = [
    "SceneSpec",
    "Scene",
    "ScenePaths",
    "generate_scene",
    "render_window",
    "write_scene",
    "scene_transform",
    "road_fraction",
]

#: Largest scene side accepted (pixel coordinates stay exact in float32 far beyond it).
MAX_SIZE = 65536

#: Pixels rendered beyond each side of a window so the blur sees real neighbours.
_HALO = 2

#: The layout extends this far (px) beyond the scene so roads leave it naturally.
_MARGIN = 48.0

_F32 = np.float32


# --------------------------------------------------------------------------------------
# Public value types
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SceneSpec:
    """Everything that defines a scene besides its size.

    Attributes:
        seed: non-negative integer; the same seed and size give the same scene.
        gsd: ground sample distance, metres per pixel (georeferencing only).
        crs: projected CRS of the written GeoTIFFs (anything rasterio accepts).
        origin: map x, y of the top-left corner of the top-left pixel.
    """

    seed: int = 0
    gsd: float = 0.5
    crs: str = "EPSG:32633"
    origin: tuple[float, float] = (500000.0, 5500000.0)

    def __post_init__(self) -> None:
        if isinstance(self.seed, bool) or not isinstance(self.seed, (int, np.integer)):
            raise ValueError(f"seed must be an integer, got {self.seed!r}")
        if self.seed < 0:
            raise ValueError(f"seed must be >= 0, got {self.seed}")
        if not (isinstance(self.gsd, (int, float)) and math.isfinite(self.gsd) and self.gsd > 0):
            raise ValueError(f"gsd must be a positive number of metres per pixel, got {self.gsd!r}")
        if not isinstance(self.crs, str) or not self.crs:
            raise ValueError(f"crs must be a CRS string such as 'EPSG:32633', got {self.crs!r}")
        origin = tuple(float(v) for v in self.origin)
        if len(origin) != 2 or not all(math.isfinite(v) for v in origin):
            raise ValueError(f"origin must be two finite map coordinates, got {self.origin!r}")
        object.__setattr__(self, "seed", int(self.seed))
        object.__setattr__(self, "gsd", float(self.gsd))
        object.__setattr__(self, "origin", origin)


@dataclass(frozen=True)
class Scene:
    """A rendered scene.

    Attributes:
        image: (H, W, 3) uint8 RGB.
        mask: (H, W) uint8, 1 = road surface, 0 = not road.
        centerlines: road centerlines in pixel coordinates (x = col + 0.5 and
            y = row + 0.5 at pixel centres), clipped to the scene, one per road
            segment, curve or roundabout ring.
        widths: road width in pixels, one per centerline.
    """

    image: np.ndarray
    mask: np.ndarray
    centerlines: list[LineString]
    widths: list[float]


@dataclass(frozen=True)
class ScenePaths:
    """The three files :func:`write_scene` writes."""

    image: Path
    mask: Path
    centerlines: Path


# --------------------------------------------------------------------------------------
# Hash-based noise: pure functions of global integer coordinates and a salt
# --------------------------------------------------------------------------------------


def _salt(seed: int, tag: str) -> int:
    """A 32-bit salt for one noise field of one scene (stable across platforms)."""
    return zlib.crc32(f"{seed}/{tag}".encode())


def _mix(x: np.ndarray) -> np.ndarray:
    """The lowbias32 integer finaliser: uint32 in, well-mixed uint32 out."""
    x = x ^ (x >> np.uint32(16))
    x = x * np.uint32(0x7FEB352D)
    x = x ^ (x >> np.uint32(15))
    x = x * np.uint32(0x846CA68B)
    return x ^ (x >> np.uint32(16))


def _hash2(i: np.ndarray, j: np.ndarray, salt: int) -> np.ndarray:
    """Hash of integer coordinate pairs (broadcasting; negatives wrap) to uint32."""
    a = np.asarray(i).astype(np.uint32)
    b = np.asarray(j).astype(np.uint32)
    return _mix((a * np.uint32(0x9E3779B1)) ^ _mix(b + np.uint32(salt & 0xFFFFFFFF)))


def _unit(h: np.ndarray) -> np.ndarray:
    """uint32 hash to float32 uniform in [0, 1)."""
    return (h >> np.uint32(8)).astype(_F32) * _F32(1.0 / 16777216.0)


def _value_noise(rows: np.ndarray, cols: np.ndarray, scale: float, salt: int) -> np.ndarray:
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
    lat = _unit(_hash2(ilat[:, None], jlat[None, :], salt))
    ri = i0 - ilat[0]
    cj = j0 - jlat[0]
    a = lat[ri] * (_F32(1) - sv)[:, None] + lat[ri + 1] * sv[:, None]
    return a[:, cj] * (_F32(1) - su) + a[:, cj + 1] * su


def _fbm(rows: np.ndarray, cols: np.ndarray, scale: float, octaves: int, salt: int) -> np.ndarray:
    """Fractal value noise: ``octaves`` octaves from ``scale`` px down, gain 0.5.

    Rescaled so that its spread is close to that of a single octave, centred on 0.5.
    """
    total = _value_noise(rows, cols, scale, salt)
    amp, norm = 1.0, 1.0
    for o in range(1, octaves):
        amp *= 0.5
        norm += amp
        total += _value_noise(rows, cols, scale / 2**o, salt + 7919 * o) * _F32(amp)
    # A sum of independent octaves is narrower than one octave; widen it back.
    spread = norm / math.sqrt(sum(0.25**o for o in range(octaves)))
    return (total * _F32(1.0 / norm) - _F32(0.5)) * _F32(spread * 0.8) + _F32(0.5)


def _white(rows: np.ndarray, cols: np.ndarray, salt: int) -> np.ndarray:
    """Per-pixel uniform noise in [0, 1) on the grid ``rows x cols``."""
    return _unit(_hash2(rows[:, None], cols[None, :], salt))


def _cells(
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
            h = _hash2(cx, cy, salt)
            jx = _unit(h)
            h2 = _mix(h ^ np.uint32(0x5BD1E995))
            jy = _unit(h2)
            dx = (fx - cx.astype(_F32) - _F32(0.1) - _F32(0.8) * jx) * _F32(cell)
            dy = (fy - cy.astype(_F32) - _F32(0.1) - _F32(0.8) * jy) * _F32(cell)
            d2 = dx * dx + dy * dy
            m = d2 < best
            best = np.where(m, d2, best)
            bdx = np.where(m, dx, bdx)
            bdy = np.where(m, dy, bdy)
            bval = np.where(m, _unit(_mix(h2)), bval)
    return np.sqrt(best), bdx, bdy, bval


# --------------------------------------------------------------------------------------
# Layout: style, geometry of everything, generated once per scene
# --------------------------------------------------------------------------------------

# fmt: off
#: Seasons: field palette, meadow, bare soil, forest canopy, tree crowns (RGB).
_SEASONS: dict[str, dict[str, list[tuple[int, int, int]]]] = {
    "summer": {
        "fields": [
            (84, 116, 50), (108, 138, 60), (148, 158, 88), (180, 166, 106),
            (126, 104, 76), (96, 128, 66), (160, 150, 96), (70, 100, 48),
        ],
        "meadow": [(98, 126, 66), (112, 134, 74), (88, 112, 60)],
        "soil": [(142, 118, 88), (124, 104, 80), (160, 136, 104)],
        "forest": [(44, 66, 38), (52, 74, 44), (40, 58, 40)],
        "crown": [(52, 82, 44), (62, 92, 50), (44, 70, 42), (72, 96, 56)],
    },
    "dry": {
        "fields": [
            (198, 182, 124), (212, 196, 146), (172, 152, 104), (124, 132, 74),
            (152, 124, 92), (186, 170, 128), (140, 140, 86), (204, 176, 130),
        ],
        "meadow": [(146, 144, 94), (132, 136, 84), (158, 150, 104)],
        "soil": [(166, 138, 102), (150, 124, 94), (180, 152, 114)],
        "forest": [(56, 72, 44), (64, 80, 48), (50, 64, 42)],
        "crown": [(64, 86, 50), (74, 94, 56), (58, 78, 46), (86, 100, 60)],
    },
    "ploughed": {
        "fields": [
            (116, 92, 70), (96, 80, 64), (136, 112, 84), (100, 122, 62),
            (160, 142, 106), (84, 70, 58), (124, 132, 78), (148, 120, 90),
        ],
        "meadow": [(104, 124, 74), (116, 130, 80), (96, 114, 68)],
        "soil": [(124, 100, 78), (110, 90, 72), (140, 116, 88)],
        "forest": [(66, 66, 46), (58, 68, 44), (80, 70, 50)],
        "crown": [(96, 86, 56), (70, 84, 50), (120, 96, 60), (84, 90, 56)],
    },
    "winter": {
        "fields": [
            (234, 237, 242), (224, 228, 236), (214, 214, 216), (238, 240, 244),
            (156, 142, 122), (200, 198, 196), (228, 230, 236), (182, 176, 168),
        ],
        "meadow": [(226, 229, 236), (214, 218, 226), (198, 198, 200)],
        "soil": [(150, 136, 118), (170, 160, 148), (132, 122, 110)],
        "forest": [(42, 50, 48), (50, 56, 52), (60, 58, 56)],
        "crown": [(46, 58, 50), (90, 84, 78), (106, 96, 86), (60, 66, 58)],
    },
    "arid": {
        "fields": [
            (190, 170, 134), (172, 152, 122), (120, 130, 80), (200, 180, 144),
            (160, 146, 118), (104, 120, 70), (184, 160, 124), (210, 190, 156),
        ],
        "meadow": [(166, 152, 116), (150, 140, 106), (176, 160, 124)],
        "soil": [(200, 176, 140), (186, 160, 126), (214, 190, 154)],
        "forest": [(88, 96, 64), (96, 100, 70), (80, 88, 60)],
        "crown": [(78, 94, 58), (92, 104, 66), (70, 84, 52), (104, 110, 72)],
    },
}
_SEASON_P = {"summer": 0.42, "dry": 0.2, "ploughed": 0.2, "winter": 0.08, "arid": 0.1}

_ROOFS = np.array(
    [
        (168, 82, 62), (150, 70, 56), (124, 62, 52), (186, 104, 78), (122, 122, 126),
        (90, 92, 98), (70, 72, 80), (130, 100, 80), (196, 194, 188), (160, 158, 150),
        (96, 106, 120), (100, 122, 104), (176, 150, 120), (140, 136, 130),
    ],
    dtype=_F32,
)

_WATER = np.array(
    [(52, 84, 94), (66, 94, 80), (92, 88, 68), (40, 56, 70), (60, 98, 104), (78, 90, 70)],
    dtype=_F32,
)
# fmt: on

# Road kinds and surfaces.
_MAIN, _STREET, _SECONDARY, _MINOR, _RING = range(5)
_ASPHALT, _DARK, _CONCRETE, _GRAVEL = range(4)


@dataclass(frozen=True)
class _Style:
    """Scene-wide look: season, light, land-cover proportions, camera response."""

    season: str
    fields: np.ndarray  # (k, 3) float32
    meadow: np.ndarray
    soil: np.ndarray
    forest: np.ndarray
    crown: np.ndarray
    sun: tuple[float, float]  # unit vector towards the sun (x right, y down)
    shadow_len: float  # shadow length per unit object height
    shadow_rgb: tuple[float, float, float]
    parcel: int  # mean field size (px)
    field_angle: float
    p_classes: tuple[float, float, float, float]  # field, meadow, soil, forest parcels
    forest_thr: float  # threshold on the forest noise (higher = less forest)
    forest_cell: float  # tree crown size in forests (px)
    urban: float
    road_frac: float  # target share of road pixels
    gains: tuple[float, float, float]
    brightness: float
    contrast: float
    saturation: float
    haze: float
    haze_rgb: tuple[float, float, float]
    blur: tuple[float, float, float, float, float]  # 5-tap kernel
    noise: float  # sensor noise, DN


def _make_style(rng: np.random.Generator) -> _Style:
    seasons = list(_SEASON_P)
    season = seasons[rng.choice(len(seasons), p=list(_SEASON_P.values()))]
    pal = _SEASONS[season]
    az = rng.uniform(0, 2 * math.pi)
    elev = rng.uniform(0.35, 1.0)  # shadow length per unit height = 1 / tan(elevation)
    forest_share = rng.uniform(0.0, 0.35)
    sigma = rng.uniform(0.45, 0.95)
    k = [math.exp(-(i * i) / (2 * sigma * sigma)) for i in (-2, -1, 0, 1, 2)]
    k = [v / sum(k) for v in k]
    dark = rng.uniform(0.42, 0.6)
    haze_rgb = (rng.uniform(170, 200), rng.uniform(180, 205), rng.uniform(190, 220))
    p_forest = rng.uniform(0.0, 0.12)
    p_soil = rng.uniform(0.05, 0.2)
    p_meadow = rng.uniform(0.1, 0.35)
    urban = rng.uniform(0.0, 1.0)
    return _Style(
        season=season,
        fields=np.array(pal["fields"], dtype=_F32),
        meadow=np.array(pal["meadow"], dtype=_F32),
        soil=np.array(pal["soil"], dtype=_F32),
        forest=np.array(pal["forest"], dtype=_F32),
        crown=np.array(pal["crown"], dtype=_F32),
        sun=(math.cos(az), math.sin(az)),
        shadow_len=1.0 / math.tan(elev),
        shadow_rgb=(dark, dark * rng.uniform(1.02, 1.1), dark * rng.uniform(1.1, 1.3)),
        parcel=int(rng.integers(150, 330)),
        field_angle=rng.uniform(0, math.pi),
        p_classes=(1.0 - p_forest - p_soil - p_meadow, p_meadow, p_soil, p_forest),
        # The forest noise is roughly N(0.5, 0.13); pick the quantile for the share.
        forest_thr=0.5 + 0.13 * _normal_quantile(1.0 - forest_share),
        forest_cell=rng.uniform(8.0, 15.0),
        urban=urban,
        road_frac=0.05 + 0.05 * urban + rng.uniform(0.0, 0.025),
        gains=(rng.uniform(0.92, 1.08), rng.uniform(0.94, 1.06), rng.uniform(0.9, 1.1)),
        brightness=rng.uniform(0.85, 1.12),
        contrast=rng.uniform(0.85, 1.2),
        saturation=rng.uniform(0.6, 1.15),
        haze=rng.uniform(0.0, 0.18),
        haze_rgb=haze_rgb,
        blur=(k[0], k[1], k[2], k[3], k[4]),
        noise=rng.uniform(1.0, 4.0),
    )


def _normal_quantile(p: float) -> float:
    """Inverse standard normal CDF (Acklam's rational approximation, |error| < 1e-8)."""
    p = min(max(p, 1e-9), 1 - 1e-9)
    # fmt: off
    a = (-39.69683028665376, 220.9460984245205, -275.9285104469687,
         138.3577518672690, -30.66479806614716, 2.506628277459239)
    b = (-54.47609879822406, 161.5858368580409, -155.6989798598866,
         66.80131188771972, -13.28068155288572)
    c = (-7.784894002430293e-03, -0.3223964580411365, -2.400758277161838,
         -2.549732539343734, 4.374664141464968, 2.938163982698783)
    d = (7.784695709041462e-03, 0.3224671290700398, 2.445134137142996, 3.754408661907416)
    # fmt: on
    if p < 0.02425:
        q = math.sqrt(-2 * math.log(p))
        num = ((((c[0] * q + c[1]) * q + c[2]) * q + c[3]) * q + c[4]) * q + c[5]
        return num / ((((d[0] * q + d[1]) * q + d[2]) * q + d[3]) * q + 1)
    if p > 1 - 0.02425:
        return -_normal_quantile(1 - p)
    q = p - 0.5
    r = q * q
    num = (((((a[0] * r + a[1]) * r + a[2]) * r + a[3]) * r + a[4]) * r + a[5]) * q
    return num / (((((b[0] * r + b[1]) * r + b[2]) * r + b[3]) * r + b[4]) * r + 1)


@dataclass
class _Line:
    """A road, river or track centreline with its look."""

    pts: np.ndarray  # (n, 2) float64 pixel coordinates
    width: float
    kind: int = _SECONDARY
    surface: int = _ASPHALT
    rgb: tuple[float, float, float] = (110.0, 110.0, 110.0)
    marks: bool = False
    verge: bool = False


class _SegTable:
    """Flat arrays of the segments of a list of lines, for windowed rasterisation.

    Long segments are split so their bounding boxes stay tight. Each segment keeps
    the index of its line and its arc-length offset along that line.
    """

    def __init__(self, lines: list[_Line], extend: float, max_len: float = 40.0) -> None:
        ax: list[np.ndarray] = []
        bx: list[np.ndarray] = []
        owner: list[np.ndarray] = []
        s0: list[np.ndarray] = []
        hw: list[np.ndarray] = []
        for k, line in enumerate(lines):
            pts = _densify(line.pts, max_len)
            seg = np.diff(pts, axis=0)
            ln = np.hypot(seg[:, 0], seg[:, 1])
            ax.append(pts[:-1])
            bx.append(pts[1:])
            owner.append(np.full(len(seg), k, dtype=np.int32))
            s0.append(np.concatenate([[0.0], np.cumsum(ln)[:-1]]))
            hw.append(np.full(len(seg), line.width / 2.0))
        if ax:
            a = np.concatenate(ax)
            b = np.concatenate(bx)
            self.owner = np.concatenate(owner)
            self.s0 = np.concatenate(s0).astype(_F32)
            self.hw = np.concatenate(hw).astype(_F32)
        else:
            a = b = np.zeros((0, 2))
            self.owner = np.zeros(0, dtype=np.int32)
            self.s0 = np.zeros(0, dtype=_F32)
            self.hw = np.zeros(0, dtype=_F32)
        self.ax = a[:, 0].astype(_F32)
        self.ay = a[:, 1].astype(_F32)
        self.ex = (b[:, 0] - a[:, 0]).astype(_F32)
        self.ey = (b[:, 1] - a[:, 1]).astype(_F32)
        len2 = self.ex * self.ex + self.ey * self.ey
        safe = np.where(len2 > 0, len2, _F32(1))
        self.ux = np.where(len2 > 0, self.ex / safe, 0).astype(_F32)
        self.uy = np.where(len2 > 0, self.ey / safe, 0).astype(_F32)
        self.ln = np.sqrt(len2).astype(_F32)
        pad = self.hw.astype(np.float64) + extend
        self.box = _pixel_box(
            np.minimum(a[:, 0], b[:, 0]) - pad,
            np.maximum(a[:, 0], b[:, 0]) + pad,
            np.minimum(a[:, 1], b[:, 1]) - pad,
            np.maximum(a[:, 1], b[:, 1]) + pad,
        )


def _pixel_box(x0: np.ndarray, x1: np.ndarray, y0: np.ndarray, y1: np.ndarray) -> np.ndarray:
    """Inclusive pixel index ranges (col_lo, col_hi, row_lo, row_hi) whose centres
    lie in the given coordinate boxes: (n, 4) int64."""
    return np.stack(
        [
            np.ceil(x0 - 0.5),
            np.floor(x1 - 0.5),
            np.ceil(y0 - 0.5),
            np.floor(y1 - 0.5),
        ],
        axis=1,
    ).astype(np.int64)


def _densify(pts: np.ndarray, max_len: float) -> np.ndarray:
    """Insert vertices so that no segment is longer than ``max_len`` (same geometry)."""
    seg = np.diff(pts, axis=0)
    ln = np.hypot(seg[:, 0], seg[:, 1])
    n = np.maximum(1, np.ceil(ln / max_len).astype(int))
    if (n == 1).all():
        return pts
    out = [pts[:1]]
    for i, k in enumerate(n):
        t = (np.arange(1, k + 1) / k)[:, None]
        out.append(pts[i] + t * seg[i])
    return np.concatenate(out)


class _Index:
    """Growing spatial grid of road and river segments, used while building roads."""

    def __init__(self, cell: float = 64.0) -> None:
        self.cell = cell
        self.cells: dict[tuple[int, int], list[int]] = {}
        self.n = 0
        self.a = np.zeros((1024, 2))
        self.b = np.zeros((1024, 2))
        self.hw = np.zeros(1024)
        self.line = np.zeros(1024, dtype=np.int64)
        self.max_hw = 0.0

    def add(self, pts: np.ndarray, line_id: int, hw: float) -> None:
        """Register the segments of a polyline."""
        k = len(pts) - 1
        while self.n + k > len(self.hw):
            for name in ("a", "b", "hw", "line"):
                arr = getattr(self, name)
                setattr(self, name, np.concatenate([arr, np.zeros_like(arr)]))
        sl = slice(self.n, self.n + k)
        self.a[sl] = pts[:-1]
        self.b[sl] = pts[1:]
        self.hw[sl] = hw
        self.line[sl] = line_id
        self.max_hw = max(self.max_hw, hw)
        lo = np.floor((np.minimum(pts[:-1], pts[1:]) - hw) / self.cell).astype(int)
        hi = np.floor((np.maximum(pts[:-1], pts[1:]) + hw) / self.cell).astype(int)
        for i in range(k):
            for cx in range(lo[i, 0], hi[i, 0] + 1):
                for cy in range(lo[i, 1], hi[i, 1] + 1):
                    self.cells.setdefault((cx, cy), []).append(self.n + i)
        self.n += k

    def near(self, pts: np.ndarray, pad: float) -> np.ndarray:
        """Ids of segments registered in cells within ``pad`` of the points' hull cells."""
        lo = np.floor((pts.min(axis=0) - pad) / self.cell).astype(int)
        hi = np.floor((pts.max(axis=0) + pad) / self.cell).astype(int)
        found: set[int] = set()
        for cx in range(lo[0], hi[0] + 1):
            for cy in range(lo[1], hi[1] + 1):
                ids = self.cells.get((cx, cy))
                if ids:
                    found.update(ids)
        return np.fromiter(found, dtype=np.int64, count=len(found))

    def hits(self, pts: np.ndarray, chunk: int = 48) -> list[tuple[float, int, float]]:
        """Crossings of a polyline with registered segments.

        Returns:
            (distance along the polyline, segment id, crossing angle in radians),
            sorted by distance; repeated hits of one line within 1 px are merged.
        """
        seg = np.diff(pts, axis=0)
        ln = np.hypot(seg[:, 0], seg[:, 1])
        cum = np.concatenate([[0.0], np.cumsum(ln)])
        out: list[tuple[float, int, float]] = []
        for c0 in range(0, len(seg), chunk):
            p0 = pts[:-1][c0 : c0 + chunk]
            d = seg[c0 : c0 + chunk]
            cand = self.near(pts[c0 : c0 + chunk + 1], 1.0)
            if not cand.size:
                continue
            q0 = self.a[cand]
            s = self.b[cand] - q0
            den = d[:, None, 0] * s[None, :, 1] - d[:, None, 1] * s[None, :, 0]
            wx = q0[None, :, 0] - p0[:, None, 0]
            wy = q0[None, :, 1] - p0[:, None, 1]
            with np.errstate(divide="ignore", invalid="ignore"):
                t = (wx * s[None, :, 1] - wy * s[None, :, 0]) / den
                u = (wx * d[:, None, 1] - wy * d[:, None, 0]) / den
            ok = (np.abs(den) > 1e-9) & (t >= 0) & (t <= 1) & (u >= 0) & (u <= 1)
            for i, j in zip(*np.nonzero(ok), strict=True):
                gi = c0 + i
                along = cum[gi] + t[i, j] * ln[gi]
                sj = s[j]
                cosang = abs(d[i] @ sj) / max(ln[gi] * math.hypot(sj[0], sj[1]), 1e-12)
                out.append((float(along), int(cand[j]), math.acos(min(1.0, cosang))))
        out.sort()
        merged: list[tuple[float, int, float]] = []
        for h in out:
            if merged and self.line[merged[-1][1]] == self.line[h[1]] and h[0] - merged[-1][0] < 1:
                continue
            merged.append(h)
        return merged

    def clearance(self, pts: np.ndarray, pad: float) -> np.ndarray:
        """For each point, min over nearby segments of (distance - half width); inf if none."""
        out = np.full(len(pts), np.inf)
        if self.n == 0 or not len(pts):
            return out
        for c0 in range(0, len(pts), 128):
            p = pts[c0 : c0 + 128]
            cand = self.near(p, pad + self.max_hw)
            if not cand.size:
                continue
            dist = _point_seg_dist(p, self.a[cand], self.b[cand]) - self.hw[cand][None, :]
            out[c0 : c0 + 128] = dist.min(axis=1)
        return out


def _point_seg_dist(p: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Distances (n, m) from points p (n, 2) to segments a->b (m, 2)."""
    e = b - a
    len2 = np.maximum((e * e).sum(axis=1), 1e-12)
    wx = p[:, None, 0] - a[None, :, 0]
    wy = p[:, None, 1] - a[None, :, 1]
    t = np.clip((wx * e[None, :, 0] + wy * e[None, :, 1]) / len2[None, :], 0.0, 1.0)
    qx = wx - t * e[None, :, 0]
    qy = wy - t * e[None, :, 1]
    return np.sqrt(qx * qx + qy * qy)


def _wander(
    rng: np.random.Generator, n: int, step: float, amp: float, lam: tuple[float, float]
) -> np.ndarray:
    """Smooth bounded heading deviations (radians) at ``n`` steps: a sum of 3 sines."""
    if amp <= 0 or n == 0:
        return np.zeros(n)
    s = np.arange(n) * step
    w = rng.uniform(0.3, 1.0, 3)
    w *= amp / w.sum()
    out = np.zeros(n)
    for wi in w:
        out += wi * np.sin(2 * math.pi * s / rng.uniform(*lam) + rng.uniform(0, 2 * math.pi))
    return out


def _grow(
    rng: np.random.Generator,
    start: np.ndarray,
    theta: float,
    length: float,
    bounds: tuple[float, float, float, float],
    *,
    step: float = 8.0,
    amp: float = 0.0,
    lam: tuple[float, float] = (300.0, 1500.0),
) -> np.ndarray:
    """A wandering polyline from ``start`` in direction ``theta``, cut just after it
    leaves ``bounds`` (x0, y0, x1, y1)."""
    n = max(1, int(length / step))
    ang = theta + _wander(rng, n, step, amp, lam)
    ang -= ang[0] - theta  # start exactly in the requested direction
    steps = step * np.column_stack([np.cos(ang), np.sin(ang)])
    pts = np.vstack([start, start + np.cumsum(steps, axis=0)])
    x0, y0, x1, y1 = bounds
    out = (pts[:, 0] < x0) | (pts[:, 0] > x1) | (pts[:, 1] < y0) | (pts[:, 1] > y1)
    out[0] = False
    if out.any():
        pts = pts[: int(np.argmax(out)) + 1]
    return pts


def _cut(pts: np.ndarray, along: float) -> np.ndarray:
    """The polyline up to arc length ``along`` (ending exactly there)."""
    seg = np.diff(pts, axis=0)
    cum = np.concatenate([[0.0], np.cumsum(np.hypot(seg[:, 0], seg[:, 1]))])
    i = int(np.searchsorted(cum, along, side="right")) - 1
    i = min(max(i, 0), len(seg) - 1)
    ln = cum[i + 1] - cum[i]
    t = 0.0 if ln <= 0 else (along - cum[i]) / ln
    end = pts[i] + min(max(t, 0.0), 1.0) * seg[i]
    return np.vstack([pts[: i + 1], end[None]])


def _length(pts: np.ndarray) -> float:
    seg = np.diff(pts, axis=0)
    return float(np.hypot(seg[:, 0], seg[:, 1]).sum())


def _resample(
    pts: np.ndarray, spacing: float, offset: float = 0.0
) -> tuple[np.ndarray, np.ndarray]:
    """Points every ``spacing`` px along a polyline and the unit tangents there."""
    seg = np.diff(pts, axis=0)
    ln = np.hypot(seg[:, 0], seg[:, 1])
    cum = np.concatenate([[0.0], np.cumsum(ln)])
    s = np.arange(offset, cum[-1], spacing)
    if not s.size:
        return np.zeros((0, 2)), np.zeros((0, 2))
    i = np.clip(np.searchsorted(cum, s, side="right") - 1, 0, len(seg) - 1)
    t = (s - cum[i]) / np.maximum(ln[i], 1e-12)
    p = pts[i] + t[:, None] * seg[i]
    tan = seg[i] / np.maximum(ln[i], 1e-12)[:, None]
    return p, tan


@dataclass
class _Town:
    cx: float
    cy: float
    radius: float
    angle: float
    plot: tuple[float, float]


@dataclass
class _Objects:
    """Struct of arrays for buildings, trees or islands, with pixel boxes."""

    data: dict[str, np.ndarray]
    box: np.ndarray  # (n, 4) col_lo, col_hi, row_lo, row_hi

    def __len__(self) -> int:
        return len(self.box)


@dataclass
class _Layout:
    height: int
    width: int
    seed: int
    style: _Style
    roads: list[_Line]
    rivers: list[_Line]
    tracks: list[_Line]
    towns: list[_Town]
    road_segs: _SegTable
    river_segs: _SegTable
    track_segs: _SegTable
    buildings: _Objects
    trees: _Objects
    islands: _Objects
    centerlines: list[LineString] = field(default_factory=list)
    widths: list[float] = field(default_factory=list)


class _NetworkBuilder:
    """Builds the road network (and rivers, which roads must respect) of one scene."""

    def __init__(self, rng: np.random.Generator, height: int, width: int, style: _Style):
        self.rng = rng
        self.h = height
        self.w = width
        self.style = style
        m = _MARGIN
        self.bounds = (-m, -m, width + m, height + m)
        self.index = _Index()
        self.roads: list[_Line] = []
        self.rivers: list[_Line] = []
        self.junctions: list[tuple[float, float, float, bool]] = []  # x, y, max width, is X
        self.road_area = 0.0
        self.towns: list[_Town] = []
        self.town_arr = np.zeros((0, 3))  # x, y, radius of the towns

    # -- helpers -------------------------------------------------------------------

    def _in_scene_area(self, pts: np.ndarray, width: float) -> float:
        mid = (pts[:-1] + pts[1:]) / 2
        inside = (mid[:, 0] >= 0) & (mid[:, 0] <= self.w) & (mid[:, 1] >= 0) & (mid[:, 1] <= self.h)
        seg = np.diff(pts, axis=0)
        return float(np.hypot(seg[inside, 0], seg[inside, 1]).sum() * width)

    def _town_weight_at(self, p: np.ndarray) -> float:
        """Town weight at one point, with the towns as arrays built once."""
        t = self.town_arr
        if not len(t):
            return 0.0
        d = np.hypot(t[:, 0] - p[0], t[:, 1] - p[1])
        return float(max(0.0, min(1.0, float((1.05 - d / t[:, 2]).max()))) ** 0.6)

    def _line_id(self, k: int) -> int:
        """Index ids: roads are >= 0, rivers are negative."""
        return int(self.index.line[k])

    def _width_of(self, line_id: int) -> float:
        return self.roads[line_id].width if line_id >= 0 else self.rivers[-line_id - 1].width

    def _clear(
        self, pts: np.ndarray, hw: float, gap: float, zones: list[tuple[float, float, float]]
    ) -> bool:
        """True when the polyline keeps ``gap`` px from every registered segment except
        inside the exclusion ``zones`` (x, y, radius) around its junctions."""
        if _length(pts) < 1:
            return False
        sample, _ = _resample(pts, 3.0)
        sample = np.vstack([sample, pts[-1:]])
        if zones:
            z = np.array(zones)
            dz = np.hypot(sample[:, None, 0] - z[None, :, 0], sample[:, None, 1] - z[None, :, 1])
            sample = sample[(dz > z[None, :, 2]).all(axis=1)]
        if not sample.size:
            return True
        c = self.index.clearance(sample, hw + gap)
        return bool((c - hw >= gap).all())

    def add_road(self, line: _Line) -> None:
        lid = len(self.roads)
        self.roads.append(line)
        self.index.add(line.pts, lid, line.width / 2)
        self.road_area += self._in_scene_area(line.pts, line.width)

    def add_river(self, line: _Line) -> None:
        self.rivers.append(line)
        self.index.add(line.pts, -len(self.rivers), line.width / 2)

    def _place(
        self,
        pts: np.ndarray,
        width: float,
        *,
        start_zone: tuple[float, float, float] | None,
        p_cross: float,
        gap: float = 12.0,
        min_len: float = 30.0,
    ) -> tuple[np.ndarray, list[tuple[float, float, float, bool]]] | None:
        """Resolve a candidate polyline against the network.

        Cuts it at the first road it meets (a T junction) unless it crosses it (an X
        junction, probability ``p_cross``); crosses rivers (bridges). Returns the
        polyline and its junctions, or None when it is too short, meets a road at a
        shallow angle or runs along an existing road or river.
        """
        hw = width / 2
        zones: list[tuple[float, float, float]] = [start_zone] if start_zone else []
        joints: list[tuple[float, float, float, bool]] = []
        end = None
        for along, k, ang in self.index.hits(pts):
            if along < 0.5:
                continue
            lid = self._line_id(k)
            other = self._width_of(lid)
            if ang < math.radians(30):
                return None
            q = _cut(pts, along)[-1]
            rho = (hw + other / 2 + gap) / max(math.sin(ang), 0.5) + 2
            zones.append((q[0], q[1], rho))
            if lid < 0:
                continue
            crossing = self.rng.random() < p_cross
            joints.append((q[0], q[1], max(width, other), crossing))
            if not crossing:
                end = along
                break
        if end is not None:
            pts = _cut(pts, end)
        if _length(pts) < min_len:
            return None
        if not self._clear(pts, hw, gap, zones):
            return None
        return pts, joints

    # -- stages --------------------------------------------------------------------

    def rivers_stage(self) -> None:
        rng = self.rng
        area = self.h * self.w
        n = rng.poisson(area / 1.8e6 * rng.uniform(0.3, 1.6))
        for _ in range(n):
            for _attempt in range(6):
                side = rng.integers(4)
                t = rng.uniform(0.1, 0.9)
                x0, y0, x1, y1 = self.bounds
                start, theta = {
                    0: (np.array([x0, y0 + t * (y1 - y0)]), 0.0),
                    1: (np.array([x1, y0 + t * (y1 - y0)]), math.pi),
                    2: (np.array([x0 + t * (x1 - x0), y0]), math.pi / 2),
                    3: (np.array([x0 + t * (x1 - x0), y1]), -math.pi / 2),
                }[int(side)]
                theta += rng.uniform(-0.6, 0.6)
                pts = _grow(
                    rng,
                    start + 1e-3 * np.array([math.cos(theta), math.sin(theta)]),
                    theta,
                    3 * (self.h + self.w),
                    self.bounds,
                    step=5.0,
                    amp=rng.uniform(0.5, 1.3),
                    lam=(120.0, 600.0),
                )
                width = rng.uniform(6.0, 22.0)
                if len(pts) < 3 or not self._clear(pts, width / 2, 30.0, []):
                    continue
                rgb = _WATER[rng.integers(len(_WATER))] * rng.uniform(0.85, 1.15)
                self.add_river(_Line(pts, width, kind=-1, rgb=tuple(rgb.tolist())))
                break

    def _road_look(self, kind: int, width: float) -> dict:
        rng = self.rng
        season = self.style.season
        # Probabilities of gravel, asphalt, dark asphalt and concrete by kind.
        p = {_MINOR: (0.55, 0.36, 0.09, 0.0), _STREET: (0.0, 0.64, 0.21, 0.15)}.get(
            kind, (0.0, 0.54, 0.4, 0.06)
        )
        surface = (_GRAVEL, _ASPHALT, _DARK, _CONCRETE)[int(rng.choice(4, p=p))]
        rgb: tuple[float, ...]
        if surface == _ASPHALT:
            g = rng.uniform(92, 138)
            rgb = (g * rng.uniform(0.96, 1.03), g, g * rng.uniform(0.98, 1.07))
        elif surface == _DARK:
            g = rng.uniform(52, 84)
            rgb = (g, g * rng.uniform(0.98, 1.04), g * rng.uniform(1.0, 1.1))
        elif surface == _CONCRETE:
            g = rng.uniform(160, 196)
            rgb = (g, g * rng.uniform(0.97, 1.0), g * rng.uniform(0.92, 1.0))
        else:
            base = np.array([172, 158, 134]) if season != "arid" else np.array([200, 186, 158])
            rgb = tuple((base * rng.uniform(0.82, 1.1) + rng.uniform(-8, 8, 3)).tolist())
        if season == "winter" and surface != _GRAVEL:
            rgb = tuple(v * 0.85 for v in rgb)
        marks = surface in (_ASPHALT, _DARK) and width >= 9.5 and rng.random() < 0.85
        verge = kind in (_MAIN, _SECONDARY, _MINOR) and rng.random() < 0.5
        return {
            "surface": surface,
            "rgb": tuple(float(v) for v in rgb),
            "marks": marks,
            "verge": verge,
        }

    def towns_stage(self) -> None:
        rng = self.rng
        area = self.h * self.w
        n = rng.poisson(area / 1.1e6 * (0.2 + 1.6 * self.style.urban))
        for _ in range(n):
            self.towns.append(
                _Town(
                    cx=rng.uniform(0, self.w),
                    cy=rng.uniform(0, self.h),
                    radius=rng.uniform(130, 420),
                    angle=rng.uniform(0, math.pi),
                    plot=(rng.uniform(14, 30), rng.uniform(18, 40)),
                )
            )
        self.town_arr = np.array([(t.cx, t.cy, t.radius) for t in self.towns]).reshape(-1, 3)

    def main_stage(self) -> None:
        rng = self.rng
        area = self.h * self.w
        n = max(1, int(rng.poisson(area / 1.3e6 * 1.1)))
        placed = 0
        for _attempt in range(8 * n):
            if placed >= n:
                break
            if self.towns and rng.random() < 0.6:
                town = self.towns[rng.integers(len(self.towns))]
                p = np.array([town.cx, town.cy]) + rng.normal(0, 25, 2)
            else:
                p = np.array([rng.uniform(0.1, 0.9) * self.w, rng.uniform(0.1, 0.9) * self.h])
            theta = rng.uniform(0, 2 * math.pi)
            straight = rng.random() < 0.35
            amp = 0.0 if straight else rng.uniform(0.15, 0.6)
            length = 3 * (self.h + self.w)
            fwd = _grow(rng, p, theta, length, self.bounds, amp=amp, lam=(500.0, 2500.0))
            bwd = _grow(rng, p, theta + math.pi, length, self.bounds, amp=amp, lam=(500.0, 2500.0))
            pts = np.vstack([bwd[::-1], fwd[1:]])
            width = rng.uniform(14, 20) if rng.random() < 0.3 else rng.uniform(9, 14)
            res = self._place(pts, width, start_zone=None, p_cross=1.0, gap=14.0, min_len=60)
            if res is None:
                continue
            pts, joints = res
            self.junctions += joints
            self.add_road(_Line(pts, width, kind=_MAIN, **self._road_look(_MAIN, width)))
            placed += 1
            for town in self.towns:
                # Align towns that a main road passes through with it.
                c = np.array([town.cx, town.cy])
                d = _point_seg_dist(c[None], pts[:-1], pts[1:])[0]
                i = int(np.argmin(d))
                if d[i] < town.radius * 0.6:
                    seg = pts[i + 1] - pts[i]
                    town.angle = math.atan2(seg[1], seg[0])

    def grid_stage(self) -> None:
        """Straight street grids in towns, with some blocks merged (T junctions)."""
        rng = self.rng
        for town in self.towns:
            runs: list[tuple[np.ndarray, float]] = []
            width_town = rng.uniform(6.0, 11.0)
            bu = rng.uniform(55, 115)
            bv = rng.uniform(45, 100)
            ca, sa = math.cos(town.angle), math.sin(town.angle)
            c = np.array([town.cx, town.cy])
            axes = (np.array([ca, sa]), np.array([-sa, ca]))
            r = town.radius
            offs_u = (np.arange(-r // bu - 1, r // bu + 2) + rng.uniform(0, 1)) * bu
            offs_v = (np.arange(-r // bv - 1, r // bv + 2) + rng.uniform(0, 1)) * bv
            offs_u = offs_u[np.abs(offs_u) < r * 0.95] + rng.uniform(-0.12, 0.12, 1) * bu
            offs_v = offs_v[np.abs(offs_v) < r * 0.95]
            offs_u = offs_u + rng.uniform(-0.1, 0.1, len(offs_u)) * bu
            offs_v = offs_v + rng.uniform(-0.1, 0.1, len(offs_v)) * bv
            half_u = np.sqrt(np.maximum(r * r - offs_u**2, 0)) * rng.uniform(0.7, 1.0, len(offs_u))
            half_v = np.sqrt(np.maximum(r * r - offs_v**2, 0)) * rng.uniform(0.7, 1.0, len(offs_v))
            # Lines of constant u run along the v axis and vice versa.
            families = [
                (offs_u, half_u, offs_v, half_v, axes[0], axes[1]),
                (offs_v, half_v, offs_u, half_u, axes[1], axes[0]),
            ]
            for offs, half, cross, cross_half, normal, along in families:
                for o, hl in zip(offs, half, strict=True):
                    # Crossing positions along this line that fall inside both chords.
                    xs = [
                        x
                        for x, ch in zip(cross, cross_half, strict=True)
                        if abs(x) <= hl and abs(o) <= ch
                    ]
                    stops = np.array(sorted({-hl, *xs, hl}))
                    keep = rng.random(len(stops) - 1) > 0.17
                    run: list[float] = []
                    for i, k in enumerate(keep):
                        if k:
                            run = run or [stops[i]]
                            run.append(stops[i + 1])
                        if (not k or i == len(keep) - 1) and len(run) >= 2:
                            pts = np.array(
                                [c + normal * o + along * run[0], c + normal * o + along * run[-1]]
                            )
                            if _length(pts) >= 25:
                                w = float(np.clip(width_town + rng.normal(0, 0.8), 4.0, 12.0))
                                runs.append((pts, w))
                            run = []
                        elif not k:
                            run = []
            # Streets join the network one by one, so none floats unconnected: the
            # longest starts it, then any that meets an accepted road.
            runs.sort(key=lambda r: -_length(r[0]))
            pending = list(range(len(runs)))
            first = True
            while pending:
                left = []
                for i in pending:
                    verdict = self._grid_street(*runs[i], need_touch=not first)
                    first = first and verdict is False
                    if verdict is None:
                        left.append(i)
                if len(left) == len(pending):
                    break
                pending = left

    def _grid_street(self, pts: np.ndarray, width: float, need_touch: bool) -> bool | None:
        """Add one straight street; False if it cannot be placed, None if it does
        not meet the network (yet) although ``need_touch``."""
        hw = width / 2
        d = (pts[-1] - pts[0]) / _length(pts)
        # Probe 1.5 px beyond both ends, so ending on a crossing street counts.
        probe = _densify(np.array([pts[0] - 1.5 * d, pts[-1] + 1.5 * d]), 24.0)
        pts = _densify(pts, 24.0)
        zone = 2 * hw + 10
        zones = [(pts[0, 0], pts[0, 1], zone), (pts[-1, 0], pts[-1, 1], zone)]
        joints: list[tuple[float, float, float, bool]] = []
        touches = False
        for along_d, k, ang in self.index.hits(probe):
            q = _cut(probe, along_d)[-1]
            lid = self._line_id(k)
            other = self._width_of(lid)
            if ang < math.radians(30):
                return False
            zones.append((q[0], q[1], (hw + other / 2 + 8) / max(math.sin(ang), 0.5) + 2))
            if lid >= 0:
                touches = True
                joints.append((q[0], q[1], max(width, other), True))
        if need_touch and not touches:
            return None
        if not self._clear(pts, hw, 8.0, zones):
            return False
        self.junctions += joints
        self.add_road(_Line(pts, width, kind=_STREET, **self._road_look(_STREET, width)))
        return True

    def branch_stage(self) -> None:
        """Secondary and minor roads branch off the network into empty land until
        the target road share is reached."""
        rng = self.rng
        target = self.style.road_frac * self.h * self.w
        attempts = 0
        max_attempts = 100 + int(self.h * self.w / 2500)
        while self.road_area < target and attempts < max_attempts:
            attempts += 1
            p = np.array([rng.uniform(0, self.w), rng.uniform(0, self.h)])
            # Denser near towns: most attempts in open country are skipped, so the
            # countryside keeps large blocks unless there is no town to fill.
            if rng.random() > 0.25 + 0.75 * self._town_weight_at(p):
                continue
            minor = rng.random() < 0.4
            kind = _MINOR if minor else _SECONDARY
            width = rng.uniform(3.0, 6.0) if minor else rng.uniform(6.0, 12.0)
            amp = rng.uniform(0.0, 0.7) if rng.random() < 0.7 else 0.0
            length = rng.uniform(200, 1400)
            near = self.index.near(p[None], 350)
            roads_near = near[self.index.line[near] >= 0] if near.size else near
            if roads_near.size:
                a = self.index.a[roads_near]
                b = self.index.b[roads_near]
                d = _point_seg_dist(p[None], a, b)[0]
                j = int(np.argmin(d))
                e = b[j] - a[j]
                t = np.clip(((p - a[j]) @ e) / max(e @ e, 1e-12), 0, 1)
                q = a[j] + t * e
                if d[j] < 15:
                    continue
                theta = math.atan2(p[1] - q[1], p[0] - q[0]) + rng.normal(0, 0.2)
                pts = _grow(rng, q, theta, length, self.bounds, amp=amp, lam=(150.0, 900.0))
                parent_hw = float(self.index.hw[roads_near[j]])
                zone = (q[0], q[1], width / 2 + parent_hw + 14)
                res = self._place(pts, width, start_zone=zone, p_cross=0.3)
                if res is None:
                    continue
                pts, joints = res
                joints = [(q[0], q[1], max(width, 2 * parent_hw), False), *joints]
            else:
                # Nothing nearby: a free road through p, both ways.
                theta = rng.uniform(0, 2 * math.pi)
                fwd = _grow(rng, p, theta, length / 2, self.bounds, amp=amp, lam=(150.0, 900.0))
                res_f = self._place(fwd, width, start_zone=None, p_cross=0.3, min_len=1)
                bwd = _grow(
                    rng, p, theta + math.pi, length / 2, self.bounds, amp=amp, lam=(150.0, 900.0)
                )
                res_b = self._place(bwd, width, start_zone=None, p_cross=0.3, min_len=1)
                if res_f is None or res_b is None:
                    continue
                pts = np.vstack([res_b[0][::-1], res_f[0][1:]])
                if _length(pts) < 40:
                    continue
                joints = res_f[1] + res_b[1]
            self.junctions += joints
            self.add_road(_Line(pts, width, kind=kind, **self._road_look(kind, width)))

    def roundabout_stage(self) -> list[tuple[float, float, float]]:
        """Turn some junctions of wide roads into roundabouts; return islands (x, y, r)."""
        rng = self.rng
        cand = [j for j in self.junctions if j[2] >= 7.0]
        if not cand:
            return []
        pts = np.array([(j[0], j[1]) for j in self.junctions])
        order = rng.permutation(len(cand))
        p_pick = rng.uniform(0.1, 0.45)
        most = max(1, round(self.h * self.w / 7e5))
        made: list[tuple[float, float, float, float]] = []
        islands: list[tuple[float, float, float]] = []
        for i in order:
            x, y, wmax, _is_x = cand[i]
            if len(made) >= most:
                break
            if rng.random() > p_pick:
                continue
            ring_w = float(np.clip(wmax * rng.uniform(0.7, 1.0), 6.0, 13.0))
            radius = ring_w / 2 + rng.uniform(7.0, 24.0)
            reach = radius + ring_w / 2 + 20
            dj = np.hypot(pts[:, 0] - x, pts[:, 1] - y)
            if ((dj > 1.0) & (dj < reach + 10)).any():
                continue
            if any(math.hypot(x - mx, y - my) < mr + reach + 30 for mx, my, mr, _ in made):
                continue
            if not (-radius < x < self.w + radius and -radius < y < self.h + radius):
                continue
            # Every road near the ring must be one of those meeting at the junction.
            c = np.array([[x, y]])
            near = self.index.near(c, reach)
            if near.size:
                ids = self.index.line[near]
                d = _point_seg_dist(c, self.index.a[near], self.index.b[near])[0]
                close = d - self.index.hw[near] < reach
                through = {int(i) for i in ids[d < 1.0]}
                if any(int(i) not in through for i in ids[close]):
                    continue
            made.append((x, y, radius, ring_w))
        if not made:
            return []
        new_roads: list[_Line] = []
        circles = [shapely.Point(x, y).buffer(r, quad_segs=32) for x, y, r, _ in made]
        for road in self.roads:
            geom = LineString(road.pts)
            for circ in circles:
                if geom.is_empty:
                    break
                if geom.intersects(circ):
                    geom = geom.difference(circ)
            # No other junction lies near a roundabout, so short pieces left beyond
            # the ring are stubs of roads that ended there: drop them.
            for part in _parts(geom):
                if part.length >= 24:
                    new_roads.append(_copy_line(road, np.asarray(part.coords)))
        for (x, y, r, ring_w), circ in zip(made, circles, strict=True):
            ring = np.asarray(circ.exterior.coords)[::-1]
            look = self._road_look(_MAIN, ring_w)
            look["marks"] = False
            new_roads.append(_Line(ring, ring_w, kind=_RING, **look))
            islands.append((x, y, r - ring_w / 2))
        self.roads = new_roads
        return islands


def _parts(geom: shapely.Geometry) -> list[LineString]:
    if geom.is_empty:
        return []
    if isinstance(geom, LineString):
        return [geom]
    return [g for g in getattr(geom, "geoms", []) if isinstance(g, LineString) and not g.is_empty]


def _copy_line(line: _Line, pts: np.ndarray) -> _Line:
    return _Line(pts, line.width, line.kind, line.surface, line.rgb, line.marks, line.verge)


def _tracks(rng: np.random.Generator, net: _NetworkBuilder, style: _Style) -> list[_Line]:
    """Dirt tracks: thin brownish lines across the land, ending at roads; not roads."""
    area = net.h * net.w
    n = rng.poisson(area / 1.2e5 * rng.uniform(0.3, 1.5))
    out: list[_Line] = []
    base = np.array([160, 138, 104]) if style.season != "winter" else np.array([150, 140, 128])
    for _ in range(n):
        p = np.array([rng.uniform(0, net.w), rng.uniform(0, net.h)])
        if rng.random() < 0.6:
            theta = style.field_angle + rng.integers(4) * math.pi / 2 + rng.normal(0, 0.05)
            amp = rng.uniform(0.0, 0.08)
        else:
            theta = rng.uniform(0, 2 * math.pi)
            amp = rng.uniform(0.1, 0.6)
        pts = _grow(
            rng, p, theta, rng.uniform(80, 520), net.bounds, step=6.0, amp=amp, lam=(80.0, 400.0)
        )
        width = rng.uniform(1.6, 3.4)
        res = net._place(pts, width, start_zone=None, p_cross=0.0, gap=5.0, min_len=40)
        if res is None:
            continue
        rgb = base * rng.uniform(0.85, 1.15) + rng.uniform(-6, 6, 3)
        out.append(_Line(res[0], width, kind=-2, rgb=tuple(rgb.tolist())))
    return out


def _town_weight(towns: list[_Town], p: np.ndarray) -> np.ndarray:
    """0 (countryside) .. 1 (town centre) at points (n, 2)."""
    w = np.zeros(len(p))
    if not towns or not len(p):
        return w
    t = np.array([(town.cx, town.cy, town.radius) for town in towns])
    step = max(1, 1_000_000 // len(t))
    for i in range(0, len(p), step):
        q = p[i : i + step]
        d = np.hypot(q[:, None, 0] - t[None, :, 0], q[:, None, 1] - t[None, :, 1])
        w[i : i + step] = np.clip(1.05 - d / t[None, :, 2], 0, 1).max(axis=1) ** 0.6
    return w


def _buildings(
    rng: np.random.Generator,
    roads: list[_Line],
    rivers: list[_Line],
    towns: list[_Town],
    height: int,
    width: int,
) -> dict[str, np.ndarray]:
    """Rectangular buildings along roads (dense in towns), plus farmsteads."""
    cx: list[np.ndarray] = []
    cy: list[np.ndarray] = []
    ang: list[np.ndarray] = []
    half_a: list[np.ndarray] = []
    half_b: list[np.ndarray] = []
    for road in roads:
        if road.kind == _RING:
            continue
        base_p = {_MAIN: 0.02, _STREET: 0.1, _SECONDARY: 0.04, _MINOR: 0.03}[road.kind]
        spacing = rng.uniform(20, 32)
        pts, tan = _resample(road.pts, spacing, rng.uniform(0, spacing))
        if not len(pts):
            continue
        tw = _town_weight(towns, pts)
        for side in (-1.0, 1.0):
            p = base_p + 0.95 * tw
            keep = rng.random(len(pts)) < p
            if not keep.any():
                continue
            k = int(keep.sum())
            core = tw[keep]
            a = rng.uniform(5, 13, k) + 8 * core * rng.random(k)  # half length along road
            a = np.minimum(a, spacing / 2 - 1.5)
            b = rng.uniform(5, 11, k) + 10 * core * rng.random(k) ** 2  # half depth
            setback = rng.uniform(3, 12, k)
            nrm = np.column_stack([-tan[keep, 1], tan[keep, 0]]) * side
            centre = pts[keep] + nrm * (road.width / 2 + setback + b)[:, None]
            cx.append(centre[:, 0])
            cy.append(centre[:, 1])
            ang.append(np.arctan2(tan[keep, 1], tan[keep, 0]) + rng.normal(0, 0.03, k))
            half_a.append(a)
            half_b.append(b)
    # Farmsteads: a few big buildings off rural roads.
    n_farms = rng.poisson(height * width / 7e5)
    rural = [r for r in roads if r.kind in (_SECONDARY, _MINOR)]
    for _ in range(n_farms if rural else 0):
        road = rural[rng.integers(len(rural))]
        pts, tan = _resample(road.pts, 10.0)
        if not len(pts):
            continue
        i = rng.integers(len(pts))
        nrm = np.array([-tan[i, 1], tan[i, 0]]) * rng.choice([-1.0, 1.0])
        base = pts[i] + nrm * (road.width / 2 + rng.uniform(12, 40))
        theta = math.atan2(tan[i, 1], tan[i, 0])
        k = int(rng.integers(2, 6))
        off = rng.normal(0, 22, (k, 2))
        cx.append(base[0] + off[:, 0] + nrm[0] * 20)
        cy.append(base[1] + off[:, 1] + nrm[1] * 20)
        ang.append(theta + rng.integers(0, 2, k) * math.pi / 2 + rng.normal(0, 0.02, k))
        half_a.append(rng.uniform(8, 26, k))
        half_b.append(rng.uniform(6, 13, k))
    if not cx:
        return {}
    data = {
        "cx": np.concatenate(cx),
        "cy": np.concatenate(cy),
        "ang": np.concatenate(ang),
        "a": np.concatenate(half_a),
        "b": np.concatenate(half_b),
    }
    n = len(data["cx"])
    inside = (
        (data["cx"] > -60)
        & (data["cx"] < width + 60)
        & (data["cy"] > -60)
        & (data["cy"] < height + 60)
    )
    data = {k: v[inside] for k, v in data.items()}
    n = len(data["cx"])
    if not n:
        return {}
    polys = _rect_polys(data)
    keep = np.ones(n, dtype=bool)
    lines = [r for r in roads] + [r for r in rivers]
    if lines:
        segs, hw = _segment_geoms(lines)
        tree = shapely.STRtree(segs)
        bi, si = tree.query(polys, predicate="dwithin", distance=float(hw.max()) + 2.5)
        bad = shapely.distance(polys[bi], segs[si]) < hw[si] + 2.0
        keep[bi[bad]] = False
    # Greedy removal of overlapping buildings, in generation order.
    tree_b = shapely.STRtree(shapely.buffer(polys, 1.5, join_style="mitre"))
    bi, bj = tree_b.query(polys, predicate="intersects")
    sel = bi < bj
    pairs = sorted(zip(bi[sel].tolist(), bj[sel].tolist(), strict=True))
    for i, j in pairs:
        if keep[i] and keep[j]:
            keep[j] = False
    data = {k: v[keep] for k, v in data.items()}
    n = len(data["cx"])
    data["roof"] = _ROOFS[rng.integers(len(_ROOFS), size=n)] * rng.uniform(0.88, 1.12, (n, 1))
    data["gable"] = (rng.random(n) < 0.65) & (np.minimum(data["a"], data["b"]) < 12)
    data["height"] = rng.uniform(5, 14, n) * np.where(data["gable"], 1.0, 1.3)
    data["car"] = np.zeros(n, dtype=bool)
    return data


# fmt: off
_CARS = np.array(
    [(225, 225, 222), (190, 192, 196), (40, 42, 46), (90, 92, 98), (150, 30, 30),
     (40, 60, 120), (200, 200, 205), (30, 30, 34), (120, 124, 130), (60, 80, 60)],
    dtype=_F32,
)
# fmt: on


def _cars(
    rng: np.random.Generator, roads: list[_Line], towns: list[_Town]
) -> dict[str, np.ndarray]:
    """Cars on roads of 5.5 px and wider, in lanes or parked at the edge (road pixels
    in the mask: cars hide the surface the way trees do)."""
    parts: dict[str, list[np.ndarray]] = {k: [] for k in ("cx", "cy", "ang", "a", "b")}
    for road in roads:
        if road.width < 5.5 or road.surface == _GRAVEL:
            continue
        pts, tan = _resample(road.pts, 6.0, rng.uniform(0, 6.0))
        if not len(pts):
            continue
        busy = 0.004 + 0.03 * _town_weight(towns, pts)  # cars per px of road
        keep = rng.random(len(pts)) < busy * 6.0
        k = int(keep.sum())
        if not k:
            continue
        hw = road.width / 2
        half_b = rng.uniform(1.6, 2.1, k)
        lane = np.where(rng.random(k) < 0.5, -1.0, 1.0)
        if road.width >= 9:
            off = lane * road.width / 4
        else:
            off = lane * np.maximum(hw - half_b - 0.3, 0) * (rng.random(k) < 0.5)
        nrm = np.column_stack([-tan[keep, 1], tan[keep, 0]])
        c = pts[keep] + nrm * off[:, None]
        parts["cx"].append(c[:, 0])
        parts["cy"].append(c[:, 1])
        parts["ang"].append(np.arctan2(tan[keep, 1], tan[keep, 0]))
        parts["a"].append(rng.uniform(3.6, 5.2, k))
        parts["b"].append(half_b)
    if not parts["cx"]:
        return {}
    data = {k: np.concatenate(v) for k, v in parts.items()}
    n = len(data["cx"])
    data["roof"] = _CARS[rng.integers(len(_CARS), size=n)] * rng.uniform(0.9, 1.1, (n, 1))
    data["gable"] = np.zeros(n, dtype=bool)
    data["height"] = np.full(n, 1.5)
    data["car"] = np.ones(n, dtype=bool)
    return data


def _rect_polys(d: dict[str, np.ndarray]) -> np.ndarray:
    c, s = np.cos(d["ang"]), np.sin(d["ang"])
    corners = []
    for su, sv in ((-1, -1), (1, -1), (1, 1), (-1, 1), (-1, -1)):
        x = d["cx"] + su * d["a"] * c - sv * d["b"] * s
        y = d["cy"] + su * d["a"] * s + sv * d["b"] * c
        corners.append(np.column_stack([x, y]))
    return shapely.polygons(np.stack(corners, axis=1))


def _segment_geoms(lines: list[_Line]) -> tuple[np.ndarray, np.ndarray]:
    a = np.concatenate([ln.pts[:-1] for ln in lines])
    b = np.concatenate([ln.pts[1:] for ln in lines])
    hw = np.concatenate([np.full(len(ln.pts) - 1, ln.width / 2) for ln in lines])
    return shapely.linestrings(np.stack([a, b], axis=1)), hw


def _trees(
    rng: np.random.Generator,
    roads: list[_Line],
    rivers: list[_Line],
    towns: list[_Town],
    buildings: dict[str, np.ndarray],
    islands: list[tuple[float, float, float]],
    height: int,
    width: int,
) -> dict[str, np.ndarray]:
    """Tree crowns: alleys along roads (overhanging them), town gardens, copses,
    river banks and roundabout islands."""
    xs: list[np.ndarray] = []
    ys: list[np.ndarray] = []
    rs: list[np.ndarray] = []
    kinds: list[np.ndarray] = []  # 0: may overhang a road, 1: keeps off roads
    for road in roads:
        p_alley = {_MAIN: 0.15, _STREET: 0.3, _SECONDARY: 0.3, _MINOR: 0.3, _RING: 0.0}[road.kind]
        if rng.random() >= p_alley:
            continue
        r_mean = rng.uniform(3.5, 8.0)
        spacing = 2 * r_mean * rng.uniform(0.9, 1.6)
        pts, tan = _resample(road.pts, spacing, rng.uniform(0, spacing))
        if not len(pts):
            continue
        sides = [(-1.0,), (1.0,), (-1.0, 1.0)][rng.integers(3)]
        for side in sides:
            keep = rng.random(len(pts)) > rng.uniform(0.05, 0.4)
            k = int(keep.sum())
            r = r_mean * rng.uniform(0.75, 1.25, k)
            off = road.width / 2 + r * rng.uniform(-0.35, 0.6, k)
            nrm = np.column_stack([-tan[keep, 1], tan[keep, 0]]) * side
            c = pts[keep] + nrm * off[:, None]
            xs.append(c[:, 0])
            ys.append(c[:, 1])
            rs.append(r)
            kinds.append(np.zeros(k, dtype=np.int8))
    for town in towns:
        k = rng.poisson(town.radius**2 / 900)
        rr = town.radius * np.sqrt(rng.random(k))
        th = rng.uniform(0, 2 * math.pi, k)
        xs.append(town.cx + rr * np.cos(th))
        ys.append(town.cy + rr * np.sin(th))
        rs.append(rng.uniform(3.0, 8.0, k))
        kinds.append(np.ones(k, dtype=np.int8))
    n_copses = rng.poisson(height * width / 1.5e5)
    for _ in range(n_copses):
        k = int(rng.integers(3, 40))
        c = np.array([rng.uniform(-30, width + 30), rng.uniform(-30, height + 30)])
        spread = rng.uniform(8, 45)
        p = c + rng.normal(0, spread, (k, 2))
        xs.append(p[:, 0])
        ys.append(p[:, 1])
        rs.append(rng.uniform(3.5, 9.0, k))
        kinds.append(np.ones(k, dtype=np.int8))
    n_single = rng.poisson(height * width / 2.5e4)
    xs.append(rng.uniform(-20, width + 20, n_single))
    ys.append(rng.uniform(-20, height + 20, n_single))
    rs.append(rng.uniform(3.0, 8.0, n_single))
    kinds.append(np.ones(n_single, dtype=np.int8))
    for river in rivers:
        if rng.random() < 0.5:
            continue
        pts, tan = _resample(river.pts, rng.uniform(8, 20))
        keep = rng.random(len(pts)) < rng.uniform(0.3, 0.9)
        k = int(keep.sum())
        sgn = rng.choice([-1.0, 1.0], k)
        rad = rng.uniform(3.5, 8.0, k)
        nrm = np.column_stack([-tan[keep, 1], tan[keep, 0]]) * sgn[:, None]
        c = pts[keep] + nrm * (river.width / 2 + rad * rng.uniform(0.2, 1.2, k))[:, None]
        xs.append(c[:, 0])
        ys.append(c[:, 1])
        rs.append(rad)
        kinds.append(np.full(k, 2, dtype=np.int8))
    for ix, iy, ir in islands:
        if ir >= 7 and rng.random() < 0.6:
            xs.append(np.array([ix]))
            ys.append(np.array([iy]))
            rs.append(np.array([min(ir * 0.6, 8.0)]))
            kinds.append(np.full(1, 3, dtype=np.int8))
    x = np.concatenate(xs) if xs else np.zeros(0)
    y = np.concatenate(ys) if ys else np.zeros(0)
    r = np.concatenate(rs) if rs else np.zeros(0)
    kind = np.concatenate(kinds) if kinds else np.zeros(0, dtype=np.int8)
    inside = (x > -r - 30) & (x < width + r + 30) & (y > -r - 30) & (y < height + r + 30)
    x, y, r, kind = x[inside], y[inside], r[inside], kind[inside]
    keep = np.ones(len(x), dtype=bool)
    pts = shapely.points(np.column_stack([x, y])) if len(x) else np.zeros(0, dtype=object)
    if len(x) and roads:
        segs, hw = _segment_geoms(roads)
        tree = shapely.STRtree(segs)
        pi, si = tree.query(pts, predicate="dwithin", distance=float(hw.max()) + 10)
        clear = shapely.distance(pts[pi], segs[si]) - hw[si]
        # Trees may overhang roads (kind 0 up to a third of the crown), but never
        # stand in the middle of one; others keep off roads.
        limit = np.where(kind[pi] == 0, -0.35 * r[pi], np.where(kind[pi] == 3, -99, 0.3 * r[pi]))
        keep[pi[clear < limit]] = False
    if len(x) and rivers:
        segs, hw = _segment_geoms(rivers)
        tree = shapely.STRtree(segs)
        pi, si = tree.query(pts, predicate="dwithin", distance=float(hw.max()) + 10)
        clear = shapely.distance(pts[pi], segs[si]) - hw[si]
        keep[pi[clear < 0.2 * r[pi]]] = False
    if len(x) and buildings:
        polys = _rect_polys(buildings)
        tree = shapely.STRtree(shapely.buffer(polys, 2.0))
        pi, _bi = tree.query(pts, predicate="within")
        keep[pi] = False
    x, y, r = x[keep], y[keep], r[keep]
    n = len(x)
    return {
        "cx": x,
        "cy": y,
        "r": r,
        "shade": rng.integers(0, 4, n),
        "tone": rng.uniform(0.82, 1.18, n),
        "height": r * rng.uniform(1.3, 2.6, n),
    }


def _make_objects(
    data: dict[str, np.ndarray],
    pad: np.ndarray,
    extra: np.ndarray | None = None,
) -> _Objects:
    """Wrap object arrays with their pixel boxes (``pad`` around the centre, plus an
    optional extra (n, 2) reach for shadows)."""
    if not data or not len(data["cx"]):
        return _Objects({}, np.zeros((0, 4), dtype=np.int64))
    cx, cy = data["cx"], data["cy"]
    x0, x1, y0, y1 = cx - pad, cx + pad, cy - pad, cy + pad
    if extra is not None:
        x0 = np.minimum(x0, x0 + extra[:, 0])
        x1 = np.maximum(x1, x1 + extra[:, 0])
        y0 = np.minimum(y0, y0 + extra[:, 1])
        y1 = np.maximum(y1, y1 + extra[:, 1])
    return _Objects(data, _pixel_box(x0, x1, y0, y1))


@lru_cache(maxsize=8)
def _layout(height: int, width: int, spec: SceneSpec) -> _Layout:
    """The vector layout of a scene (cached: rendering many windows builds it once)."""
    rng = np.random.default_rng([spec.seed, height, width, 0x5CE7E])
    style = _make_style(rng)
    net = _NetworkBuilder(rng, height, width, style)
    net.rivers_stage()
    net.towns_stage()
    net.main_stage()
    net.grid_stage()
    net.branch_stage()
    islands = net.roundabout_stage()
    tracks = _tracks(rng, net, style)
    # Simplify straight runs (keeps junction end points, moves nothing by > 0.05 px).
    roads = []
    for road in net.roads:
        simple = shapely.simplify(LineString(road.pts), 0.05, preserve_topology=False)
        roads.append(_copy_line(road, np.asarray(simple.coords)))
    bdata = _buildings(rng, roads, net.rivers, net.towns, height, width)
    tdata = _trees(rng, roads, net.rivers, net.towns, bdata, islands, height, width)
    cdata = _cars(rng, roads, net.towns)
    if cdata:
        bdata = {k: np.concatenate([bdata[k], v]) for k, v in cdata.items()} if bdata else cdata
    sun = np.array(style.sun)
    if bdata:
        reach = np.hypot(bdata["a"], bdata["b"]) + 2
        shadow = -sun[None, :] * (bdata["height"] * style.shadow_len)[:, None]
        buildings = _make_objects(bdata, reach, shadow)
    else:
        buildings = _make_objects({}, np.zeros(0))
    shadow_t = -sun[None, :] * (tdata["height"] * style.shadow_len)[:, None]
    trees = _make_objects(tdata, tdata["r"] * 1.2 + 1, shadow_t)
    if islands:
        isl = np.array(islands)
        idata = {"cx": isl[:, 0], "cy": isl[:, 1], "r": isl[:, 2]}
        island_objs = _make_objects(idata, isl[:, 2] + 1)
    else:
        island_objs = _make_objects({}, np.zeros(0))
    layout = _Layout(
        height=height,
        width=width,
        seed=spec.seed,
        style=style,
        roads=roads,
        rivers=net.rivers,
        tracks=tracks,
        towns=net.towns,
        road_segs=_SegTable(roads, extend=2.0),
        river_segs=_SegTable(net.rivers, extend=6.0),
        track_segs=_SegTable(tracks, extend=1.5),
        buildings=buildings,
        trees=trees,
        islands=island_objs,
    )
    frame = shapely.box(0, 0, width, height)
    for road in roads:
        for part in _parts(LineString(road.pts).intersection(frame)):
            if part.length >= 1.0:
                layout.centerlines.append(part)
                layout.widths.append(float(road.width))
    return layout


# --------------------------------------------------------------------------------------
# Rendering of one window
# --------------------------------------------------------------------------------------


class _Canvas:
    """The grid of one window (plus halo): global rows/cols and pixel centres."""

    def __init__(self, row0: int, col0: int, h: int, w: int) -> None:
        self.rows = np.arange(row0, row0 + h, dtype=np.int64)
        self.cols = np.arange(col0, col0 + w, dtype=np.int64)
        self.ys = (self.rows + 0.5).astype(_F32)
        self.xs = (self.cols + 0.5).astype(_F32)
        self.row0, self.col0, self.h, self.w = row0, col0, h, w

    def clip(self, box: np.ndarray) -> Iterator[tuple[int, slice, slice]]:
        """Objects whose pixel boxes meet the canvas, with their local slices."""
        if not len(box):
            return
        c0, c1 = self.col0, self.col0 + self.w - 1
        r0, r1 = self.row0, self.row0 + self.h - 1
        sel = np.nonzero(
            (box[:, 0] <= c1) & (box[:, 1] >= c0) & (box[:, 2] <= r1) & (box[:, 3] >= r0)
        )[0]
        lo_c = np.maximum(box[sel, 0], c0) - c0
        hi_c = np.minimum(box[sel, 1], c1) - c0 + 1
        lo_r = np.maximum(box[sel, 2], r0) - r0
        hi_r = np.minimum(box[sel, 3], r1) - r0 + 1
        for k, a, b, c, d in zip(
            sel.tolist(), lo_r.tolist(), hi_r.tolist(), lo_c.tolist(), hi_c.tolist(), strict=True
        ):
            yield k, slice(a, b), slice(c, d)


def _rasterise_lines(
    cv: _Canvas, segs: _SegTable, want_s: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """Signed edge distance (distance to the centreline minus half width) of the
    nearest-edged line at every pixel, the index of that line, and optionally the
    arc length along it (for lines flagged in ``want_s``).

    Pixels farther than a line's box from every line get +inf and index -1.
    """
    best = np.full((cv.h, cv.w), np.inf, dtype=_F32)
    owner = np.full((cv.h, cv.w), -1, dtype=np.int32)
    arc = np.zeros((cv.h, cv.w), dtype=_F32) if want_s is not None else None
    for k, rs, cs in cv.clip(segs.box):
        dx = cv.xs[cs] - segs.ax[k]
        dy = cv.ys[rs] - segs.ay[k]
        t = (dy * segs.uy[k])[:, None] + dx * segs.ux[k]
        np.clip(t, 0, 1, out=t)
        qx = dx - t * segs.ex[k]
        qy = dy[:, None] - t * segs.ey[k]
        e = np.sqrt(qx * qx + qy * qy) - segs.hw[k]
        sub = best[rs, cs]
        m = e < sub
        sub[m] = e[m]
        line = segs.owner[k]
        owner[rs, cs][m] = line
        if arc is not None and want_s is not None and want_s[line]:
            arc[rs, cs][m] = (segs.s0[k] + t * segs.ln[k])[m]
    return best, owner, arc


def _background(
    cv: _Canvas, lay: _Layout, n_mid: np.ndarray, n_fine: np.ndarray, grain: np.ndarray
) -> np.ndarray:
    """Fields, meadows, bare soil and forest on a jittered-grid Voronoi of parcels."""
    st = lay.style
    seed = lay.seed
    P = st.parcel
    rows, cols = cv.rows, cv.cols
    gys = np.arange(rows[0] // P - 1, rows[-1] // P + 2)
    gxs = np.arange(cols[0] // P - 1, cols[-1] // P + 2)
    ny, nx = len(gys), len(gxs)
    h = _hash2(gys[:, None], gxs[None, :], _salt(seed, "parcel"))
    sx = (gxs[None, :] + 0.2 + 0.6 * _unit(h)) * P
    sy = (gys[:, None] + 0.2 + 0.6 * _unit(_mix(h ^ np.uint32(0x5BD1E995)))) * P
    sx = np.broadcast_to(sx, (ny, nx)).astype(np.float64)
    sy = np.broadcast_to(sy, (ny, nx)).astype(np.float64)
    xs = cols + 0.5
    ys = rows + 0.5
    pcx = cols // P
    pcy = rows // P
    d1 = np.full((cv.h, cv.w), np.inf, dtype=_F32)
    d2 = np.full((cv.h, cv.w), np.inf, dtype=_F32)
    id1 = np.zeros((cv.h, cv.w), dtype=np.int32)
    id2 = np.zeros((cv.h, cv.w), dtype=np.int32)
    # Each pixel takes the two nearest seeds among its own and the 8 neighbouring
    # cells, visited in global order: the same for every window.
    for iy in range(ny):
        gy = gys[iy]
        ra, rb = np.searchsorted(pcy, gy - 1, "left"), np.searchsorted(pcy, gy + 1, "right")
        if ra >= rb:
            continue
        for ix in range(nx):
            gx = gxs[ix]
            ca, cb = np.searchsorted(pcx, gx - 1, "left"), np.searchsorted(pcx, gx + 1, "right")
            if ca >= cb:
                continue
            dxx = ((xs[ca:cb] - sx[iy, ix]) ** 2).astype(_F32)
            dyy = ((ys[ra:rb] - sy[iy, ix]) ** 2).astype(_F32)
            d = dyy[:, None] + dxx[None, :]
            k = iy * nx + ix
            D1 = d1[ra:rb, ca:cb]
            D2 = d2[ra:rb, ca:cb]
            I1 = id1[ra:rb, ca:cb]
            I2 = id2[ra:rb, ca:cb]
            m1 = d < D1
            m2 = d < D2
            # d < D1 implies d < D2: the old nearest becomes second, else d is.
            np.copyto(I2, k, where=m2)
            np.copyto(I2, I1, where=m1)
            np.minimum(D2, np.maximum(d, D1), out=D2)
            np.minimum(D1, d, out=D1)
            np.copyto(I1, k, where=m1)
    # Distance to the boundary between the two nearest parcels (their bisector) is
    # (d2 - d1) / (2 |s2 - s1|); only pixels near a boundary need it exactly.
    max_sep = 2 * math.sqrt(2) * P
    cand = np.nonzero(d2 - d1 < _F32(2 * 3.0 * max_sep))
    i1, i2 = id1[cand], id2[cand]
    sxf, syf = sx.ravel(), sy.ravel()
    sep = np.sqrt((sxf[i2] - sxf[i1]) ** 2 + (syf[i2] - syf[i1]) ** 2).astype(_F32)
    bd_c = (d2[cand] - d1[cand]) / (_F32(2) * np.maximum(sep, _F32(1e-3)))

    # Per-parcel attributes, hashed from global cell coordinates.
    gy_all = np.broadcast_to(gys[:, None], (ny, nx)).ravel()
    gx_all = np.broadcast_to(gxs[None, :], (ny, nx)).ravel()
    u = [_unit(_hash2(gy_all, gx_all, _salt(seed, f"attr{i}"))) for i in range(8)]
    pc = np.cumsum(st.p_classes)
    cls = np.searchsorted(pc, u[0] * _F32(pc[-1]), side="right").astype(np.int8)
    pal = st.fields[(u[1] * len(st.fields)).astype(int) % len(st.fields)]
    pal = np.where((cls == 1)[:, None], st.meadow[(u[1] * len(st.meadow)).astype(int)], pal)
    pal = np.where((cls == 2)[:, None], st.soil[(u[1] * len(st.soil)).astype(int)], pal)
    pal = pal * (0.9 + 0.2 * u[2])[:, None]
    aligned = u[3] < 0.65
    theta = np.where(
        aligned,
        st.field_angle + np.floor(u[4] * 2) * math.pi / 2 + (u[4] - 0.5) * 0.1,
        u[4] * math.pi,
    )
    cos_t = np.cos(theta).astype(_F32)
    sin_t = np.sin(theta).astype(_F32)
    period = (2.5 + 6.0 * u[5]).astype(_F32)
    row_amp = np.where(cls == 0, 0.04 + 0.2 * u[6], 0).astype(_F32)
    strip_w = np.where(u[7] < 0.45, 0, 16 + 80 * u[5]).astype(_F32)
    tram = np.where((cls == 0) & (u[7] > 0.6), 36 + 24 * u[2], 0).astype(_F32)

    X = cv.xs[None, :]
    Y = cv.ys[:, None]
    c = cos_t[id1]
    s = sin_t[id1]
    q = Y * c - X * s  # across the rows
    f = q / period[id1]
    tri = np.abs((f - np.floor(f)) * _F32(2) - _F32(1))
    bright = _F32(1) + row_amp[id1] * (tri - _F32(0.5)) * _F32(2)
    # Strips: parallel sub-fields with their own shade (and sometimes crop).
    sw = strip_w[id1]
    has_strip = sw > 0
    strip = np.floor(q / np.where(has_strip, sw, _F32(1))).astype(np.int32)
    keys = _cell_key(gy_all, gx_all).astype(np.uint32) ^ np.uint32(_salt(seed, "strip"))
    hs = _unit(_mix(strip.astype(np.uint32) * np.uint32(0x9E3779B1) + keys[id1]))
    bright *= np.where(has_strip, _F32(0.9) + _F32(0.2) * hs, _F32(1))
    img = pal.astype(_F32)[id1]
    swap = has_strip & (hs < 0.22) & (cls[id1] == 0)
    if swap.any():
        alt = st.fields[(hs[swap] * 97).astype(int) % len(st.fields)]
        img[swap] = alt
    tr = tram[id1]
    ft = np.where(tr > 0, q - np.floor(q / np.where(tr > 0, tr, _F32(1))) * tr, _F32(99))
    tramline = (ft < _F32(1.1)) | ((ft > _F32(3.6)) & (ft < _F32(4.7)))
    bright *= np.where(tramline, _F32(1.1), _F32(1))
    mottle = (0.15 + 0.45 * u[6]).astype(_F32)
    texture = _F32(1) + mottle[id1] * (n_mid - _F32(0.5))
    texture *= _F32(1) + _F32(0.26) * (n_fine - _F32(0.5))
    texture *= _F32(1) + _F32(0.14) * (grain - _F32(0.5))
    img *= (bright * texture)[..., None]

    # Field boundaries: grass margins, hedges and bare strips (road lookalikes).
    close = bd_c < _F32(3.0)
    near = (cand[0][close], cand[1][close])
    if close.any():
        bd = bd_c[close]
        k1 = _cell_key(gy_all, gx_all)[id1[near]]
        k2 = _cell_key(gy_all, gx_all)[id2[near]]
        hb = _unit(_hash2(np.minimum(k1, k2), np.maximum(k1, k2), _salt(seed, "edge")))
        half = np.where(hb < 0.4, 0, np.where(hb < 0.75, 0.7 + hb, np.where(hb < 0.9, 2.4, 1.0)))
        b = bd
        inside = b < half
        edge_rgb = np.where(
            (hb < 0.75)[:, None],
            st.meadow[0] * 0.95,
            np.where((hb < 0.9)[:, None], st.forest[0] * 1.15, st.soil[0] * 1.18),
        ).astype(_F32)
        hedge = (hb >= 0.75) & (hb < 0.9)
        edge_rgb *= np.where(hedge, 0.75 + 0.5 * n_fine[near], 0.9 + 0.2 * n_fine[near])[:, None]
        alpha = np.where(inside, np.clip(half - b + 0.5, 0, 1), 0).astype(_F32)[:, None]
        img[near] = img[near] * (1 - alpha) + edge_rgb * alpha
    return img


def _cell_key(gy: np.ndarray, gx: np.ndarray) -> np.ndarray:
    """A global integer key of a parcel cell."""
    return gy.astype(np.int64) * 100003 + gx.astype(np.int64)


def _forest(cv: _Canvas, lay: _Layout, img: np.ndarray, n_big: np.ndarray) -> None:
    """Forest canopy where the forest noise is high: crowns from cellular noise."""
    st = lay.style
    yy, xx = np.nonzero(n_big > _F32(st.forest_thr))
    if not yy.size:
        return
    px = cv.xs[xx]
    py = cv.ys[yy]
    cell = st.forest_cell
    d, dx, dy, val = _cells(px, py, cell, _salt(lay.seed, "crowns"))
    rad = _F32(cell * 0.62) * (_F32(0.8) + _F32(0.4) * val)
    rel = np.minimum(d / rad, _F32(1.3))
    sun_x, sun_y = st.sun
    lit = (dx * _F32(sun_x) + dy * _F32(sun_y)) / (rad + _F32(1e-3))
    bright = _F32(0.95) - _F32(0.35) * rel * rel + _F32(0.35) * lit
    bright = np.where(rel > 1, _F32(0.4), bright)
    tone = st.forest[(val * len(st.forest)).astype(int) % len(st.forest)]
    tone = tone * (_F32(0.85) + _F32(0.3) * val)[:, None]
    # Soft edge: the canopy thins out over the first 4 % of the noise range.
    edge = np.clip((n_big[yy, xx] - _F32(st.forest_thr)) / _F32(0.04), 0, 1)
    gap = (edge < 1) & (rel > 0.75)
    alpha = np.where(gap, 0, 1).astype(_F32)[:, None]
    img[yy, xx] = img[yy, xx] * (1 - alpha) + tone * np.maximum(bright, 0.2)[:, None] * alpha


def _town_ground(
    cv: _Canvas, lay: _Layout, img: np.ndarray, n_mid: np.ndarray, n_fine: np.ndarray
) -> None:
    """Gardens, lawns and yards in plots aligned with each town's street grid."""
    st = lay.style
    for ti, town in enumerate(lay.towns):
        r = town.radius * 1.15
        c0 = max(int(town.cx - r) - cv.col0, 0)
        c1 = min(int(town.cx + r) + 1 - cv.col0, cv.w)
        r0 = max(int(town.cy - r) - cv.row0, 0)
        r1 = min(int(town.cy + r) + 1 - cv.row0, cv.h)
        if c0 >= c1 or r0 >= r1:
            continue
        X = cv.xs[c0:c1][None, :] - _F32(town.cx)
        Y = cv.ys[r0:r1][:, None] - _F32(town.cy)
        dist = np.sqrt(X * X + Y * Y)
        lim = _F32(town.radius) * (_F32(0.9) + _F32(0.35) * n_mid[r0:r1, c0:c1])
        inside = dist < lim
        if not inside.any():
            continue
        ca, sa = _F32(math.cos(town.angle)), _F32(math.sin(town.angle))
        u = X * ca + Y * sa
        v = Y * ca - X * sa
        pu, pv = _F32(town.plot[0]), _F32(town.plot[1])
        iu = np.floor(u / pu).astype(np.int64)
        iv = np.floor(v / pv).astype(np.int64)
        hp = _unit(_hash2(iu, iv, _salt(lay.seed, f"plot{ti}")))
        # Mostly lawns and gardens of slightly different greens; a few paved yards.
        lawn = st.meadow[0] * _F32(1.04)
        garden = (st.meadow[0] + st.crown[0]) * _F32(0.5)
        paved = np.array([150, 146, 138], dtype=_F32)
        rgb = np.where((hp < 0.62)[..., None], lawn, np.where((hp < 0.9)[..., None], garden, paved))
        rgb = rgb * (_F32(0.92) + _F32(0.16) * hp)[..., None]
        fu = u - np.floor(u / pu) * pu
        fv = v - np.floor(v / pv) * pv
        fence = (fu < _F32(1.0)) | (fv < _F32(1.0))
        tex = _F32(1) + _F32(0.25) * (n_fine[r0:r1, c0:c1] - _F32(0.5))
        tex += _F32(0.2) * (n_mid[r0:r1, c0:c1] - _F32(0.5))
        tex = tex * np.where(fence, _F32(0.88), _F32(1))
        rgb = rgb * tex[..., None]
        alpha = np.clip((lim - dist) / _F32(12), 0, 1)[..., None]
        sub = img[r0:r1, c0:c1]
        sub[...] = sub * (1 - alpha) + rgb * alpha


def _water(
    cv: _Canvas, lay: _Layout, img: np.ndarray, n_mid: np.ndarray, n_fine: np.ndarray
) -> None:
    if not lay.rivers:
        return
    e, owner, _ = _rasterise_lines(cv, lay.river_segs)
    e = e + _F32(3.5) * (n_mid - _F32(0.5))  # irregular banks
    near = e < _F32(3.5)
    if not near.any():
        return
    rgb = np.array([r.rgb for r in lay.rivers], dtype=_F32)[owner[near]]
    ee = e[near]
    water = rgb * (_F32(0.92) + _F32(0.16) * n_fine[near])[:, None]
    bank = lay.style.forest[1] * _F32(1.1) * (_F32(0.8) + _F32(0.4) * n_fine[near])[:, None]
    a_w = np.clip(_F32(0.5) - ee, 0, 1)[:, None]
    a_b = np.clip(_F32(3.0) - ee, 0, 1)[:, None] * _F32(0.8)
    px = img[near]
    px = px * (1 - a_b) + bank * a_b
    img[near] = px * (1 - a_w) + water * a_w


def _track_paint(
    cv: _Canvas, lay: _Layout, img: np.ndarray, n_mid: np.ndarray, grain: np.ndarray
) -> None:
    if not lay.tracks:
        return
    e, owner, _ = _rasterise_lines(cv, lay.track_segs)
    near = e < _F32(0.5)
    if not near.any():
        return
    ee = e[near]
    hw = np.array([t.width / 2 for t in lay.tracks], dtype=_F32)[owner[near]]
    dc = ee + hw  # distance from the track's centre
    rgb = np.array([t.rgb for t in lay.tracks], dtype=_F32)[owner[near]]
    rgb = rgb * (_F32(0.9) + _F32(0.2) * grain[near])[:, None]
    a = np.clip(_F32(0.5) - ee, 0, 1) * (_F32(0.45) + _F32(0.55) * n_mid[near])
    # Wide tracks: two wheel ruts with grass between them.
    a = np.where((hw > 1.3) & (dc < _F32(0.55)), a * _F32(0.35), a)[:, None]
    img[near] = img[near] * (1 - a) + rgb * a


def _road_paint(
    cv: _Canvas,
    lay: _Layout,
    img: np.ndarray,
    n_mid: np.ndarray,
    n_fine: np.ndarray,
    grain: np.ndarray,
) -> np.ndarray:
    """Paint roads; return the road mask (distance to centreline <= half width)."""
    roads = lay.roads
    if not roads:
        return np.zeros((cv.h, cv.w), dtype=bool)
    marks = np.array([r.marks for r in roads], dtype=bool)
    e, owner, arc = _rasterise_lines(cv, lay.road_segs, marks)
    mask = e <= 0
    near = e < _F32(2.0)
    if not near.any():
        return mask
    o = owner[near]
    ee = e[near]
    hw = np.array([r.width / 2 for r in roads], dtype=_F32)[o]
    surface = np.array([r.surface for r in roads], dtype=np.int8)[o]
    verge = np.array([r.verge for r in roads], dtype=bool)[o]
    rgb = np.array([r.rgb for r in roads], dtype=_F32)[o]
    dc = ee + hw
    gravel = surface == _GRAVEL
    tex = _F32(1) + _F32(0.1) * (n_mid[near] - _F32(0.5)) + _F32(0.08) * (n_fine[near] - 0.5)
    tex += np.where(gravel, _F32(0.16), _F32(0.05)) * (grain[near] - _F32(0.5))
    # Wheel ruts on gravel, a darker worn lane band on asphalt.
    rut = np.clip(_F32(1) - np.abs(dc - hw * _F32(0.5)) / _F32(1.2), 0, 1)
    tex -= np.where(gravel, _F32(0.1), _F32(0.04)) * rut
    # Slightly lighter edges (dust, kerbs).
    tex += np.where(ee > -1.0, _F32(0.06), _F32(0))
    col = rgb * tex[:, None]
    if arc is not None and marks.any():
        s = arc[near]
        mk = marks[o]
        dash = (s - np.floor(s / _F32(18)) * _F32(18)) < _F32(8)
        centre = mk & dash & (dc < _F32(0.7))
        edge_line = mk & (hw >= 7) & (dc > hw - _F32(2.0)) & (dc < hw - _F32(1.1))
        paint = (centre | edge_line)[:, None]
        col = np.where(paint, col * _F32(0.35) + _F32(0.65 * 225), col)
    alpha = np.clip(_F32(0.5) - ee, 0, 1)
    px = img[near]
    # Verges: a pale dry strip just outside the road (not road).
    vmix = np.where(verge & (ee > 0) & (ee < 1.8), _F32(0.4), _F32(0))[:, None]
    px = px * (1 - vmix) + (px * _F32(0.5) + rgb * _F32(0.2) + _F32(50)) * vmix
    a = alpha[:, None]
    img[near] = px * (1 - a) + col * a
    return mask


def _islands(cv: _Canvas, lay: _Layout, img: np.ndarray, n_fine: np.ndarray) -> None:
    isl = lay.islands
    if not len(isl):
        return
    grass = lay.style.meadow[0] * _F32(1.1)
    for k, rs, cs in cv.clip(isl.box):
        X = cv.xs[cs][None, :] - _F32(isl.data["cx"][k])
        Y = cv.ys[rs][:, None] - _F32(isl.data["cy"][k])
        d = np.sqrt(X * X + Y * Y)
        a = np.clip(_F32(isl.data["r"][k]) + _F32(0.5) - d, 0, 1)[..., None]
        g = grass * (_F32(0.9) + _F32(0.2) * n_fine[rs, cs])[..., None]
        sub = img[rs, cs]
        sub[...] = sub * (1 - a) + g * a


def _objects_paint(cv: _Canvas, lay: _Layout, img: np.ndarray, n_fine: np.ndarray) -> None:
    """Shadows of buildings and trees, then roofs, then tree crowns."""
    st = lay.style
    sun_x, sun_y = _F32(st.sun[0]), _F32(st.sun[1])
    shade = np.ones((cv.h, cv.w), dtype=bool)
    over = np.zeros((cv.h, cv.w, 3), dtype=_F32)
    over_a = np.zeros((cv.h, cv.w), dtype=_F32)
    b = lay.buildings
    for k, rs, cs in cv.clip(b.box):
        d = b.data
        X = cv.xs[cs][None, :] - _F32(d["cx"][k])
        Y = cv.ys[rs][:, None] - _F32(d["cy"][k])
        ca, sa = _F32(math.cos(d["ang"][k])), _F32(math.sin(d["ang"][k]))
        ha, hb = _F32(d["a"][k]), _F32(d["b"][k])
        u = X * ca + Y * sa
        v = Y * ca - X * sa
        inside = (np.abs(u) <= ha) & (np.abs(v) <= hb)
        # Shadow: the footprint swept along the shadow vector.
        length = d["height"][k] * st.shadow_len
        su = -float(sun_x * ca + sun_y * sa) * length
        sv = -float(sun_y * ca - sun_x * sa) * length
        lo = np.zeros_like(u)
        hi = np.ones_like(u)
        for coord, comp, half in ((u, su, ha), (v, sv, hb)):
            if abs(comp) < 1e-6:
                ok = np.abs(coord) <= half
                hi = np.where(ok, hi, _F32(-1))
            else:
                t1 = (coord - half) / _F32(comp)
                t2 = (coord + half) / _F32(comp)
                lo = np.maximum(lo, np.minimum(t1, t2))
                hi = np.minimum(hi, np.maximum(t1, t2))
        shadow = lo <= hi
        shade[rs, cs] &= ~(shadow & ~inside)
        roof = np.asarray(d["roof"][k], dtype=_F32)
        if d["gable"][k]:
            # Ridge along the long axis: the two slopes catch different light.
            along_u = d["a"][k] >= d["b"][k]
            across = v if along_u else u
            nx_, ny_ = (-sa, ca) if along_u else (ca, sa)
            facing = float(nx_ * sun_x + ny_ * sun_y)
            lit = np.where(across >= 0, _F32(facing), _F32(-facing))
            bright = _F32(0.92) + _F32(0.22) * lit
            ridge = np.abs(across) < _F32(0.6)
            bright = np.where(ridge, _F32(1.08), bright)
        elif d["car"][k]:
            # A darker glass band across the car.
            glass = (u > ha * _F32(0.15)) & (u < ha * _F32(0.55))
            bright = np.where(glass, _F32(0.45), _F32(1.0))
        else:
            rim = (np.abs(u) > ha - 1.2) | (np.abs(v) > hb - 1.2)
            bright = np.where(rim, _F32(0.8), _F32(1.0))
        bright = bright * (_F32(0.95) + _F32(0.1) * n_fine[rs, cs])
        o = over[rs, cs]
        o[inside] = (bright[..., None] * roof)[inside]
        over_a[rs, cs][inside] = 1
    t = lay.trees
    for k, rs, cs in cv.clip(t.box):
        d = t.data
        X = cv.xs[cs][None, :] - _F32(d["cx"][k])
        Y = cv.ys[rs][:, None] - _F32(d["cy"][k])
        r = _F32(d["r"][k])
        rr = r * (_F32(0.8) + _F32(0.4) * n_fine[rs, cs])
        d2 = X * X + Y * Y
        inside = d2 <= rr * rr
        length = d["height"][k] * st.shadow_len
        shx, shy = -float(sun_x) * length, -float(sun_y) * length
        tt = np.clip((X * _F32(shx) + Y * _F32(shy)) / _F32(max(length * length, 1e-6)), 0, 1)
        qx = X - tt * _F32(shx)
        qy = Y - tt * _F32(shy)
        shade[rs, cs] &= ~((qx * qx + qy * qy <= rr * rr) & ~inside)
        lit = (X * sun_x + Y * sun_y) / r
        bright = _F32(0.78) + _F32(0.3) * lit - _F32(0.25) * d2 / (r * r)
        bright = bright * (_F32(0.85) + _F32(0.3) * n_fine[rs, cs]) * _F32(d["tone"][k])
        rgb = st.crown[int(d["shade"][k]) % len(st.crown)]
        o = over[rs, cs]
        o[inside] = (np.maximum(bright, _F32(0.25))[..., None] * rgb)[inside]
        over_a[rs, cs][inside] = 1
    img *= np.where(shade[..., None], _F32(1), np.array(st.shadow_rgb, dtype=_F32))
    a = over_a[..., None]
    img[...] = img * (1 - a) + over * a


def _finish(cv: _Canvas, lay: _Layout, img: np.ndarray, n_big: np.ndarray) -> np.ndarray:
    """Camera response: illumination, colour balance, haze, blur, sensor noise."""
    st = lay.style
    grey = (img[..., 0] + img[..., 1] + img[..., 2]) * _F32((1 - st.saturation) / 3)
    img *= _F32(st.saturation)
    img += grey[..., None]
    # Illumination, gains, brightness, contrast about 110 and haze as one affine map.
    gain = np.array(st.gains) * st.brightness * st.contrast * (1 - st.haze)
    offset = 110 * (1 - st.contrast) * (1 - st.haze) + np.array(st.haze_rgb) * st.haze
    img *= (_F32(1) + _F32(0.14) * (n_big - _F32(0.5)))[..., None]
    img *= gain.astype(_F32)
    img += offset.astype(_F32)
    # Each output pixel is the same fixed-order sum over its 5 x 5 neighbours in any
    # window; the halo pixels, which see the edge mode, are cut off below.
    k = np.array(st.blur)
    out = correlate1d(correlate1d(img, k, axis=0, mode="nearest"), k, axis=1, mode="nearest")
    out = out[_HALO:-_HALO, _HALO:-_HALO]
    rows = cv.rows[_HALO:-_HALO]
    cols = cv.cols[_HALO:-_HALO]
    # Luminance noise (triangular, from two bytes of one hash) plus weaker
    # independent noise per channel (three bytes of another).
    salt = _salt(lay.seed, "sensor")
    h1 = _hash2(rows[:, None], cols[None, :], salt)
    h2 = _hash2(rows[:, None], cols[None, :], salt + 1)
    byte = np.uint32(255)
    lum = ((h1 & byte) + ((h1 >> np.uint32(8)) & byte)).astype(_F32) - _F32(255)
    out += (lum * _F32(st.noise * 1.6 / 255))[..., None]
    for ch in range(3):
        chan = ((h2 >> np.uint32(8 * ch)) & byte).astype(_F32) - _F32(127.5)
        out[..., ch] += chan * _F32(st.noise / 255)
    return np.clip(out + _F32(0.5), 0, 255).astype(np.uint8)


def _render(
    lay: _Layout, row_off: int, col_off: int, h: int, w: int
) -> tuple[np.ndarray, np.ndarray]:
    """Image and mask of one window (the whole pipeline, on the window plus halo)."""
    cv = _Canvas(row_off - _HALO, col_off - _HALO, h + 2 * _HALO, w + 2 * _HALO)
    seed = lay.seed
    n_big = _fbm(cv.rows, cv.cols, 320.0, 4, _salt(seed, "big"))
    n_forest = _fbm(cv.rows, cv.cols, 180.0, 5, _salt(seed, "forest"))
    # Kilometre-scale swings, so that big scenes have wooded and open regions.
    n_region = _value_noise(cv.rows, cv.cols, 1600.0, _salt(seed, "region"))
    n_forest += (n_region - _F32(0.5)) * _F32(0.3)
    n_mid = _fbm(cv.rows, cv.cols, 40.0, 3, _salt(seed, "mid"))
    n_fine = _fbm(cv.rows, cv.cols, 3.0, 2, _salt(seed, "fine"))
    grain = _white(cv.rows, cv.cols, _salt(seed, "grain"))
    img = _background(cv, lay, n_mid, n_fine, grain)
    _forest(cv, lay, img, n_forest)
    _town_ground(cv, lay, img, n_mid, n_fine)
    _water(cv, lay, img, n_mid, n_fine)
    _track_paint(cv, lay, img, n_mid, grain)
    mask = _road_paint(cv, lay, img, n_mid, n_fine, grain)
    _islands(cv, lay, img, n_fine)
    _objects_paint(cv, lay, img, n_fine)
    image = _finish(cv, lay, img, n_big)
    return image, mask[_HALO:-_HALO, _HALO:-_HALO].astype(np.uint8)


# --------------------------------------------------------------------------------------
# Public functions
# --------------------------------------------------------------------------------------


def _check_size(height: int, width: int) -> tuple[int, int]:
    for name, v in (("height", height), ("width", width)):
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or not 1 <= v <= MAX_SIZE:
            raise ValueError(f"scene {name} must be an integer in 1..{MAX_SIZE}, got {v!r}")
    return int(height), int(width)


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
    height, width = _check_size(height, width)
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
    return _render(_layout(height, width, spec), int(row_off), int(col_off), int(win_h), int(win_w))


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
    height, width = _check_size(height, width)
    lay = _layout(height, width, spec)
    image = np.empty((height, width, 3), dtype=np.uint8)
    mask = np.empty((height, width), dtype=np.uint8)
    for r, c, h, w in _blocks(height, width, 1024):
        image[r : r + h, c : c + w], mask[r : r + h, c : c + w] = _render(lay, r, c, h, w)
    return Scene(image, mask, list(lay.centerlines), list(lay.widths))


def _blocks(height: int, width: int, block: int) -> Iterator[tuple[int, int, int, int]]:
    for r in range(0, height, block):
        for c in range(0, width, block):
            yield r, c, min(block, height - r), min(block, width - c)


def road_fraction(height: int, width: int, spec: SceneSpec = SceneSpec()) -> float:
    """Share of road pixels a scene will have, estimated from its layout (fast)."""
    height, width = _check_size(height, width)
    lay = _layout(height, width, spec)
    area = sum(line.length * w for line, w in zip(lay.centerlines, lay.widths, strict=True))
    return float(area / (height * width))


def scene_transform(spec: SceneSpec) -> Affine:
    """The affine transform (pixel -> map) of scenes made with ``spec``."""
    ox, oy = spec.origin
    return Affine(spec.gsd, 0.0, ox, 0.0, -spec.gsd, oy)


def write_scene(
    out_dir: str | Path,
    height: int,
    width: int,
    spec: SceneSpec = SceneSpec(),
    *,
    name: str = "scene",
    block: int = 1024,
    progress: bool = False,
    overwrite: bool = True,
    workers: int = 1,
) -> ScenePaths:
    """Write a scene as GeoTIFFs and GeoJSON, streaming it in blocks.

    Writes ``<name>.tif`` (RGB uint8, tiled 256 x 256, deflate), ``<name>_mask.tif``
    (uint8, 255 = road, 0 = not road, no nodata; same grid) and
    ``<name>_centerlines.geojson`` (RFC 7946, WGS84 lon/lat, property ``width_m``).
    Memory is bounded by ``block`` (a 16384 x 16384 scene fits in a few hundred MB).
    Each file appears whole or not at all (temporary name, then rename).

    Args:
        out_dir: existing or new folder.
        height, width: size in pixels.
        spec: seed and georeferencing (CRS, ``gsd``, ``origin``).
        name: file name stem.
        block: rendering block side in pixels (a multiple of 256 is best).
        progress: show a tqdm progress bar.
        overwrite: replace existing files; when False, raise instead.
        workers: threads rendering blocks (and compressing tiles) in parallel; the
            output does not depend on it.

    Returns:
        The paths written.

    Raises:
        ValueError: if the size, block, workers, name or CRS is invalid.
        roadseg.errors.OutputError: if the files exist (and ``overwrite`` is False)
            or cannot be written.
    """
    import rasterio
    from rasterio.crs import CRS
    from rasterio.windows import Window

    from roadseg.errors import OutputError

    height, width = _check_size(height, width)
    try:
        CRS.from_user_input(spec.crs)
    except rasterio.errors.CRSError as exc:
        raise ValueError(f"crs {spec.crs!r} is not a CRS rasterio understands: {exc}") from exc
    if not isinstance(block, (int, np.integer)) or block < 16:
        raise ValueError(f"block must be an integer >= 16 pixels, got {block!r}")
    if not isinstance(workers, (int, np.integer)) or workers < 1:
        raise ValueError(f"workers must be a positive integer, got {workers!r}")
    if not name or any(ch in name for ch in "/\\") or name.startswith("."):
        raise ValueError(f"name must be a plain file name stem, got {name!r}")
    out = Path(out_dir)
    paths = ScenePaths(
        out / f"{name}.tif", out / f"{name}_mask.tif", out / f"{name}_centerlines.geojson"
    )
    if not overwrite:
        for p in (paths.image, paths.mask, paths.centerlines):
            if p.exists():
                raise OutputError(f"{p} exists; not replacing it (overwrite=False)")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"cannot create output folder {out}: {exc.strerror}") from exc
    lay = _layout(height, width, spec)
    tag = uuid.uuid4().hex[:8]
    tmp = ScenePaths(
        out / f".{name}.{tag}.tmp.tif",
        out / f".{name}_mask.{tag}.tmp.tif",
        out / f".{name}_centerlines.{tag}.tmp.geojson",
    )
    common = {
        "driver": "GTiff",
        "width": width,
        "height": height,
        "dtype": "uint8",
        "crs": spec.crs,
        "transform": scene_transform(spec),
        "tiled": True,
        "blockxsize": 256,
        "blockysize": 256,
        "compress": "deflate",
        "predictor": 2,
        "nodata": None,
    }
    if height * width * 3 > 3_900_000_000:
        common["BIGTIFF"] = "YES"
    tags = {
        "ROADSEG_GENERATOR": "roadseg.synthetic",
        "ROADSEG_SEED": str(spec.seed),
        "ROADSEG_SIZE": f"{height}x{width}",
    }
    if workers > 1:
        common["num_threads"] = workers  # GDAL compresses tiles in parallel too
    blocks = list(_blocks(height, width, int(block)))
    try:
        with (
            rasterio.open(
                tmp.image, "w", count=3, photometric="RGB", interleave="pixel", **common
            ) as img_dst,
            rasterio.open(tmp.mask, "w", count=1, **common) as mask_dst,
        ):
            img_dst.update_tags(**tags)
            mask_dst.update_tags(**tags, ROADSEG_MASK="255 = road surface, 0 = not road")
            rendered = _render_blocks(lay, blocks, workers)
            if progress:
                from tqdm import tqdm

                rendered = tqdm(rendered, total=len(blocks), desc=name, unit="block")
            for (r, c, h, w), image, mask in rendered:
                win = Window(c, r, w, h)
                img_dst.write(np.moveaxis(image, -1, 0), window=win)
                mask_dst.write((mask * np.uint8(255))[None], window=win)
        _write_geojson(tmp.centerlines, lay, spec)
        os.replace(tmp.image, paths.image)
        os.replace(tmp.mask, paths.mask)
        os.replace(tmp.centerlines, paths.centerlines)
    except (OSError, rasterio.errors.RasterioIOError) as exc:
        raise OutputError(f"cannot write scene {name!r} to {out}: {exc}") from exc
    finally:
        for p in (tmp.image, tmp.mask, tmp.centerlines):
            p.unlink(missing_ok=True)
    return paths


def _render_blocks(
    lay: _Layout, blocks: list[tuple[int, int, int, int]], workers: int
) -> Iterator[tuple[tuple[int, int, int, int], np.ndarray, np.ndarray]]:
    """Render blocks in order, ``workers`` at a time (NumPy releases the GIL in its
    array loops). At most ``2 * workers`` rendered blocks wait in memory."""
    if workers <= 1:
        for b in blocks:
            yield (b, *_render(lay, *b))
        return
    from collections import deque
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=workers) as pool:
        pending: deque = deque()
        todo = iter(blocks)
        for b in todo:
            pending.append((b, pool.submit(_render, lay, *b)))
            if len(pending) >= 2 * workers:
                break
        while pending:
            b, fut = pending.popleft()
            image, mask = fut.result()
            nxt = next(todo, None)
            if nxt is not None:
                pending.append((nxt, pool.submit(_render, lay, *nxt)))
            yield b, image, mask


def _write_geojson(path: Path, lay: _Layout, spec: SceneSpec) -> None:
    from rasterio.warp import transform_geom

    tr = scene_transform(spec)
    features = []
    for line, w in zip(lay.centerlines, lay.widths, strict=True):
        xy = np.asarray(line.coords)
        mx = tr.a * xy[:, 0] + tr.b * xy[:, 1] + tr.c
        my = tr.d * xy[:, 0] + tr.e * xy[:, 1] + tr.f
        geom = {"type": "LineString", "coordinates": np.column_stack([mx, my]).tolist()}
        ll = transform_geom(spec.crs, "EPSG:4326", geom)
        coords = [[round(x, 8), round(y, 8)] for x, y in ll["coordinates"]]
        features.append(
            {
                "type": "Feature",
                "properties": {"width_m": round(w * spec.gsd, 3)},
                "geometry": {"type": "LineString", "coordinates": coords},
            }
        )
    doc = {"type": "FeatureCollection", "features": features}
    with open(path, "w", encoding="utf-8") as f:
        json.dump(doc, f, separators=(",", ":"))
        f.write("\n")
