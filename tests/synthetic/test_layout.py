"""Tests for roadseg.synthetic.layout: the per-scene vector layout."""

from __future__ import annotations

import shapely

from roadseg.synthetic import SceneSpec, generate_scene
from roadseg.synthetic.layout import scene_layout


def test_layout_is_built_once_and_gives_the_scene_its_centerlines() -> None:
    lay = scene_layout(256, 300, SceneSpec(seed=4))
    assert scene_layout(256, 300, SceneSpec(seed=4)) is lay
    scene = generate_scene(256, 300, SceneSpec(seed=4))
    assert [c.wkb for c in scene.centerlines] == [c.wkb for c in lay.centerlines]
    assert scene.widths == lay.widths
    frame = shapely.box(0, 0, 300, 256).buffer(1e-6)
    assert all(frame.covers(c) for c in lay.centerlines)
    assert len(lay.road_segs.owner) > 0 and lay.road_segs.owner.max() < len(lay.roads)
