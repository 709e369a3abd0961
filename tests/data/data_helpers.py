"""Fake datasets for the roadseg.data tests: noisy scenes with straight roads, written
as PNG/JPEG image and mask pairs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

#: Road and land colours of the Dubai set's colour masks.
ROAD = (110, 193, 228)
LAND = (132, 41, 246)


def scene(size: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """A dark noisy (size, size, 3) uint8 image with bright straight roads, and its 0/1 mask."""
    rng = np.random.default_rng(seed)
    image = rng.normal(70, 15, (size, size, 3)).clip(0, 255)
    mask = np.zeros((size, size), np.uint8)
    r = int(rng.integers(4, size - 8))
    c = int(rng.integers(4, size - 8))
    mask[r : r + 4] = 1
    mask[:, c : c + 4] = 1
    image[mask > 0] = (210, 205, 195)
    return image.astype(np.uint8), mask


def save_png(path: Path, array: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path)
    return path


def save_jpg(path: Path, array: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path, quality=95)
    return path


def make_pairs(root: Path, n: int = 4, size: int = 64, mask_scale: int = 255) -> Path:
    """images/ + masks/ PNG pairs."""
    for i in range(n):
        image, mask = scene(size, i)
        save_png(root / "images" / f"p{i}.png", image)
        save_png(root / "masks" / f"p{i}.png", mask * mask_scale)
    return root


def colour_mask(mask: np.ndarray) -> np.ndarray:
    out = np.empty(mask.shape + (3,), np.uint8)
    out[...] = LAND
    out[mask > 0] = ROAD
    out[:3, :3] = (60, 16, 152)  # a third class
    return out
