"""Tests for roadseg.vectorize.cleaning: speckle, holes, hysteresis."""

from __future__ import annotations

import numpy as np
import pytest
from shapely.geometry import LineString
from vectorize_helpers import GSD, TRANSFORM, UTM, mask_from_lines

from roadseg.vectorize import VectorizeOptions, vectorize_array


def test_speckle_goes_holes_fill_long_thin_pieces_stay() -> None:
    road = LineString([(0, 60), (300, 60)])
    mask = mask_from_lines([road], [6.0], (200, 300))
    mask[55:59, 100:104] = False  # a car: a 4 m^2 hole
    mask[130:134, 50:54] = True  # speckle: 4 m^2
    mask[150:170, 200:215] = True  # a compact 75 m^2 blob: its skeleton is a stub
    mask[180:183, 20:60] = True  # 30 m^2 but thin and 20 m long: a road piece
    net = vectorize_array(mask, TRANSFORM, UTM, VectorizeOptions(min_area_m2=40))
    rows = sorted(round((5500000.0 - ln.centroid.y) / GSD) for ln in net.lines)
    assert len(net) == 2  # the road (no loop round the car) and the thin piece
    assert rows[0] == pytest.approx(60, abs=1) and rows[1] == pytest.approx(181, abs=1)
    assert net.length_m == pytest.approx([150 / 0.9996, 20 / 0.9996], abs=2)
    # Without hole filling the car makes a loop: two parallel edges.
    net = vectorize_array(mask, TRANSFORM, UTM, VectorizeOptions(min_area_m2=40, hole_area_m2=0))
    assert len(net) > 2
    # With a smaller area limit the 4 m^2 speckle stays but is too short for a line.
    net = vectorize_array(mask, TRANSFORM, UTM, VectorizeOptions(min_area_m2=1))
    assert len(net) == 2


def test_hysteresis_keeps_weak_road_connected_to_strong() -> None:
    prob = np.zeros((200, 400), np.float32)
    prob[95:106, 0:200] = 0.9  # a clear road
    prob[95:106, 200:400] = 0.35  # the same road, faint
    prob[150:161, 50:350] = 0.35  # a faint stripe with no clear part: not a road
    plain = vectorize_array(prob, TRANSFORM, UTM, VectorizeOptions(threshold=0.5))
    hyst = vectorize_array(prob, TRANSFORM, UTM, VectorizeOptions(threshold=0.5, low=0.3))
    assert plain.total_length_m == pytest.approx(100, abs=3)
    assert len(hyst) == 1
    assert hyst.total_length_m == pytest.approx(200, abs=3)
    assert hyst.prob_min is not None and hyst.prob_min[0] == pytest.approx(0.35, abs=1e-6)
    assert hyst.prob_mean is not None and 0.35 < hyst.prob_mean[0] < 0.9
