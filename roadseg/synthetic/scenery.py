"""What a setting places once its network is built: buildings (and cars), tree
crowns and pads, as a :class:`Scenery`; the countryside's placement, and helpers the
other settings share (rectangles along roads, keeping clear of roads and of each
other).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import shapely

from roadseg.synthetic.elements import Line
from roadseg.synthetic.network import NetworkBuilder
from roadseg.synthetic.objects import place_buildings, place_cars, place_trees
from roadseg.synthetic.palettes import Style
from roadseg.synthetic.surfaces import pad_lists

Islands = list[tuple[float, float, float]]


@dataclass
class Scenery:
    """Buildings and cars (one dict of arrays), tree crowns, ground pads, overlays."""

    buildings: dict[str, np.ndarray]
    trees: dict[str, np.ndarray]
    pads: dict[str, list] = field(default_factory=pad_lists)
    overlays: dict[str, list] = field(default_factory=pad_lists)


def countryside_objects(
    rng: np.random.Generator, net: NetworkBuilder, roads: list[Line], islands: Islands, st: Style
) -> Scenery:
    """Buildings along roads and in towns, farmsteads, trees, then cars."""
    bdata = place_buildings(rng, roads, net.rivers, net.towns, net.h, net.w)
    tdata = place_trees(rng, roads, net.rivers, net.towns, bdata, islands, net.h, net.w)
    cdata = place_cars(rng, roads, net.towns)
    if cdata:
        bdata = {k: np.concatenate([bdata[k], v]) for k, v in cdata.items()} if bdata else cdata
    return Scenery(bdata, tdata)


def concat(parts: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """Object dicts with the same keys joined (empty dicts skipped)."""
    parts = [p for p in parts if p and len(p["cx"])]
    if not parts:
        return {}
    return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}


def rect_polys(cx: np.ndarray, cy: np.ndarray, ang: np.ndarray, a: np.ndarray, b: np.ndarray):
    """Rotated rectangles as shapely polygons."""
    c, s = np.cos(ang), np.sin(ang)
    corners = []
    for su, sv in ((-1, -1), (1, -1), (1, 1), (-1, 1), (-1, -1)):
        x = cx + su * a * c - sv * b * s
        y = cy + su * a * s + sv * b * c
        corners.append(np.column_stack([x, y]))
    return shapely.polygons(np.stack(corners, axis=1))


def clear_of_lines(polys: np.ndarray, lines: list[Line], gap: float) -> np.ndarray:
    """Which polygons keep ``gap`` px (beyond half widths and sidewalks) from lines."""
    keep = np.ones(len(polys), dtype=bool)
    if not len(polys) or not lines:
        return keep
    a = np.concatenate([ln.pts[:-1] for ln in lines])
    b = np.concatenate([ln.pts[1:] for ln in lines])
    hw = np.concatenate(
        [np.full(len(ln.pts) - 1, ln.width / 2 + ln.side + ln.side_gap) for ln in lines]
    )
    segs = shapely.linestrings(np.stack([a, b], axis=1))
    tree = shapely.STRtree(segs)
    pi, si = tree.query(polys, predicate="dwithin", distance=float(hw.max()) + gap + 0.5)
    bad = shapely.distance(polys[pi], segs[si]) < hw[si] + gap
    keep[pi[bad]] = False
    return keep


def greedy_disjoint(polys: np.ndarray, keep: np.ndarray, spacing: float = 1.0) -> np.ndarray:
    """Drop every polygon that overlaps an earlier kept one (in order)."""
    keep = keep.copy()
    if not len(polys):
        return keep
    tree = shapely.STRtree(shapely.buffer(polys, spacing / 2, join_style="mitre"))
    bi, bj = tree.query(shapely.buffer(polys, spacing / 2, join_style="mitre"), "intersects")
    sel = bi < bj
    for i, j in sorted(zip(bi[sel].tolist(), bj[sel].tolist(), strict=True)):
        if keep[i] and keep[j]:
            keep[j] = False
    return keep


def frontage(
    rng: np.random.Generator, roads: list[Line], spacing: float, min_width: float = 0.0
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Points every ``spacing`` px along both sides of roads: foot point on the road
    edge (beyond its sidewalk), outward normal, tangent and the road index."""
    from roadseg.synthetic.geometry import resample_polyline

    feet, nrms, tans, owner = [], [], [], []
    for i, road in enumerate(roads):
        if road.width < min_width:
            continue
        pts, tan = resample_polyline(road.pts, spacing, rng.uniform(0, spacing))
        if not len(pts):
            continue
        edge = road.width / 2 + road.side + road.side_gap
        for side in (-1.0, 1.0):
            nrm = np.column_stack([-tan[:, 1], tan[:, 0]]) * side
            feet.append(pts + nrm * edge)
            nrms.append(nrm)
            tans.append(tan)
            owner.append(np.full(len(pts), i))
    if not feet:
        z = np.zeros((0, 2))
        return z, z, z, np.zeros(0, dtype=int)
    return np.vstack(feet), np.vstack(nrms), np.vstack(tans), np.concatenate(owner)


def crowns(
    x: np.ndarray, y: np.ndarray, r: np.ndarray, rng: np.random.Generator
) -> dict[str, np.ndarray]:
    """Tree-crown arrays as place_trees makes them."""
    n = len(x)
    return {
        "cx": np.asarray(x, dtype=np.float64),
        "cy": np.asarray(y, dtype=np.float64),
        "r": np.asarray(r, dtype=np.float64),
        "shade": rng.integers(0, 4, n),
        "tone": rng.uniform(0.82, 1.18, n),
        "height": np.asarray(r) * rng.uniform(1.3, 2.6, n),
    }


def cars_data(
    cx: np.ndarray, cy: np.ndarray, ang: np.ndarray, rng: np.random.Generator
) -> dict[str, np.ndarray]:
    """Car objects (in the buildings' dict format) at given centres and headings."""
    from roadseg.synthetic.palettes import CARS

    n = len(cx)
    return {
        "cx": np.asarray(cx, dtype=np.float64),
        "cy": np.asarray(cy, dtype=np.float64),
        "ang": np.asarray(ang, dtype=np.float64),
        "a": rng.uniform(3.6, 5.0, n),
        "b": rng.uniform(1.6, 2.0, n),
        "roof": CARS[rng.integers(len(CARS), size=n)] * rng.uniform(0.9, 1.1, (n, 1)),
        "gable": np.zeros(n, dtype=bool),
        "height": np.full(n, 1.5),
        "car": np.ones(n, dtype=bool),
    }
