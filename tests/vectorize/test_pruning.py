"""Tests for roadseg.vectorize.pruning: spurs."""

from __future__ import annotations

import numpy as np
import pytest
from shapely.geometry import LineString
from vectorize_helpers import TRANSFORM, UTM, mask_from_lines

from roadseg.vectorize import vectorize_array


def test_ragged_edges_leave_no_spur_fringe() -> None:
    rng = np.random.default_rng(0)
    mask = mask_from_lines([LineString([(0, 100), (600, 100)])], [8.0], (200, 600))
    for c in rng.integers(5, 595, 40):  # bumps of 1-2.5 m on both edges
        side = rng.choice([-1, 1])
        depth = int(rng.integers(2, 6))
        r0 = 100 + side * 8
        rows = slice(r0, r0 + side * depth, side) if side > 0 else slice(r0 + side * depth, r0)
        mask[rows, c : c + int(rng.integers(2, 6))] = True
    net = vectorize_array(mask, TRANSFORM, UTM)
    assert len(net) == 1
    assert net.length_m[0] == pytest.approx(300, rel=0.02)


def test_a_real_side_road_is_not_a_spur() -> None:
    lines = [LineString([(0, 100), (400, 100)]), LineString([(200, 100), (200, 140)])]
    net = vectorize_array(mask_from_lines(lines, [8.0, 5.0], (200, 400)), TRANSFORM, UTM)
    assert len(net) == 3  # 20 m side road: kept
