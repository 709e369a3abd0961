"""Tests for roadseg.vectorize.chunks: the network of a raster in chunks equals the
network of the raster in one piece."""

from __future__ import annotations

import numpy as np
import pytest
from affine import Affine
from scipy import ndimage as ndi
from shapely.geometry import LineString
from vectorize_helpers import (
    NETWORK,
    NETWORK_SHAPE,
    NETWORK_WIDTHS,
    TRANSFORM,
    UTM,
    degrade,
    mask_from_lines,
    same_network,
)

from roadseg.vectorize import VectorizeOptions, vectorize_array


@pytest.fixture(scope="module")
def network_mask() -> np.ndarray:
    return mask_from_lines(NETWORK, NETWORK_WIDTHS, NETWORK_SHAPE)


def test_chunked_equals_unchunked(network_mask: np.ndarray) -> None:
    mask = degrade(network_mask, NETWORK, NETWORK_WIDTHS, seed=3)
    whole = vectorize_array(mask, TRANSFORM, UTM)
    for chunk, halo in ((64, 8), (200, 40), (256, 128)):
        opts = VectorizeOptions(chunk_size=chunk, halo=halo)
        assert same_network(whole, vectorize_array(mask, TRANSFORM, UTM, opts)), (chunk, halo)


def test_chunked_equals_unchunked_with_probabilities_and_hysteresis(network_mask) -> None:
    rng = np.random.default_rng(5)
    mask = degrade(network_mask, NETWORK, NETWORK_WIDTHS, seed=5)
    prob = ndi.gaussian_filter(mask.astype(np.float32), 1.2) * 0.9
    prob += ndi.gaussian_filter(rng.random(mask.shape).astype(np.float32), 2.0) * 0.3 - 0.1
    prob = np.where(network_mask & ~mask, np.maximum(prob, 0.3), prob)  # hidden by trees
    prob = np.clip(prob, 0, 1).astype(np.float32)
    opts = VectorizeOptions(threshold=0.5, low=0.25)
    whole = vectorize_array(prob, TRANSFORM, UTM, opts)
    chunked = vectorize_array(
        prob, TRANSFORM, UTM, VectorizeOptions(**{**opts.__dict__, "chunk_size": 96, "halo": 16})
    )
    assert whole.prob_mean is not None
    assert same_network(whole, chunked)


def test_chunked_equals_unchunked_in_a_geographic_crs() -> None:
    transform = Affine(2.7e-6, 0, -115.2338076, 0, -2.7e-6, 36.1423377)
    lines = [LineString([(0, 90), (300, 120)]), LineString([(150, 0), (140, 300)])]
    mask = mask_from_lines(lines, [4.0, 4.0], (300, 300), gsd=0.27)
    whole = vectorize_array(mask, transform, "EPSG:4326")
    chunked = vectorize_array(mask, transform, "EPSG:4326", VectorizeOptions(chunk_size=64))
    assert same_network(whole, chunked)
