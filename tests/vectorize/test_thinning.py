"""Tests for roadseg.vectorize.thinning: Guo & Hall thinning against scikit-image."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import ndimage as ndi

from roadseg.vectorize import thin


@settings(max_examples=40, deadline=None)
@given(
    seed=st.integers(0, 2**31 - 1),
    h=st.integers(1, 40),
    w=st.integers(1, 40),
    density=st.floats(0.05, 0.6),
    grow=st.integers(0, 3),
)
def test_thin_equals_skimage_thin(seed: int, h: int, w: int, density: float, grow: int) -> None:
    from skimage.morphology import thin as sk_thin

    rng = np.random.default_rng(seed)
    mask = rng.random((h, w)) < density
    if grow:
        mask = ndi.binary_dilation(mask, iterations=grow) & (rng.random((h, w)) < 0.95)
    assert np.array_equal(thin(mask), sk_thin(mask))


def test_thin_is_idempotent() -> None:
    rng = np.random.default_rng(1)
    mask = ndi.binary_dilation(rng.random((80, 90)) < 0.02, iterations=4)
    once = thin(mask)
    assert np.array_equal(thin(once), once)
