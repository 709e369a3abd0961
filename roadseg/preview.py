"""The preview of a prediction run: a downsampled PNG of the image with the
road probabilities drawn over it (:func:`write_preview`)."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import rasterio

from roadseg.preprocess import Normalizer
from roadseg.raster_io import decimated_shape

PREVIEW_SIDE = 1024


def write_preview(
    src: rasterio.io.DatasetReader,
    bands: tuple[int, ...],
    normalizer: Normalizer,
    prob_path: Path,
    png_path: Path,
    side: int = PREVIEW_SIDE,
) -> None:
    """A downsampled PNG of the image with road probabilities drawn in red.

    Both reads are decimated by GDAL (overviews when present), so memory is
    bounded by the preview size.
    """
    from PIL import Image
    from rasterio.enums import Resampling

    h, w = decimated_shape(src.height, src.width, side)
    show = list(bands[:3]) if len(bands) >= 3 else [bands[0]] * 3
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        data = src.read(show, out_shape=(3, h, w), resampling=Resampling.average)
    norm = Normalizer(
        tuple(normalizer.low[bands.index(b)] for b in show),
        tuple(normalizer.high[bands.index(b)] for b in show),
        normalizer.method,
    )
    rgb = norm(np.moveaxis(data, 0, -1))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", rasterio.errors.NotGeoreferencedWarning)
        ds = rasterio.open(prob_path)
    with ds:
        prob = ds.read(1, out_shape=(h, w), resampling=Resampling.average, masked=True)
        scale_p = ds.scales[0] if ds.dtypes[0] == "uint8" else 1.0
    alpha = np.clip(prob.filled(0).astype(np.float32) * scale_p, 0, 1)[..., None] * 0.85
    red = np.array([1.0, 0.15, 0.1], dtype=np.float32)
    out = rgb * (1 - alpha) + red * alpha
    Image.fromarray(np.rint(out * 255).astype(np.uint8)).save(png_path, format="PNG")
