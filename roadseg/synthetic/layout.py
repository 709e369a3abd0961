"""The layout of a scene: all its vector geometry, generated once from the seed and
size (and cached, so rendering many windows of one scene builds it once).
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import shapely
from shapely.geometry import LineString

from roadseg.synthetic.elements import Layout, SegTable, copy_line, make_objects
from roadseg.synthetic.geometry import line_parts
from roadseg.synthetic.network import NetworkBuilder
from roadseg.synthetic.settings import SETTINGS
from roadseg.synthetic.spec import SceneSpec
from roadseg.synthetic.surfaces import pad_objects


@lru_cache(maxsize=8)
def scene_layout(height: int, width: int, spec: SceneSpec) -> Layout:
    """The vector layout of a scene (cached: rendering many windows builds it once).

    One generator, seeded from the seed and the size, draws everything in a fixed
    order: the style, the network and tracks of the scene's setting, then buildings,
    trees and cars.
    """
    rng = np.random.default_rng([spec.seed, height, width, 0x5CE7E])
    setting = SETTINGS[spec.setting]
    style = setting.make_style(rng)
    net = NetworkBuilder(rng, height, width, style)
    islands = setting.build_network(net)
    tracks = setting.place_tracks(rng, net, style)
    # Simplify straight runs (keeps junction end points, moves nothing by > 0.05 px).
    roads = []
    for road in net.roads:
        simple = shapely.simplify(LineString(road.pts), 0.05, preserve_topology=False)
        roads.append(copy_line(road, np.asarray(simple.coords)))
    scenery = setting.place_objects(rng, net, roads, islands, style)
    bdata, tdata = scenery.buildings, scenery.trees
    sun = np.array(style.sun)
    if bdata:
        reach = np.hypot(bdata["a"], bdata["b"]) + 2
        shadow = -sun[None, :] * (bdata["height"] * style.shadow_len)[:, None]
        buildings = make_objects(bdata, reach, shadow)
    else:
        buildings = make_objects({}, np.zeros(0))
    shadow_t = -sun[None, :] * (tdata["height"] * style.shadow_len)[:, None]
    trees = make_objects(tdata, tdata["r"] * 1.2 + 1, shadow_t)
    if islands:
        isl = np.array(islands)
        idata = {"cx": isl[:, 0], "cy": isl[:, 1], "r": isl[:, 2]}
        island_objs = make_objects(idata, isl[:, 2] + 1)
    else:
        island_objs = make_objects({}, np.zeros(0))
    layout = Layout(
        height=height,
        width=width,
        seed=spec.seed,
        style=style,
        roads=roads,
        rivers=net.rivers,
        tracks=tracks,
        towns=net.towns,
        road_segs=SegTable(roads, extend=max([2.0] + [r.side + r.side_gap + 1 for r in roads])),
        river_segs=SegTable(net.rivers, extend=6.0),
        track_segs=SegTable(tracks, extend=1.5),
        buildings=buildings,
        trees=trees,
        islands=island_objs,
        pads=pad_objects(scenery.pads),
        overlays=pad_objects(scenery.overlays),
    )
    frame = shapely.box(0, 0, width, height)
    for road in roads:
        for part in line_parts(LineString(road.pts).intersection(frame)):
            if part.length >= 1.0:
                layout.centerlines.append(part)
                layout.widths.append(float(road.width))
    return layout
