"""Objects placed along the network: buildings (along roads, dense in towns, and
farmsteads), cars on roads, and tree crowns (alleys, gardens, copses, river banks,
roundabout islands), each as a dict of arrays.
"""

from __future__ import annotations

import math

import numpy as np
import shapely

from roadseg.synthetic.elements import GRAVEL, MAIN, MINOR, RING, SECONDARY, STREET, Line, Town
from roadseg.synthetic.geometry import resample_polyline
from roadseg.synthetic.palettes import CARS, ROOFS


def _town_weight(towns: list[Town], p: np.ndarray) -> np.ndarray:
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


def place_buildings(
    rng: np.random.Generator,
    roads: list[Line],
    rivers: list[Line],
    towns: list[Town],
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
        if road.kind == RING:
            continue
        base_p = {MAIN: 0.02, STREET: 0.1, SECONDARY: 0.04, MINOR: 0.03}[road.kind]
        spacing = rng.uniform(20, 32)
        pts, tan = resample_polyline(road.pts, spacing, rng.uniform(0, spacing))
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
    rural = [r for r in roads if r.kind in (SECONDARY, MINOR)]
    for _ in range(n_farms if rural else 0):
        road = rural[rng.integers(len(rural))]
        pts, tan = resample_polyline(road.pts, 10.0)
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
    data["roof"] = ROOFS[rng.integers(len(ROOFS), size=n)] * rng.uniform(0.88, 1.12, (n, 1))
    data["gable"] = (rng.random(n) < 0.65) & (np.minimum(data["a"], data["b"]) < 12)
    data["height"] = rng.uniform(5, 14, n) * np.where(data["gable"], 1.0, 1.3)
    data["car"] = np.zeros(n, dtype=bool)
    return data


def place_cars(
    rng: np.random.Generator, roads: list[Line], towns: list[Town]
) -> dict[str, np.ndarray]:
    """Cars on roads of 5.5 px and wider, in lanes or parked at the edge (road pixels
    in the mask: cars hide the surface the way trees do)."""
    parts: dict[str, list[np.ndarray]] = {k: [] for k in ("cx", "cy", "ang", "a", "b")}
    for road in roads:
        if road.width < 5.5 or road.surface == GRAVEL:
            continue
        pts, tan = resample_polyline(road.pts, 6.0, rng.uniform(0, 6.0))
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
    data["roof"] = CARS[rng.integers(len(CARS), size=n)] * rng.uniform(0.9, 1.1, (n, 1))
    data["gable"] = np.zeros(n, dtype=bool)
    data["height"] = np.full(n, 1.5)
    data["car"] = np.ones(n, dtype=bool)
    return data


def _rect_polys(d: dict[str, np.ndarray]) -> np.ndarray:
    """Footprints (rotated rectangles) of objects given by centre, angle and half sides."""
    c, s = np.cos(d["ang"]), np.sin(d["ang"])
    corners = []
    for su, sv in ((-1, -1), (1, -1), (1, 1), (-1, 1), (-1, -1)):
        x = d["cx"] + su * d["a"] * c - sv * d["b"] * s
        y = d["cy"] + su * d["a"] * s + sv * d["b"] * c
        corners.append(np.column_stack([x, y]))
    return shapely.polygons(np.stack(corners, axis=1))


def _segment_geoms(lines: list[Line]) -> tuple[np.ndarray, np.ndarray]:
    """Every segment of the lines as a LineString, with its half width."""
    a = np.concatenate([ln.pts[:-1] for ln in lines])
    b = np.concatenate([ln.pts[1:] for ln in lines])
    hw = np.concatenate([np.full(len(ln.pts) - 1, ln.width / 2) for ln in lines])
    return shapely.linestrings(np.stack([a, b], axis=1)), hw


def place_trees(
    rng: np.random.Generator,
    roads: list[Line],
    rivers: list[Line],
    towns: list[Town],
    buildings: dict[str, np.ndarray],
    islands: list[tuple[float, float, float]],
    height: int,
    width: int,
) -> dict[str, np.ndarray]:
    """Tree crowns: alleys along roads (overhanging them), town gardens, copses,
    river banks and roundabout islands."""
    x, y, r, kind = _crown_candidates(rng, roads, rivers, towns, islands, height, width)
    keep = _free_crowns(x, y, r, kind, roads, rivers, buildings)
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


def _crown_candidates(
    rng: np.random.Generator,
    roads: list[Line],
    rivers: list[Line],
    towns: list[Town],
    islands: list[tuple[float, float, float]],
    height: int,
    width: int,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Centres, radii and kinds of candidate crowns near the scene (kinds: 0 alley,
    1 town, copse or single tree, 2 river bank, 3 roundabout island)."""
    xs: list[np.ndarray] = []
    ys: list[np.ndarray] = []
    rs: list[np.ndarray] = []
    kinds: list[np.ndarray] = []  # 0: may overhang a road, 1: keeps off roads
    for road in roads:
        p_alley = {MAIN: 0.15, STREET: 0.3, SECONDARY: 0.3, MINOR: 0.3, RING: 0.0}[road.kind]
        if rng.random() >= p_alley:
            continue
        r_mean = rng.uniform(3.5, 8.0)
        spacing = 2 * r_mean * rng.uniform(0.9, 1.6)
        pts, tan = resample_polyline(road.pts, spacing, rng.uniform(0, spacing))
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
        pts, tan = resample_polyline(river.pts, rng.uniform(8, 20))
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
    return x, y, r, kind


def _free_crowns(
    x: np.ndarray,
    y: np.ndarray,
    r: np.ndarray,
    kind: np.ndarray,
    roads: list[Line],
    rivers: list[Line],
    buildings: dict[str, np.ndarray],
) -> np.ndarray:
    """Which candidate crowns keep clear enough of roads, rivers and buildings."""
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
    return keep
