"""Tests for roadseg.synthetic.geometry: polyline primitives and the segment index."""

from __future__ import annotations

import math

import numpy as np
import pytest

from roadseg.synthetic.geometry import (
    SegmentIndex,
    cut,
    densify,
    pixel_box,
    point_seg_dist,
    polyline_length,
    resample_polyline,
)

PTS = np.array([[0.0, 0.0], [100.0, 0.0], [100.0, 50.0]])


def test_pixel_box_holds_the_pixels_whose_centres_lie_inside() -> None:
    box = pixel_box(np.array([0.4]), np.array([2.6]), np.array([-1.0]), np.array([0.5]))
    assert box.tolist() == [[0, 2, -1, 0]]


def test_densify_keeps_the_geometry() -> None:
    dense = densify(PTS, 7.0)
    seg = np.diff(dense, axis=0)
    assert np.hypot(seg[:, 0], seg[:, 1]).max() <= 7.0 + 1e-9
    assert polyline_length(dense) == pytest.approx(150.0)
    for p in PTS:
        assert np.min(np.hypot(*(dense - p).T)) < 1e-9


def test_cut_ends_at_the_arc_length() -> None:
    part = cut(PTS, 120.0)
    assert polyline_length(part) == pytest.approx(120.0)
    np.testing.assert_allclose(part[-1], [100.0, 20.0])


def test_resample_spacing_and_tangents() -> None:
    p, tan = resample_polyline(PTS, 10.0, 5.0)
    assert len(p) == 15
    np.testing.assert_allclose(p[0], [5.0, 0.0])
    np.testing.assert_allclose(np.hypot(tan[:, 0], tan[:, 1]), 1.0)
    np.testing.assert_allclose(tan[-1], [0.0, 1.0])


def test_point_segment_distance() -> None:
    d = point_seg_dist(np.array([[5.0, 3.0], [-4.0, 3.0]]), PTS[:1], PTS[1:2])
    np.testing.assert_allclose(d[:, 0], [3.0, 5.0])


def test_segment_index_finds_crossings_and_clearance() -> None:
    index = SegmentIndex()
    index.add(np.array([[0.0, 10.0], [200.0, 10.0]]), line_id=0, hw=2.0)
    hits = index.hits(np.array([[50.0, -20.0], [50.0, 40.0]]))
    assert len(hits) == 1
    along, seg, angle = hits[0]
    assert along == pytest.approx(30.0) and seg == 0 and angle == pytest.approx(math.pi / 2)
    assert index.clearance(np.array([[50.0, 20.0]]), pad=5.0)[0] == pytest.approx(8.0)
    assert index.clearance(np.array([[50.0, 500.0]]), pad=5.0)[0] == np.inf  # none near
