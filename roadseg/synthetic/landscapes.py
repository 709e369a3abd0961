"""The open-land settings: ``rural`` (dirt, gravel and narrow paved roads that barely
stand out from bare soil, savanna and dry farmland, small villages), ``forest`` (roads
under partial canopy), ``highway`` (divided highways with interchanges) and
``desert`` (sand, flat light roofs, walled compounds, sand drifting onto roads).
"""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np

from roadseg.synthetic.elements import ASPHALT, GRAVEL, MAIN, STREET, Line
from roadseg.synthetic.geometry import resample_polyline
from roadseg.synthetic.network import NetworkBuilder
from roadseg.synthetic.palettes import SEASONS, Style, _normal_quantile, make_style
from roadseg.synthetic.scenery import Islands, Scenery, concat, countryside_objects, crowns
from roadseg.synthetic.streets import highway_stage
from roadseg.synthetic.surfaces import FLAT, SOFT, WALL, add_pad

_F32 = np.float32


def rural_style(rng: np.random.Generator) -> Style:
    """Savanna or dry farmland: much bare soil, few trees, few villages."""
    st = make_style(rng)
    season = "arid" if rng.random() < 0.5 else "dry"
    pal = SEASONS[season]
    return replace(
        st,
        season=season,
        fields=np.array(pal["fields"], dtype=_F32),
        meadow=np.array(pal["meadow"], dtype=_F32),
        soil=np.array(pal["soil"], dtype=_F32),
        forest=np.array(pal["forest"], dtype=_F32),
        crown=np.array(pal["crown"], dtype=_F32),
        p_classes=(0.3, 0.25, 0.45, 0.0),
        forest_thr=0.5 + 0.13 * _normal_quantile(1 - rng.uniform(0.0, 0.06)),
        urban=rng.uniform(0.0, 0.35),
        road_frac=rng.uniform(0.035, 0.07),
    )


def _low_contrast_look(net: NetworkBuilder) -> None:
    """Roads coloured like the soil, only slightly lighter or darker."""
    rng = net.rng
    soil = net.style.soil.mean(axis=0)

    def look(kind: int, width: float) -> dict:
        paved = kind == MAIN and rng.random() < 0.6
        tone = rng.uniform(0.86, 1.14)
        if paved:
            grey = np.full(3, soil.mean())
            rgb = (0.55 * soil + 0.45 * grey) * tone
        else:
            rgb = soil * tone + rng.uniform(-5, 5, 3)
        return {
            "surface": ASPHALT if paved else GRAVEL,
            "rgb": tuple(float(v) for v in rgb),
            "marks": False,
            "verge": False,
        }

    net.look_hook = look


def rural_network(net: NetworkBuilder) -> Islands:
    """Villages, a narrow paved or dirt main road, village lanes, dirt roads."""
    _low_contrast_look(net)
    net.towns_stage()
    for town in net.towns:
        town.radius *= 0.4
    net.town_arr[:, 2] *= 0.4
    net.main_stage()
    for road in net.roads:
        road.width = min(road.width, float(net.rng.uniform(9, 14)))
    net.grid_stage()
    net.branch_stage()
    for road in net.roads:
        road.width = max(road.width, 5.0)
    return []


def forest_style(rng: np.random.Generator) -> Style:
    """Mostly forest canopy."""
    st = make_style(rng)
    share = rng.uniform(0.55, 0.85)
    return replace(
        st,
        p_classes=(0.3, 0.3, 0.1, 0.3),
        forest_thr=0.5 + 0.13 * _normal_quantile(1 - share),
        urban=0.0,
        road_frac=rng.uniform(0.03, 0.06),
    )


def forest_network(net: NetworkBuilder) -> Islands:
    """Rivers, main roads and branching forest roads."""
    net.rivers_stage()
    net.main_stage()
    net.branch_stage()
    return []


def _canopy(rng: np.random.Generator, roads: list[Line], p: float) -> dict[str, np.ndarray]:
    """Crowns on both road sides, many reaching over the carriageway."""
    xs, ys, rs = [], [], []
    for road in roads:
        r_mean = rng.uniform(5, 10)
        pts, tan = resample_polyline(road.pts, r_mean * 1.3, rng.uniform(0, 5))
        if not len(pts):
            continue
        for side in (-1.0, 1.0):
            keep = rng.random(len(pts)) < p
            k = int(keep.sum())
            r = r_mean * rng.uniform(0.7, 1.3, k)
            off = road.width / 2 + r * rng.uniform(0.1, 1.0, k)
            nrm = np.column_stack([-tan[keep, 1], tan[keep, 0]]) * side
            c = pts[keep] + nrm * off[:, None]
            xs.append(c[:, 0])
            ys.append(c[:, 1])
            rs.append(r)
    if not xs:
        return {}
    return crowns(np.concatenate(xs), np.concatenate(ys), np.concatenate(rs), rng)


def forest_objects(
    rng: np.random.Generator, net: NetworkBuilder, roads: list[Line], islands: Islands, st: Style
) -> Scenery:
    """The countryside's objects plus canopy over the roads."""
    sc = countryside_objects(rng, net, roads, islands, st)
    sc.trees = concat([sc.trees, _canopy(rng, roads, rng.uniform(0.25, 0.5))])
    return sc


def highway_style(rng: np.random.Generator) -> Style:
    """The countryside's look, with more road."""
    st = make_style(rng)
    return replace(st, road_frac=rng.uniform(0.07, 0.11))


def highway_network(net: NetworkBuilder) -> Islands:
    """Highways with interchanges first, then towns and the usual roads around."""
    net.rivers_stage()
    highway_stage(net)
    net.towns_stage()
    net.grid_stage()
    net.branch_stage()
    return []


def desert_style(rng: np.random.Generator) -> Style:
    """Sand everywhere, a few dark palms, hard light."""
    st = make_style(rng)
    sand = np.array(
        [(212, 190, 150), (200, 178, 140), (222, 202, 164), (190, 168, 130)], dtype=_F32
    ) * _F32(rng.uniform(0.9, 1.05))
    crown = np.array(SEASONS["arid"]["crown"], dtype=_F32) * _F32(0.75)
    return replace(
        st,
        season="arid",
        fields=sand,
        meadow=sand[:3] * _F32(0.97),
        soil=sand,
        forest=crown,
        crown=crown,
        p_classes=(0.2, 0.2, 0.6, 0.0),
        forest_thr=2.0,
        urban=rng.uniform(0.5, 1.0),
        road_frac=rng.uniform(0.07, 0.12),
        saturation=rng.uniform(0.8, 1.1),
    )


def desert_network(net: NetworkBuilder) -> Islands:
    """Towns with street grids, main roads, sandy lanes; paved roads are grey."""
    rng = net.rng
    sand = net.style.soil.mean(axis=0)

    def look(kind: int, width: float) -> dict:
        if kind in (MAIN, STREET) or rng.random() < 0.5:
            g = rng.uniform(95, 140)
            return {"surface": ASPHALT, "rgb": (g * 1.03, g, g * 0.95), "marks": width >= 14}
        rgb = sand * rng.uniform(0.8, 0.92)
        return {"surface": GRAVEL, "rgb": tuple(float(v) for v in rgb), "marks": False}

    net.look_hook = look
    net.towns_stage()
    net.main_stage()
    net.grid_stage()
    for road in net.roads:
        if road.kind == STREET:
            road.width = max(road.width, float(rng.uniform(10, 16)))
    net.branch_stage()
    return []


def desert_objects(
    rng: np.random.Generator, net: NetworkBuilder, roads: list[Line], islands: Islands, st: Style
) -> Scenery:
    """Flat light roofs, compound walls round many buildings, sand drifts on roads."""
    sc = countryside_objects(rng, net, roads, islands, st)
    b = sc.buildings
    if b:
        house = ~b["car"]
        n = int(house.sum())
        light = rng.uniform(175, 230, n)
        tint = np.column_stack([light, light * 0.96, light * 0.88])
        b["roof"][house] = tint
        b["gable"][house] = False
        b["height"][house] = rng.uniform(4, 10, n)
        wall = (200.0 + rng.uniform(-15, 20), 188.0, 160.0)
        for i in np.nonzero(house)[0].tolist():
            if rng.random() < 0.5:
                pad = rng.uniform(4, 10)
                c = np.array([b["cx"][i], b["cy"][i]])
                ang, a_, b_ = b["ang"][i], b["a"][i] + pad, b["b"][i] + pad
                add_pad(sc.pads, c, ang, a_, b_, np.array(wall) * 0.92, FLAT)
                add_pad(sc.pads, c, ang, a_, b_, wall, WALL)
    sand = st.soil.mean(axis=0)
    for road in roads:
        pts, tan = resample_polyline(road.pts, rng.uniform(40, 120), rng.uniform(0, 40))
        for i in np.nonzero(rng.random(len(pts)) < 0.4)[0].tolist():
            side = rng.choice([-1.0, 1.0])
            nrm = np.array([-tan[i, 1], tan[i, 0]]) * side
            c = pts[i] + nrm * road.width / 2 * rng.uniform(0.3, 1.1)
            ang = math.atan2(tan[i, 1], tan[i, 0]) + rng.normal(0, 0.3)
            add_pad(sc.overlays, c, ang, rng.uniform(6, 22), rng.uniform(3, 8), sand * 0.98, SOFT)
    return sc
