"""Settings made of what the model mistook for roads in real previews (hard negatives).

- ``winter``: snow-covered fields and patchy conifer forest; the bright snow between
  dark crowns and the forest edges are not roads, the ploughed (dark) roads are.
- ``terraces``: European towns of row houses close to the street: long flat or gabled
  roofs, many dark grey, parallel to the streets, with deep shadows and back-garden
  trees; only the streets are roads.

Both are new entries of :data:`roadseg.synthetic.SETTINGS`; they sort after the older
settings, so the scenes of those (and their seeds in the training script) are unchanged.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import shapely

from roadseg.synthetic.elements import ASPHALT, MAIN, Line
from roadseg.synthetic.geometry import resample_polyline
from roadseg.synthetic.network import NetworkBuilder
from roadseg.synthetic.palettes import SEASONS, Style, _normal_quantile, make_style
from roadseg.synthetic.scenery import (
    Islands,
    Scenery,
    clear_of_lines,
    concat,
    countryside_objects,
    crowns,
    frontage,
    greedy_disjoint,
    rect_polys,
)
from roadseg.synthetic.urban import suburbs_network, suburbs_style

_F32 = np.float32

# fmt: off
#: Terrace roofs: mostly dark and mid greys (slate, bitumen, gravel), some tiles (RGB).
TERRACE_ROOFS = np.array(
    [(70, 72, 78), (58, 60, 66), (92, 94, 100), (108, 108, 112), (84, 80, 78),
     (124, 124, 126), (46, 48, 54), (140, 84, 66), (120, 72, 60), (150, 146, 140)],
    dtype=_F32,
)
# fmt: on


def winter_style(rng: np.random.Generator) -> Style:
    """Snow on fields and meadows, dark conifer forest in patches of every size."""
    st = make_style(rng)
    pal = SEASONS["winter"]
    share = rng.uniform(0.3, 0.6)
    snow = np.array(pal["fields"][:4] + pal["meadow"], dtype=_F32)
    return replace(
        st,
        season="winter",
        fields=snow,
        meadow=np.array(pal["meadow"], dtype=_F32),
        soil=np.array(pal["soil"], dtype=_F32),
        forest=np.array(pal["forest"], dtype=_F32) * _F32(rng.uniform(0.7, 1.0)),
        crown=np.array(pal["forest"], dtype=_F32),
        p_classes=(0.55, 0.35, 0.05, 0.05),
        forest_thr=0.5 + 0.13 * _normal_quantile(1 - share),
        forest_cell=rng.uniform(5.0, 10.0),
        urban=rng.uniform(0.0, 0.4),
        road_frac=rng.uniform(0.03, 0.06),
    )


def winter_network(net: NetworkBuilder) -> Islands:
    """Ploughed roads (dark asphalt, snow banks at the edges) through the countryside."""
    rng = net.rng

    def look(kind: int, width: float) -> dict:
        g = rng.uniform(55, 110) if kind == MAIN else rng.uniform(80, 150)
        return {"surface": ASPHALT, "rgb": (g, g * 1.01, g * 1.04), "marks": kind == MAIN}

    net.look_hook = look
    net.rivers_stage()
    net.towns_stage()
    net.main_stage()
    net.grid_stage()
    net.branch_stage()
    return []


def winter_objects(
    rng: np.random.Generator, net: NetworkBuilder, roads: list[Line], islands: Islands, st: Style
) -> Scenery:
    """The countryside's objects plus lone conifers and clumps over the open snow."""
    sc = countryside_objects(rng, net, roads, islands, st)
    n = int(rng.integers(500, 2000) * net.h * net.w / 1024**2)
    cx = rng.uniform(0, net.w, n)
    cy = rng.uniform(0, net.h, n)
    # Clumps: half of the trees stand near another one.
    k = n // 2
    if n and k:
        j = rng.integers(0, n, k)
        cx[:k] = cx[j] + rng.normal(0, 12, k)
        cy[:k] = cy[j] + rng.normal(0, 12, k)
    r = rng.uniform(2.5, 6.0, n)
    ok = clear_of_lines(_discs(np.column_stack([cx, cy]), r * 0.5), roads, 0.0)
    sc.trees = concat([sc.trees, crowns(cx[ok], cy[ok], r[ok], rng)])
    return sc


def terraces_style(rng: np.random.Generator) -> Style:
    """The suburbs' lawns and light, with longer shadows."""
    st = suburbs_style(rng)
    return replace(st, shadow_len=rng.uniform(0.8, 2.2), road_frac=rng.uniform(0.12, 0.18))


def terraces_network(net: NetworkBuilder) -> Islands:
    """The suburbs' streets (grids and curves, with sidewalks)."""
    return suburbs_network(net)


def terraces_objects(
    rng: np.random.Generator, net: NetworkBuilder, roads: list[Line], islands: Islands, st: Style
) -> Scenery:
    """Rows of houses along the streets (long rectangles a few metres from the
    sidewalk), some with flat roofs, and trees in the back gardens."""
    row = rng.uniform(40, 120)
    feet, nrm, tan, owner = frontage(rng, roads, row)
    n = len(feet)
    a = row / 2 * rng.uniform(0.8, 0.98, n)
    b = rng.uniform(8.0, 14.0, n)
    setback = rng.uniform(2.0, 14.0, n)
    ctr = feet + nrm * (setback + b)[:, None]
    ang = np.arctan2(tan[:, 1], tan[:, 0])
    rows = rect_polys(ctr[:, 0], ctr[:, 1], ang, a, b)
    keep = clear_of_lines(rows, roads, 2.0) & (rng.random(n) < 0.9)
    keep = greedy_disjoint(rows, keep, 1.0)
    idx = np.nonzero(keep)[0]
    k = len(idx)
    shade = rng.uniform(0.85, 1.15, (k, 1))
    bdata = {
        "cx": ctr[idx, 0],
        "cy": ctr[idx, 1],
        "ang": ang[idx],
        "a": a[idx],
        "b": b[idx],
        "roof": TERRACE_ROOFS[rng.integers(len(TERRACE_ROOFS), size=k)] * shade,
        "gable": rng.random(k) < 0.5,
        "height": rng.uniform(6, 12, k),
        "car": np.zeros(k, dtype=bool),
    }
    # Back-garden trees in a loose line behind the rows.
    tree_pts, tree_r = [], []
    for i in idx.tolist():
        m = int(rng.integers(0, 4))
        if not m:
            continue
        depth = setback[i] + 2 * b[i] + rng.uniform(6, 30, m)
        along = rng.uniform(-a[i], a[i], m)
        tree_pts.append(feet[i] + nrm[i] * depth[:, None] + tan[i] * along[:, None])
        tree_r.append(rng.uniform(4, 10, m))
    tdata: dict[str, np.ndarray] = {}
    if tree_pts:
        p = np.vstack(tree_pts)
        tr = np.concatenate(tree_r)
        ok = clear_of_lines(_discs(p, tr), roads, 1.0)
        tdata = crowns(p[ok, 0], p[ok, 1], tr[ok], rng)
    # Street trees at some kerbs overhang the sidewalk and the carriageway edge.
    if n:
        pts = []
        for road in roads:
            if road.kind == MAIN or rng.random() < 0.7:
                continue
            q, t = resample_polyline(road.pts, rng.uniform(16, 30), rng.uniform(0, 16))
            for side in (-1.0, 1.0):
                nr = np.column_stack([-t[:, 1], t[:, 0]]) * side
                pts.append(q + nr * (road.width / 2 + rng.uniform(0, 2)))
        if pts:
            q = np.vstack(pts)
            tdata = concat([tdata, crowns(q[:, 0], q[:, 1], rng.uniform(4, 8, len(q)), rng)])
    return Scenery(bdata, tdata)


def _discs(p: np.ndarray, r: np.ndarray) -> np.ndarray:
    """Discs of radius ``r`` round the points ``p`` (shapely polygons)."""
    return shapely.buffer(shapely.points(p), r)
