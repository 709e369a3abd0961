"""The built-up settings: North-American ``suburbs`` (streets with sidewalks, houses
with driveways, lawns, pools, parked cars and street trees) and the ``city`` (wide
marked roads with crosswalks, tall buildings, car parks and plazas).
"""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import shapely

from roadseg.synthetic.elements import ASPHALT, DARK, MAIN, Line, Town
from roadseg.synthetic.network import NetworkBuilder
from roadseg.synthetic.objects import place_cars
from roadseg.synthetic.palettes import SEASONS, Style, make_style
from roadseg.synthetic.scenery import (
    Islands,
    Scenery,
    cars_data,
    clear_of_lines,
    concat,
    crowns,
    frontage,
    greedy_disjoint,
    rect_polys,
)
from roadseg.synthetic.streets import curvy_streets, scene_grid, through_road
from roadseg.synthetic.surfaces import (
    FLAT,
    PARKING,
    POOL,
    TILES,
    ZEBRA,
    add_pad,
    pad_lists,
)

_F32 = np.float32

# fmt: off
#: Suburban roofs: greys, browns, reds, dark and light shingles (RGB).
HOUSE_ROOFS = np.array(
    [(112, 112, 116), (90, 90, 96), (128, 100, 80), (104, 82, 66), (150, 72, 58),
     (60, 60, 66), (48, 50, 56), (192, 190, 184), (170, 160, 146), (98, 108, 122),
     (140, 120, 96), (120, 124, 128)],
    dtype=_F32,
)
#: Flat city roofs (RGB).
CITY_ROOFS = np.array(
    [(150, 150, 148), (120, 122, 126), (176, 174, 168), (96, 98, 104), (200, 198, 192),
     (136, 128, 118), (84, 90, 96), (160, 150, 140)],
    dtype=_F32,
)
# fmt: on


def _asphalt(rng: np.random.Generator, lo: float, hi: float) -> tuple[float, float, float]:
    g = rng.uniform(lo, hi)
    return (g * rng.uniform(0.97, 1.02), g, g * rng.uniform(1.0, 1.06))


def _lawn_style(rng: np.random.Generator, base: Style) -> Style:
    season = "summer" if rng.random() < 0.7 else "dry"
    pal = SEASONS[season]
    return replace(
        base,
        season=season,
        meadow=np.array(pal["meadow"], dtype=_F32),
        fields=np.array(pal["meadow"] + pal["fields"][:2], dtype=_F32),
        crown=np.array(pal["crown"], dtype=_F32),
        forest=np.array(pal["forest"], dtype=_F32),
        soil=np.array(pal["soil"], dtype=_F32),
        p_classes=(0.0, 1.0, 0.0, 0.0),
        forest_thr=2.0,
    )


def suburbs_style(rng: np.random.Generator) -> Style:
    """Green lawns, little forest, short shadows."""
    st = _lawn_style(rng, make_style(rng))
    return replace(st, road_frac=rng.uniform(0.14, 0.2), shadow_len=min(st.shadow_len, 1.6))


def city_style(rng: np.random.Generator) -> Style:
    """Grey paved ground, no forest, long shadows."""
    st = make_style(rng)
    grey = np.array([(150, 148, 144), (134, 132, 128), (166, 162, 156)], dtype=_F32)
    return replace(
        st,
        season="summer",
        fields=grey,
        meadow=grey * _F32(0.95),
        soil=grey,
        forest=grey * _F32(0.8),
        crown=np.array(SEASONS["summer"]["crown"], dtype=_F32),
        p_classes=(0.0, 0.0, 1.0, 0.0),
        forest_thr=2.0,
        parcel=int(rng.integers(200, 400)),
        shadow_len=rng.uniform(0.8, 1.8),
        road_frac=rng.uniform(0.2, 0.28),
    )


def suburbs_network(net: NetworkBuilder) -> Islands:
    """An arterial or two, then a street grid or curved streets, all with sidewalks."""
    rng = net.rng
    side = rng.uniform(3.0, 4.0) if rng.random() < 0.85 else 0.0
    side_gap = rng.uniform(1.5, 5.0)
    grey = rng.uniform(95, 135)

    def look(kind: int, width: float) -> dict:
        if kind == MAIN:
            rgb = _asphalt(rng, 70, 110)
        else:
            rgb = _asphalt(rng, grey - 8, grey + 8)
        return {
            "surface": ASPHALT,
            "rgb": rgb,
            "marks": kind == MAIN,
            "lanes": 4 if width >= 26 else 2,
            "side": side,
            "side_gap": side_gap,
        }

    net.look_hook = look
    angle = rng.uniform(0, math.pi)
    lot = (rng.uniform(30, 44), rng.uniform(50, 70))
    big = 2 * math.hypot(net.h, net.w)
    net.towns = [Town(net.w / 2, net.h / 2, big, angle, lot)]
    net.town_arr = np.array([[net.w / 2, net.h / 2, big]])
    for _ in range(int(rng.integers(1, 3))):
        through_road(net, rng.uniform(22, 30), amp=rng.uniform(0, 0.3))
    target = net.style.road_frac
    if rng.random() < 0.55:
        block = (rng.uniform(110, 150), rng.uniform(200, 300))
        scene_grid(net, angle, block, (14, 24), p_gap=0.1, gap=10 + 2 * (side + side_gap))
    curvy_streets(net, target, (14, 22), (0.3, 0.7), (250, 900), gap=60.0 + 2 * (side + side_gap))
    return []


def suburbs_objects(
    rng: np.random.Generator, net: NetworkBuilder, roads: list[Line], islands: Islands, st: Style
) -> Scenery:
    """Houses on lots along the streets, driveways (with cars), pools, yard and
    street trees, cars parked along the kerb."""
    streets = [r for r in roads if r.kind != MAIN]
    feet, nrm, tan, owner = frontage(rng, streets, rng.uniform(34, 46))
    n = len(feet)
    a = rng.uniform(8, 13, n)
    b = rng.uniform(7, 11, n)
    setback = rng.uniform(12, 22, n)
    ctr = feet + nrm * (setback + b)[:, None]
    ang = np.arctan2(tan[:, 1], tan[:, 0])
    houses = rect_polys(ctr[:, 0], ctr[:, 1], ang, a, b)
    keep = clear_of_lines(houses, roads, 3.0) & (rng.random(n) < 0.92)
    keep = greedy_disjoint(houses, keep, 3.0)
    idx = np.nonzero(keep)[0]
    k = len(idx)
    bdata = {
        "cx": ctr[idx, 0],
        "cy": ctr[idx, 1],
        "ang": ang[idx],
        "a": a[idx],
        "b": b[idx],
        "roof": HOUSE_ROOFS[rng.integers(len(HOUSE_ROOFS), size=k)] * rng.uniform(0.9, 1.1, (k, 1)),
        "gable": rng.random(k) < 0.85,
        "height": rng.uniform(6, 11, k),
        "car": np.zeros(k, dtype=bool),
    }
    pads = pad_lists()
    cars = []
    lat = np.where(rng.random(n) < 0.5, -1.0, 1.0) * (a - 3.5)
    conc = rng.uniform(165, 200)
    for i in idx.tolist():
        road = streets[owner[i]]
        back = road.side + road.side_gap
        length = setback[i] + back
        c = feet[i] + nrm[i] * (setback[i] - back) / 2 + tan[i] * lat[i]
        dang = math.atan2(nrm[i, 1], nrm[i, 0])
        add_pad(
            pads, c, dang, length / 2, rng.uniform(3.0, 4.0), (conc, conc * 0.99, conc * 0.95), FLAT
        )
        if rng.random() < 0.5:
            cars.append((*(feet[i] + nrm[i] * setback[i] * 0.45 + tan[i] * lat[i]), dang))
    # Pools behind some houses, kept off houses and roads.
    pool_c, pool_a, pool_b, pool_ang = [], [], [], []
    for i in idx.tolist():
        if rng.random() < 0.22:
            pb, pa = rng.uniform(3, 5), rng.uniform(4, 7.5)
            off = setback[i] + 2 * b[i] + rng.uniform(5, 10) + pb
            pool_c.append(feet[i] + nrm[i] * off + tan[i] * rng.uniform(-a[i], a[i]) * 0.5)
            pool_a.append(pa)
            pool_b.append(pb)
            pool_ang.append(ang[i])
    if pool_c:
        pc = np.array(pool_c)
        polys = rect_polys(
            pc[:, 0], pc[:, 1], np.array(pool_ang), np.array(pool_a), np.array(pool_b)
        )
        ok = clear_of_lines(polys, roads, 2.0)
        tree = shapely.STRtree(houses[idx])
        hit, _ = tree.query(polys, predicate="intersects")
        ok[hit] = False
        for j in np.nonzero(ok)[0].tolist():
            blue = (rng.uniform(50, 90), rng.uniform(150, 190), rng.uniform(190, 225))
            add_pad(pads, pc[j], pool_ang[j], pool_a[j], pool_b[j], blue, POOL)
    # Cars parked at the kerb, inside the road.
    for i in range(n):
        if rng.random() < 0.12:
            road = streets[owner[i]]
            back = road.side + road.side_gap
            p = feet[i] - nrm[i] * (back + 2.3)
            cars.append((p[0], p[1], float(ang[i])))
    cdata = {}
    if cars:
        ca = np.array(cars)
        cdata = cars_data(ca[:, 0], ca[:, 1], ca[:, 2], rng)
    # Trees: street trees overhanging the kerb, and yard trees.
    street = rng.random(n) < 0.35
    r1 = rng.uniform(5, 10, n)
    edge = np.array([streets[o].side + streets[o].side_gap for o in owner]) if n else np.zeros(0)
    p1 = feet - nrm * (edge + rng.uniform(-4, 2, n))[:, None]
    yard = rng.random(n) < 0.6
    r2 = rng.uniform(4, 9, n)
    p2 = (
        feet
        + nrm * (setback + 2 * b + rng.uniform(8, 25, n))[:, None]
        + tan * rng.uniform(-15, 15, (n, 1))
    )
    p3 = feet + nrm * rng.uniform(4, 9, (n, 1)) + tan * rng.uniform(-14, 14, (n, 1))
    front = rng.random(n) < 0.25
    x = np.concatenate([p1[street, 0], p2[yard, 0], p3[front, 0]])
    y = np.concatenate([p1[street, 1], p2[yard, 1], p3[front, 1]])
    r = np.concatenate([r1[street], r2[yard], rng.uniform(3, 6, int(front.sum()))])
    tpolys = shapely.points(np.column_stack([x, y]))
    bad = np.zeros(len(x), dtype=bool)
    if k:
        hit, _ = shapely.STRtree(houses[idx]).query(tpolys, predicate="dwithin", distance=2.0)
        bad[hit] = True
    tdata = crowns(x[~bad], y[~bad], r[~bad], rng)
    return Scenery(concat([bdata, cdata]), tdata, pads)


def city_network(net: NetworkBuilder) -> Islands:
    """A grid of wide marked roads with broad sidewalks, and a diagonal avenue."""
    rng = net.rng
    grey = rng.uniform(70, 115)

    def look(kind: int, width: float) -> dict:
        lanes = max(2, int(round(width / 7.5 / 2)) * 2)
        return {
            "surface": DARK if grey < 90 else ASPHALT,
            "rgb": _asphalt(rng, grey - 6, grey + 6),
            "marks": True,
            "lanes": lanes,
            "side": rng.uniform(6, 11),
            "side_gap": 0.0,
        }

    net.look_hook = look
    angle = rng.uniform(0, math.pi)
    if rng.random() < 0.4:
        through_road(net, rng.uniform(40, 60), amp=0.0, gap=30.0)
    block = (rng.uniform(170, 300), rng.uniform(200, 360))
    scene_grid(net, angle, block, (30, 52), p_gap=0.06, gap=30.0)
    return []


def _crosswalks(rng: np.random.Generator, net: NetworkBuilder, roads: list[Line]) -> dict:
    overlays = pad_lists()
    if not roads:
        return overlays
    geoms = [shapely.LineString(r.pts) for r in roads]
    tree = shapely.STRtree(geoms)
    white = (225.0, 225.0, 222.0)
    for x, y, wmax, _ in net.junctions:
        if rng.random() < 0.2:
            continue
        p = shapely.Point(x, y)
        for i in tree.query(p, predicate="dwithin", distance=1.5).tolist():
            g, road = geoms[i], roads[i]
            s = g.project(p)
            for sgn in (-1.0, 1.0):
                s1 = s + sgn * (wmax / 2 + road.side + 6)
                if not 0 < s1 < g.length:
                    continue
                q = np.asarray(g.interpolate(s1).coords[0])
                q2 = np.asarray(g.interpolate(min(s1 + 1, g.length)).coords[0])
                tt = q2 - q
                ang = math.atan2(tt[1], tt[0]) + math.pi / 2
                add_pad(overlays, q, ang, road.width / 2 - 1.5, 3.5, white, ZEBRA)
    return overlays


def city_objects(
    rng: np.random.Generator, net: NetworkBuilder, roads: list[Line], islands: Islands, st: Style
) -> Scenery:
    """Tall buildings, car parks with cars in rows, and plazas on the blocks; cars in
    the lanes; crosswalks at junctions; a few street trees."""
    feet, nrm, tan, owner = frontage(rng, roads, rng.uniform(55, 90))
    n = len(feet)
    kind = rng.choice(3, n, p=[0.7, 0.18, 0.12])  # building, car park, plaza
    a = np.where(kind == 1, rng.uniform(20, 40, n), rng.uniform(18, 42, n))
    b = np.where(kind == 1, rng.choice([17.0, 34.0], n), rng.uniform(18, 60, n))
    setback = np.where(kind == 0, rng.uniform(0, 4, n), rng.uniform(2, 8, n))
    ctr = feet + nrm * (setback + b)[:, None]
    ang = np.arctan2(tan[:, 1], tan[:, 0])
    polys = rect_polys(ctr[:, 0], ctr[:, 1], ang, a, b)
    keep = greedy_disjoint(polys, clear_of_lines(polys, roads, 1.5), 3.0)
    pads = pad_lists()
    cars, trees = [], []
    bi = np.nonzero(keep & (kind == 0))[0]
    for i in np.nonzero(keep & (kind > 0))[0].tolist():
        if kind[i] == 1:
            g = rng.uniform(85, 125)
            add_pad(pads, ctr[i], ang[i], a[i], b[i], (g, g, g * 1.03), PARKING)
            ca, sa = math.cos(ang[i]), math.sin(ang[i])
            bays = int(round(2 * b[i] / 34))
            rows = [-b[i] + off + 34 * m for m in range(bays) for off in (5.0, 29.0)]
            fill = rng.uniform(0.3, 0.9)
            for v in rows:
                for u in np.arange(-a[i] + 2.5, a[i] - 2, 5.0):
                    if rng.random() < fill:
                        x = ctr[i, 0] + u * ca - v * sa
                        y = ctr[i, 1] + u * sa + v * ca
                        cars.append((x, y, ang[i] + math.pi / 2))
        else:
            g = rng.uniform(175, 215)
            add_pad(pads, ctr[i], ang[i], a[i], b[i], (g, g * 0.98, g * 0.94), TILES)
            for _ in range(int(rng.integers(2, 7))):
                off = rng.uniform(-0.7, 0.7, 2) * (a[i], b[i])
                p = ctr[i] + off[0] * tan[i] + off[1] * nrm[i]
                trees.append((p[0], p[1], rng.uniform(4, 8)))
    k = len(bi)
    bdata = {
        "cx": ctr[bi, 0],
        "cy": ctr[bi, 1],
        "ang": ang[bi],
        "a": a[bi],
        "b": b[bi],
        "roof": CITY_ROOFS[rng.integers(len(CITY_ROOFS), size=k)] * rng.uniform(0.9, 1.1, (k, 1)),
        "gable": np.zeros(k, dtype=bool),
        "height": rng.uniform(20, 200, k) * rng.uniform(0.4, 1.0, k),
        "car": np.zeros(k, dtype=bool),
    }
    cdata = {}
    if cars:
        c = np.array(cars)
        cdata = cars_data(c[:, 0], c[:, 1], c[:, 2], rng)
    big = 2 * math.hypot(net.h, net.w)
    traffic = place_cars(rng, roads, [Town(net.w / 2, net.h / 2, big, 0.0, (1.0, 1.0))])
    for i in range(n):
        if rng.random() < 0.1:
            road = roads[owner[i]]
            p = feet[i] - nrm[i] * road.side * rng.uniform(0.3, 0.7)
            trees.append((p[0], p[1], rng.uniform(3.5, 6)))
    t = np.array(trees).reshape(-1, 3)
    tdata = crowns(t[:, 0], t[:, 1], t[:, 2], rng)
    return Scenery(concat([bdata, cdata, traffic]), tdata, pads, _crosswalks(rng, net, roads))
