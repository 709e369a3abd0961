"""Tests for roadseg.vectorize.bridging: gaps between dead ends."""

from __future__ import annotations

import math

import numpy as np
import pytest
import shapely
from shapely.geometry import LineString
from vectorize_helpers import GSD, TRANSFORM, UTM, mask_from_lines, pieces, to_map

from roadseg.vectorize import VectorizeOptions, vectorize_array


@pytest.mark.parametrize(("gap_m", "joined"), [(3.0, True), (8.0, True), (18.0, False)])
def test_gaps_between_aligned_ends_are_bridged(gap_m: float, joined: bool) -> None:
    mask = mask_from_lines([LineString([(0, 100.3), (600, 110)])], [6.0], (200, 600))
    g = gap_m / GSD
    mask[:, int(300 - g / 2) : int(300 + g / 2)] = False
    net = vectorize_array(mask, TRANSFORM, UTM)
    assert (len(net) == 1) is joined
    assert pieces(net) == (1 if joined else 2)


def test_ends_meeting_at_a_corner_are_not_bridged() -> None:
    # Two dead ends 8 m apart whose roads run at right angles.
    lines = [LineString([(100, 100), (300, 100)]), LineString([(90, 116), (90, 300)])]
    net = vectorize_array(mask_from_lines(lines, [5.0, 5.0], (320, 320)), TRANSFORM, UTM)
    assert pieces(net) == 2


def test_a_hidden_t_junction_is_bridged() -> None:
    lines = [LineString([(0, 100), (400, 100)]), LineString([(200, 118), (205, 300)])]
    net = vectorize_array(mask_from_lines(lines, [8.0, 6.0], (320, 400)), TRANSFORM, UTM)
    assert pieces(net) == 1
    assert net.junctions == 1 and net.node_degree.max() == 3


def test_bridge_follows_the_highest_probability() -> None:
    # A road bending through a 10 m gap: its probability falls off from the centre
    # line, and in the gap it is faint (at most 0.33) but still there.
    arc = LineString(
        [(100 + 200 * t, 150 - 60 * math.sin(math.pi * t)) for t in np.linspace(0, 1, 60)]
    )
    yy, xx = np.mgrid[0:250, 0:400]
    dist = shapely.distance(shapely.points(xx.ravel() + 0.5, yy.ravel() + 0.5), arc) * GSD
    prob = 0.95 * np.exp(-((dist.reshape(250, 400) / 3.0) ** 2))
    prob[(yy + 0.5 - 90) ** 2 + (xx + 0.5 - 200) ** 2 <= (5.0 / GSD) ** 2] *= 0.35
    opts = VectorizeOptions(threshold=0.5, gap_m=15, gap_angle_deg=45)
    net = vectorize_array(prob.astype(np.float32), TRANSFORM, UTM, opts)
    assert len(net) == 1
    truth = to_map([arc])[0]
    guided = net.lines[0].hausdorff_distance(truth)
    assert guided < 1.0
    assert net.prob_min is not None and 0.25 < net.prob_min[0] < 0.34
    # From the mask alone the bridge is a straight chord, further off.
    straight = vectorize_array((prob > 0.5).astype(np.uint8), TRANSFORM, UTM, opts)
    assert len(straight) == 1
    assert straight.lines[0].hausdorff_distance(truth) > guided
