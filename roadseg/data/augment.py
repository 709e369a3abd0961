"""Augmentation of training crops: random dihedral symmetries, photometric changes that
model other sensors and atmospheres (colour casts, saturation, hue, contrast,
brightness, gamma, haze, grayscale, blur, noise, JPEG), and the square resize behind
scale changes.
"""

from __future__ import annotations

import io
import math

import numpy as np
from PIL import Image
from scipy.ndimage import gaussian_filter

from roadseg.data.types import AugmentConfig

#: RGB -> YIQ; hue is a rotation of the (I, Q) chroma plane.
_YIQ = np.array(
    [[0.299, 0.587, 0.114], [0.5959, -0.2746, -0.3213], [0.2115, -0.5227, 0.3112]],
    dtype=np.float32,
)
_YIQ_INV = np.linalg.inv(_YIQ).astype(np.float32)
#: RGB of the haze veil: a bright, slightly blue grey.
_VEIL = np.array([0.78, 0.82, 0.88], dtype=np.float32)


def augment(
    image: np.ndarray, mask: np.ndarray, rng: np.random.Generator, config: AugmentConfig
) -> tuple[np.ndarray, np.ndarray]:
    """Random dihedral and photometric augmentation of one crop.

    In order: dihedral symmetry; colour (per-band gain and offset, saturation,
    hue); contrast; brightness; gamma; haze; grayscale; blur; noise; JPEG
    compression; a final clip to [0, 1]. Only the dihedral part touches the mask.

    Args:
        image: ``(h, w, bands)`` float32 in [0, 1].
        mask: ``(h, w)`` 0/1.
        rng: the random generator to draw from.
        config: what to apply.

    Returns:
        ``(image, mask)``: the same shapes (square crops keep their size), the
        image still in [0, 1] float32, the mask still 0/1.
    """
    if config.dihedral:
        k = int(rng.integers(4))
        image, mask = np.rot90(image, k), np.rot90(mask, k)
        if rng.random() < 0.5:
            image, mask = image[:, ::-1], mask[:, ::-1]
    # The steps work in place on one array: fresh large temporaries cost page faults.
    colour = _colour(image.shape[-1], rng, config)
    if colour is None:
        image = np.array(image, dtype=np.float32)  # contiguous copy we may modify
    else:
        matrix, offset = colour
        image = np.matmul(np.asarray(image, np.float32), matrix.T)
        image += offset
    if config.contrast:
        factor = float(rng.uniform(1.0 - config.contrast, 1.0 + config.contrast))
        h, w, bands = image.shape
        # Summing rows first is far faster than image.mean(axis=(0, 1)).
        mean = image.reshape(h, w * bands).sum(axis=0).reshape(w, bands).sum(axis=0)
        mean /= np.float32(h * w)
        image -= mean
        image *= np.float32(factor)
        image += mean
    if config.brightness:
        image += np.float32(rng.uniform(-config.brightness, config.brightness))
    np.clip(image, 0.0, 1.0, out=image)
    _atmosphere(image, rng, config)
    image = _sensor(image, rng, config)
    np.clip(image, 0.0, 1.0, out=image)
    return image, np.ascontiguousarray(mask)


def _happens(p: float, rng: np.random.Generator) -> bool:
    """Whether a part with probability ``p`` applies (no draw when it is off)."""
    return p > 0 and bool(rng.random() < p)


def _colour(
    bands: int, rng: np.random.Generator, config: AugmentConfig
) -> tuple[np.ndarray, np.ndarray] | None:
    """Per-band gain and offset, then saturation and hue, as one affine map
    ``pixel -> matrix @ pixel + offset`` (float32), or None for no change."""
    matrix: np.ndarray = np.eye(bands)
    offset: np.ndarray = np.zeros(bands)
    changed = False
    if (config.channel_gain or config.channel_offset) and _happens(config.colour_cast_p, rng):
        gain = rng.uniform(1.0 - config.channel_gain, 1.0 + config.channel_gain, size=bands)
        offset = np.asarray(rng.uniform(-config.channel_offset, config.channel_offset, size=bands))
        matrix = np.diag(gain)
        changed = True
    if bands == 3:
        chroma = np.eye(3)  # acts on (Y, I, Q)
        if config.saturation and _happens(config.saturation_p, rng):
            s = float(rng.uniform(1.0 - config.saturation, 1.0 + config.saturation))
            chroma = np.diag([1.0, s, s]) @ chroma
            changed = True
        if config.hue:
            theta = float(rng.uniform(-config.hue, config.hue)) * 2.0 * math.pi
            c, s = math.cos(theta), math.sin(theta)
            chroma = np.array([[1, 0, 0], [0, c, -s], [0, s, c]]) @ chroma
            changed = True
        mix = _YIQ_INV @ chroma @ _YIQ
        matrix, offset = mix @ matrix, mix @ offset
    if not changed:
        return None
    return matrix.astype(np.float32), offset.astype(np.float32)


def _atmosphere(image: np.ndarray, rng: np.random.Generator, config: AugmentConfig) -> None:
    """Gamma and haze, in place, on an image in [0, 1]."""
    bands = image.shape[-1]
    if config.gamma is not None and _happens(config.gamma_p, rng):
        lo, hi = config.gamma
        g = math.exp(rng.uniform(math.log(lo), math.log(hi)))
        np.power(image, np.float32(g), out=image)
    if config.haze and _happens(config.haze_p, rng):
        a = float(rng.uniform(0.05, 1.0) * config.haze)
        base = _VEIL if bands == 3 else np.full(bands, 0.82, np.float32)
        veil = base + np.asarray(rng.uniform(-0.04, 0.04, size=bands), np.float32)
        image *= np.float32(1.0 - a)
        image += (np.float32(a) * veil).astype(np.float32)


def _sensor(image: np.ndarray, rng: np.random.Generator, config: AugmentConfig) -> np.ndarray:
    """Grayscale, blur and noise (in place), and JPEG compression."""
    bands = image.shape[-1]
    if bands == 3 and _happens(config.grayscale_p, rng):
        image[:] = (image @ _YIQ[0])[..., None]
    if config.blur is not None and _happens(config.blur_p, rng):
        sigma = float(rng.uniform(*config.blur))
        gaussian_filter(image, (sigma, sigma, 0.0), output=image, mode="reflect", truncate=3.0)
    if config.noise and _happens(config.noise_p, rng):
        level = np.full(bands, rng.uniform(0.0, config.noise), np.float32)
        if rng.random() < 0.5:  # a different noise level per band
            level = np.asarray(rng.uniform(0.0, config.noise, size=bands), np.float32)
        noise = rng.standard_normal(image.shape, dtype=np.float32)
        noise *= level
        image += noise
    if bands == 3 and config.jpeg is not None and _happens(config.jpeg_p, rng):
        quality = int(rng.integers(config.jpeg[0], config.jpeg[1] + 1))
        pixels = (np.clip(image, 0.0, 1.0) * np.float32(255.0) + np.float32(0.5)).astype(np.uint8)
        buffer = io.BytesIO()
        Image.fromarray(pixels).save(buffer, format="JPEG", quality=quality)
        buffer.seek(0)
        with Image.open(buffer) as decoded:
            np.multiply(np.asarray(decoded.convert("RGB")), np.float32(1.0 / 255.0), out=image)
    return image


def resize_square(array: np.ndarray, size: int, *, nearest: bool = False) -> np.ndarray:
    """Resize a square ``(n, n, ...)`` array to ``(size, size, ...)``.

    Bilinear (pixel centres aligned, edges clamped), or nearest for masks.
    """
    n = array.shape[0]
    pos = (np.arange(size, dtype=np.float32) + 0.5) * (n / size) - 0.5
    if nearest:
        idx = np.clip(np.floor(pos + 0.5).astype(np.intp), 0, n - 1)
        return array[idx][:, idx]
    pos = np.clip(pos, 0.0, n - 1.0)
    i0 = np.floor(pos).astype(np.intp)
    i1 = np.minimum(i0 + 1, n - 1)
    f = pos - i0
    extra = (1,) * (array.ndim - 2)
    fr = f.reshape((-1, 1) + extra)
    fc = f.reshape((1, -1) + extra)
    a = array.astype(np.float32, copy=False)
    rows = a[i0] * (1.0 - fr) + a[i1] * fr
    out = rows[:, i0] * (1.0 - fc) + rows[:, i1] * fc
    return out.astype(array.dtype, copy=False)
