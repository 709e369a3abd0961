"""Tests for roadseg.geo: metres on the ground in any CRS."""

from __future__ import annotations

import math

import numpy as np
import pytest
from affine import Affine

from roadseg.vectorize import GroundScale, vectorize_array


def test_ground_scale_in_degrees_matches_utm() -> None:
    from rasterio.warp import transform as warp

    transform = Affine(2.7e-6, 0, -115.2338076, 0, -2.7e-6, 36.1423377)
    scale = GroundScale(transform, "EPSG:4326", 1300, 1300)
    xs, ys = warp(
        "EPSG:4326", "EPSG:32611", [transform.c, transform.c + 2.7e-6 * 1000], [36.14] * 2
    )
    east = math.dist((xs[0], ys[0]), (xs[1], ys[1])) / 1000
    xs, ys = warp("EPSG:4326", "EPSG:32611", [-115.232] * 2, [36.14, 36.14 + 2.7e-6 * 1000])
    north = math.dist((xs[0], ys[0]), (xs[1], ys[1])) / 1000
    jac = scale.jacobian(np.array([650.0]), np.array([650.0]))[0]
    # UTM zone 11 distorts by its scale factor there (about 0.99963): allow 0.1 %.
    assert abs(jac[0, 1]) == pytest.approx(east, rel=1e-3)  # one column step: east
    assert abs(jac[1, 0]) == pytest.approx(north, rel=1e-3)  # one row step: north
    assert 0.24 < abs(jac[0, 1]) < 0.25 and 0.29 < abs(jac[1, 0]) < 0.31
    mask = np.zeros((50, 1100), bool)
    mask[20:35, :] = True
    net = vectorize_array(mask, transform, "EPSG:4326")
    assert net.length_m[0] == pytest.approx(1100 * abs(jac[0, 1]), rel=2e-3)
    assert net.width_m[0] == pytest.approx(15 * abs(jac[1, 0]), abs=0.3)


def test_no_crs_works_in_map_units() -> None:
    mask = np.zeros((60, 200), bool)
    mask[20:30, :] = True
    net = vectorize_array(mask)
    assert net.crs is None
    assert net.length_m[0] == pytest.approx(200, abs=1)
    assert net.lines[0].coords[0] == pytest.approx((0.5, 24.5), abs=1)
