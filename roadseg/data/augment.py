"""Augmentation of training crops: random dihedral symmetries and photometric changes
(hue, contrast, brightness), and the square resize behind scale changes.
"""

from __future__ import annotations

import math

import numpy as np

from roadseg.data.types import AugmentConfig

#: RGB -> YIQ; hue is a rotation of the (I, Q) chroma plane.
_YIQ = np.array(
    [[0.299, 0.587, 0.114], [0.5959, -0.2746, -0.3213], [0.2115, -0.5227, 0.3112]],
    dtype=np.float32,
)
_YIQ_INV = np.linalg.inv(_YIQ).astype(np.float32)


def augment(
    image: np.ndarray, mask: np.ndarray, rng: np.random.Generator, config: AugmentConfig
) -> tuple[np.ndarray, np.ndarray]:
    """Random dihedral and photometric augmentation of one crop.

    Args:
        image: ``(h, w, bands)`` float32 in [0, 1].
        mask: ``(h, w)`` 0/1.
        rng: the random generator to draw from.
        config: what to apply.

    Returns:
        ``(image, mask)``: the same shapes (square crops keep their size), the
        image still in [0, 1], the mask still 0/1.
    """
    if config.dihedral:
        k = int(rng.integers(4))
        image, mask = np.rot90(image, k), np.rot90(mask, k)
        if rng.random() < 0.5:
            image, mask = image[:, ::-1], mask[:, ::-1]
    image = np.array(image, dtype=np.float32)  # contiguous copy we may modify
    if config.hue and image.shape[-1] == 3:
        theta = float(rng.uniform(-config.hue, config.hue)) * 2.0 * math.pi
        c, s = math.cos(theta), math.sin(theta)
        rot = np.array([[1, 0, 0], [0, c, -s], [0, s, c]], dtype=np.float32)
        image = image @ (_YIQ_INV @ rot @ _YIQ).T
    if config.contrast:
        factor = float(rng.uniform(1.0 - config.contrast, 1.0 + config.contrast))
        mean = image.mean(axis=(0, 1), keepdims=True)
        image = (image - mean) * factor + mean
    if config.brightness:
        image = image + float(rng.uniform(-config.brightness, config.brightness))
    np.clip(image, 0.0, 1.0, out=image)
    return image, np.ascontiguousarray(mask)


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
