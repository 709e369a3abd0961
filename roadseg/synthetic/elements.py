"""The elements a layout is made of: road kinds and surfaces, :class:`Line` (a road,
river or track centreline with its look), :class:`Town`, :class:`Objects` (buildings,
trees or islands as arrays with pixel boxes), :class:`SegTable` (the flat segment
arrays windowed rasterisation reads) and :class:`Layout` (everything one scene holds).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from shapely.geometry import LineString

from roadseg.synthetic.geometry import densify, pixel_box
from roadseg.synthetic.palettes import Style

_F32 = np.float32


# Road kinds (rivers are kind -1 and tracks -2) and road surfaces.
MAIN, STREET, SECONDARY, MINOR, RING = range(5)
ASPHALT, DARK, CONCRETE, GRAVEL = range(4)


@dataclass
class Line:
    """A road, river or track centreline with its look."""

    pts: np.ndarray  # (n, 2) float64 pixel coordinates
    width: float
    kind: int = SECONDARY
    surface: int = ASPHALT
    rgb: tuple[float, float, float] = (110.0, 110.0, 110.0)
    marks: bool = False
    verge: bool = False
    lanes: int = 0  # lane dividers (dashed) when marked and > 1
    side: float = 0.0  # sidewalk width (px) beside the road; never road
    side_gap: float = 0.0  # grass strip (px) between the road and its sidewalk


def copy_line(line: Line, pts: np.ndarray) -> Line:
    """The same line (width and look) along new points."""
    return Line(
        pts,
        line.width,
        line.kind,
        line.surface,
        line.rgb,
        line.marks,
        line.verge,
        line.lanes,
        line.side,
        line.side_gap,
    )


@dataclass
class Town:
    """A town: centre, radius, street-grid angle and garden plot size (px)."""

    cx: float
    cy: float
    radius: float
    angle: float
    plot: tuple[float, float]


@dataclass
class Objects:
    """Struct of arrays for buildings, trees or islands, with pixel boxes."""

    data: dict[str, np.ndarray]
    box: np.ndarray  # (n, 4) col_lo, col_hi, row_lo, row_hi

    def __len__(self) -> int:
        return len(self.box)


def no_objects() -> Objects:
    """An empty :class:`Objects`."""
    return Objects({}, np.zeros((0, 4), dtype=np.int64))


def make_objects(
    data: dict[str, np.ndarray],
    pad: np.ndarray,
    extra: np.ndarray | None = None,
) -> Objects:
    """Wrap object arrays with their pixel boxes (``pad`` around the centre, plus an
    optional extra (n, 2) reach for shadows)."""
    if not data or not len(data["cx"]):
        return Objects({}, np.zeros((0, 4), dtype=np.int64))
    cx, cy = data["cx"], data["cy"]
    x0, x1, y0, y1 = cx - pad, cx + pad, cy - pad, cy + pad
    if extra is not None:
        x0 = np.minimum(x0, x0 + extra[:, 0])
        x1 = np.maximum(x1, x1 + extra[:, 0])
        y0 = np.minimum(y0, y0 + extra[:, 1])
        y1 = np.maximum(y1, y1 + extra[:, 1])
    return Objects(data, pixel_box(x0, x1, y0, y1))


class SegTable:
    """Flat arrays of the segments of a list of lines, for windowed rasterisation.

    Long segments are split so their bounding boxes stay tight. Each segment keeps
    the index of its line and its arc-length offset along that line.
    """

    def __init__(self, lines: list[Line], extend: float, max_len: float = 40.0) -> None:
        ax: list[np.ndarray] = []
        bx: list[np.ndarray] = []
        owner: list[np.ndarray] = []
        s0: list[np.ndarray] = []
        hw: list[np.ndarray] = []
        for k, line in enumerate(lines):
            pts = densify(line.pts, max_len)
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
        self.box = pixel_box(
            np.minimum(a[:, 0], b[:, 0]) - pad,
            np.maximum(a[:, 0], b[:, 0]) + pad,
            np.minimum(a[:, 1], b[:, 1]) - pad,
            np.maximum(a[:, 1], b[:, 1]) + pad,
        )


@dataclass
class Layout:
    """Everything one scene holds, in pixel coordinates; rendering reads only this.

    ``centerlines`` and ``widths`` are the road centerlines clipped to the scene (the
    public :class:`~roadseg.synthetic.spec.Scene` carries them).
    """

    height: int
    width: int
    seed: int
    style: Style
    roads: list[Line]
    rivers: list[Line]
    tracks: list[Line]
    towns: list[Town]
    road_segs: SegTable
    river_segs: SegTable
    track_segs: SegTable
    buildings: Objects
    trees: Objects
    islands: Objects
    #: Flat ground patches (driveways, pools, car parks, plazas, yards, walls) painted
    #: before the roads, and marks or sand painted over them (crosswalks, drifts):
    #: neither changes the mask. See :mod:`roadseg.synthetic.surfaces`.
    pads: Objects = field(default_factory=no_objects)
    overlays: Objects = field(default_factory=no_objects)
    centerlines: list[LineString] = field(default_factory=list)
    widths: list[float] = field(default_factory=list)
