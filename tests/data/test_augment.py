"""Augmentation (roadseg.data.augment): resizing, dihedral and photometric changes."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from roadseg.data import AugmentConfig, augment, resize_square


def test_resize_square() -> None:
    a = np.random.default_rng(0).random((40, 40, 3)).astype(np.float32)
    np.testing.assert_allclose(resize_square(a, 40), a, atol=1e-6)
    up = resize_square(a, 56)
    assert up.shape == (56, 56, 3) and up.dtype == np.float32
    assert a.min() - 1e-6 <= up.min() and up.max() <= a.max() + 1e-6
    m = (np.random.default_rng(1).random((40, 40)) > 0.5).astype(np.uint8)
    assert set(np.unique(resize_square(m, 32, nearest=True))) <= {0, 1}


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), size=st.sampled_from([8, 16, 24]))
def test_augment_keeps_image_and_mask_aligned(seed: int, size: int) -> None:
    rng = np.random.default_rng(seed)
    mask = (rng.random((size, size)) > 0.7).astype(np.uint8)
    image = np.repeat(mask[..., None].astype(np.float32), 3, axis=-1)
    geometric = AugmentConfig(scale=None, brightness=0, contrast=0, hue=0)
    out_image, out_mask = augment(image, mask, np.random.default_rng(seed), geometric)
    np.testing.assert_array_equal(out_image[..., 0], out_mask)
    assert out_mask.sum() == mask.sum()

    photo = rng.random((size, size, 3)).astype(np.float32)
    out_image, out_mask = augment(photo, mask, np.random.default_rng(seed), AugmentConfig())
    assert out_image.shape == photo.shape and out_image.dtype == np.float32
    assert 0.0 <= out_image.min() and out_image.max() <= 1.0
    assert set(np.unique(out_mask)) <= {0, 1}


def test_hue_rotation_leaves_grey_alone() -> None:
    grey = np.full((8, 8, 3), 0.4, np.float32)
    config = AugmentConfig(dihedral=False, scale=None, brightness=0, contrast=0, hue=0.5)
    out, _ = augment(grey, np.zeros((8, 8), np.uint8), np.random.default_rng(0), config)
    np.testing.assert_allclose(out, grey, atol=1e-5)
