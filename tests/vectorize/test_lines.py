"""Tests for roadseg.vectorize.lines: attributes, simplification, metres."""

from __future__ import annotations

import math

import numpy as np
import pytest
from shapely.geometry import LineString
from vectorize_helpers import (
    NETWORK,
    NETWORK_SHAPE,
    NETWORK_WIDTHS,
    TRANSFORM,
    UTM,
    mask_from_lines,
)

from roadseg.vectorize import VectorizeOptions, douglas_peucker, vectorize_array


@pytest.fixture(scope="module")
def network_mask() -> np.ndarray:
    return mask_from_lines(NETWORK, NETWORK_WIDTHS, NETWORK_SHAPE)


def test_lengths_and_widths_in_metres(network_mask: np.ndarray) -> None:
    lines = [LineString([(0, 100), (400, 100)])]
    for width in (4.0, 6.5, 9.0):
        net = vectorize_array(mask_from_lines(lines, [width], (200, 400)), TRANSFORM, UTM)
        assert net.width_m[0] == pytest.approx(width, abs=0.5)
        assert net.length_m[0] == pytest.approx(200 / 0.9996, rel=1e-3)  # UTM scale factor
        assert net.prob_mean is None and "prob_mean" not in net.properties()


def test_simplification_stays_within_tolerance() -> None:
    arc = LineString(
        [(50 + 300 * t, 200 - 120 * math.sin(math.pi * t)) for t in np.linspace(0, 1, 80)]
    )
    mask = mask_from_lines([arc], [5.0], (260, 400))
    raw = vectorize_array(mask, TRANSFORM, UTM, VectorizeOptions(simplify_m=0))
    for tol in (0.25, 1.0):
        simple = vectorize_array(mask, TRANSFORM, UTM, VectorizeOptions(simplify_m=tol))
        assert len(simple.lines[0].coords) < len(raw.lines[0].coords)
        assert raw.lines[0].hausdorff_distance(simple.lines[0]) <= tol + 1e-9


def test_douglas_peucker_keeps_ends_and_corners() -> None:
    pts = np.array([[0, 0], [1, 0.01], [2, 0], [2, 1], [2, 2]], float)
    assert douglas_peucker(pts, 0.1).tolist() == [0, 2, 4]
    assert douglas_peucker(pts, 0).tolist() == [0, 1, 2, 3, 4]
