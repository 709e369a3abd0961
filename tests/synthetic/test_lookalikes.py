"""Tests for roadseg.synthetic.lookalikes: the hard-negative settings look as meant."""

from __future__ import annotations

import numpy as np

from roadseg.synthetic import SceneSpec, generate_scene
from roadseg.synthetic.layout import scene_layout
from roadseg.synthetic.lookalikes import TERRACE_ROOFS
from roadseg.synthetic.scenery import clear_of_lines, rect_polys
from roadseg.synthetic.settings import SETTINGS


def test_lookalike_settings_sort_after_the_first_seven() -> None:
    """The training script seeds scenes by the sorted registry: new settings must not
    move the seeds of the older ones."""
    first = ["city", "countryside", "desert", "forest", "highway", "rural", "suburbs"]
    assert sorted(SETTINGS)[: len(first)] == first
    assert {"winter", "terraces"} <= set(SETTINGS)


def test_winter_is_snow_with_dark_forest_and_darker_roads() -> None:
    scene = generate_scene(512, 512, SceneSpec(seed=1, setting="winter"))
    grey = scene.image.astype(np.float32).mean(axis=-1)
    ground = grey[~scene.mask]
    assert np.median(ground) > 150  # snow
    assert (ground < 80).mean() > 0.05  # conifers
    assert grey[scene.mask].mean() < np.median(ground) - 40  # ploughed roads


def test_terraces_are_long_rows_clear_of_the_roads() -> None:
    lay = scene_layout(512, 512, SceneSpec(seed=2, setting="terraces"))
    b = lay.buildings.data
    houses = ~b["car"]
    assert houses.sum() >= 10
    assert np.median(b["a"][houses] / b["b"][houses]) > 1.5  # rows, not houses
    polys = rect_polys(b["cx"], b["cy"], b["ang"], b["a"], b["b"])[houses]
    assert clear_of_lines(polys, lay.roads, 0.0).all()
    roofs = b["roof"][houses] / TERRACE_ROOFS.max()
    assert (roofs.mean(axis=1) < 0.8).mean() > 0.5  # mostly dark
