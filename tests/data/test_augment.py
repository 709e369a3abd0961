"""Augmentation (roadseg.data.augment): resizing, dihedral and photometric changes."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from roadseg.data import AugmentConfig, augment, resize_square

#: Every photometric part off (the dihedral part is set per test).
PHOTOMETRIC_OFF: dict[str, Any] = dict(
    brightness=0,
    contrast=0,
    hue=0,
    channel_gain=0,
    channel_offset=0,
    saturation=0,
    gamma=None,
    haze=0,
    grayscale_p=0,
    blur=None,
    noise=0,
    jpeg=None,
)

#: Each photometric part alone, always applied.
PARTS: dict[str, dict[str, Any]] = {
    "brightness": dict(brightness=0.1),
    "contrast": dict(contrast=0.3),
    "hue": dict(hue=0.1),
    "colour_cast": dict(channel_gain=0.15, channel_offset=0.05, colour_cast_p=1.0),
    "saturation": dict(saturation=0.4, saturation_p=1.0),
    "gamma": dict(gamma=(0.6, 1.6), gamma_p=1.0),
    "haze": dict(haze=0.35, haze_p=1.0),
    "grayscale": dict(grayscale_p=1.0),
    "blur": dict(blur=(0.3, 1.5), blur_p=1.0),
    "noise": dict(noise=0.03, noise_p=1.0),
    "jpeg": dict(jpeg=(30, 90), jpeg_p=1.0),
}


def only(dihedral: bool = False, **parts: Any) -> AugmentConfig:
    """A config with only the given parts on."""
    return AugmentConfig(**{**PHOTOMETRIC_OFF, "dihedral": dihedral, "scale": None, **parts})


def crop(seed: int = 0, size: int = 32, bands: int = 3) -> tuple[np.ndarray, np.ndarray]:
    """A smooth-ish colourful crop in [0.1, 0.9] and a random mask."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size] / size
    image = np.stack([0.5 + 0.4 * np.sin(6 * xx + b + 3 * yy) for b in range(bands)], -1)
    image += rng.normal(0, 0.02, image.shape)
    image = np.clip(image, 0.1, 0.9).astype(np.float32)
    return image, (rng.random((size, size)) > 0.7).astype(np.uint8)


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
    geometric = only(dihedral=True)
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


def test_defaults_switch_the_photometric_parts_on() -> None:
    config = AugmentConfig()
    assert config.dihedral and config.scale and config.brightness and config.contrast
    assert config.hue and config.channel_gain and config.channel_offset and config.saturation
    assert config.gamma and config.haze and config.blur and config.noise and config.jpeg
    for p in (
        config.colour_cast_p,
        config.saturation_p,
        config.gamma_p,
        config.haze_p,
        config.grayscale_p,
        config.blur_p,
        config.noise_p,
        config.jpeg_p,
    ):
        assert 0 < p < 1


def test_all_off_is_the_identity() -> None:
    image, mask = crop()
    out, out_mask = augment(image, mask, np.random.default_rng(0), only())
    np.testing.assert_array_equal(out, image)
    np.testing.assert_array_equal(out_mask, mask)


@pytest.mark.parametrize("part", sorted(PARTS))
def test_each_part_changes_the_image_and_never_the_mask(part: str) -> None:
    image, mask = crop(1)
    for seed in range(3):
        out, out_mask = augment(image, mask, np.random.default_rng(seed), only(**PARTS[part]))
        assert out.shape == image.shape and out.dtype == np.float32
        assert 0.0 <= out.min() and out.max() <= 1.0
        assert np.abs(out - image).max() > 1e-3, part
        np.testing.assert_array_equal(out_mask, mask)


@pytest.mark.parametrize("part", sorted(PARTS))
def test_each_part_with_probability_zero_is_off(part: str) -> None:
    on = PARTS[part]
    off = {k: 0.0 for k in on if k.endswith("_p")}
    if not off:  # the old parts have no probability; their strength 0 turns them off
        off = {k: 0 for k in on}
    image, mask = crop(2)
    out, _ = augment(image, mask, np.random.default_rng(0), only(**{**on, **off}))
    np.testing.assert_array_equal(out, image)


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), bands=st.sampled_from([1, 3, 4]))
def test_everything_on_keeps_range_shape_dtype_and_mask(seed: int, bands: int) -> None:
    image, mask = crop(seed % 1000, size=24, bands=bands)
    image[0, 0] = 0.0
    image[-1, -1] = 1.0
    always = {k: 1.0 for k in vars(AugmentConfig()) if k.endswith("_p") and k != "grayscale_p"}
    for config in (AugmentConfig(), AugmentConfig(**always)):
        out, out_mask = augment(image, mask, np.random.default_rng(seed), config)
        assert out.shape == image.shape and out.dtype == np.float32
        assert np.isfinite(out).all() and 0.0 <= out.min() and out.max() <= 1.0
        # only the dihedral symmetry moves the mask
        assert out_mask.sum() == mask.sum() and set(np.unique(out_mask)) <= {0, 1}
        rotations = [np.rot90(mask, k) for k in range(4)]
        assert any(np.array_equal(out_mask, m) for r in rotations for m in (r, r[:, ::-1]))


def test_deterministic_for_a_seed() -> None:
    image, mask = crop(3)
    always = {k: 1.0 for k in vars(AugmentConfig()) if k.endswith("_p") and k != "grayscale_p"}
    for config in (AugmentConfig(), AugmentConfig(**always)):
        runs = [augment(image, mask, np.random.default_rng(7), config) for _ in range(2)]
        np.testing.assert_array_equal(runs[0][0], runs[1][0])
        np.testing.assert_array_equal(runs[0][1], runs[1][1])
        other, _ = augment(image, mask, np.random.default_rng(8), config)
        assert not np.array_equal(runs[0][0], other)


def test_grayscale_gives_equal_channels() -> None:
    image, mask = crop(4)
    out, _ = augment(image, mask, np.random.default_rng(0), only(grayscale_p=1.0))
    np.testing.assert_array_equal(out[..., 0], out[..., 1])
    np.testing.assert_array_equal(out[..., 0], out[..., 2])
    luminance = image @ np.array([0.299, 0.587, 0.114], np.float32)
    np.testing.assert_allclose(out[..., 0], luminance, atol=1e-5)


def test_haze_lifts_dark_pixels_and_noise_is_zero_mean() -> None:
    dark = np.full((32, 32, 3), 0.1, np.float32)
    mask = np.zeros((32, 32), np.uint8)
    hazy, _ = augment(dark, mask, np.random.default_rng(0), only(**PARTS["haze"]))
    assert (hazy > 0.1).all()
    grey = np.full((64, 64, 3), 0.5, np.float32)
    noisy, _ = augment(
        grey, np.zeros((64, 64), np.uint8), np.random.default_rng(0), only(noise=0.03, noise_p=1.0)
    )
    assert abs(float(noisy.mean()) - 0.5) < 0.005 and noisy.std() < 0.04
