"""Tests for roadseg.vectorize.skeleton: the halo of the thinning windows."""

from __future__ import annotations

from shapely.geometry import LineString
from vectorize_helpers import TRANSFORM, UTM, mask_from_lines, same_network

from roadseg.vectorize import ArraySource, VectorizeOptions, extract_network, vectorize_array


def test_halo_grows_when_a_window_needs_it() -> None:
    # A 120 x 120 px plaza takes ~120 thinning steps; a 16 px halo is far too small.
    mask = mask_from_lines([LineString([(0, 100), (400, 100)])], [6.0], (300, 400))
    mask[150:270, 100:220] = True
    mask[100:150, 155:165] = True
    stats: dict = {}
    whole = vectorize_array(mask, TRANSFORM, UTM)
    src = ArraySource(mask, TRANSFORM, UTM)
    chunked = extract_network(src, VectorizeOptions(chunk_size=64, halo=16), stats=stats)
    assert stats["halo"] > 100
    assert same_network(whole, chunked)
