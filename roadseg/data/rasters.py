"""Opening the rasters of a dataset (images and masks alike) and measuring their
pixel size on the ground.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import rasterio
from rasterio.errors import NotGeoreferencedWarning


def open_raster(path: Path) -> rasterio.io.DatasetReader:
    """Open a raster for reading, silent about missing georeferencing (PNG and JPEG
    masks and images have none, and need none)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NotGeoreferencedWarning)
        return rasterio.open(path)


def pixel_size_m(src: rasterio.io.DatasetReader) -> tuple[float, float] | None:
    """Metres on the ground per pixel along x and y, or None if the raster is
    not georeferenced (measured as ``roadseg predict`` measures its inputs, so
    a model's recorded GSD and an input's GSD compare like with like; see
    :func:`roadseg.geo.pixel_size_on_ground`)."""
    from roadseg.geo import pixel_size_on_ground

    return pixel_size_on_ground(src)
