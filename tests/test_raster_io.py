"""Reading strips and GDAL settings."""

from __future__ import annotations

import numpy as np
import pytest
import rasterio
from rasterio.env import get_gdal_config

from roadseg.raster_io import GDAL_CACHE_BYTES, decimated_shape, gdal_env, read_rows
from roadseg.tiling import reflect_index


def test_gdal_cache_is_the_intended_size_in_bytes(monkeypatch) -> None:
    # rasterio gives GDAL_CACHEMAX to GDALSetCacheMax64: a bare 256 is 256 bytes.
    monkeypatch.delenv("GDAL_CACHEMAX", raising=False)
    with gdal_env():
        assert get_gdal_config("GDAL_CACHEMAX") == GDAL_CACHE_BYTES
    assert GDAL_CACHE_BYTES >= 1 << 20


def test_gdal_threads_are_all_cores_unless_the_environment_says(monkeypatch) -> None:
    monkeypatch.delenv("GDAL_NUM_THREADS", raising=False)
    with gdal_env():
        assert get_gdal_config("GDAL_NUM_THREADS") == "ALL_CPUS"
    # A Dask worker process limited by roadseg.distributed.thread_env(1).
    monkeypatch.setenv("GDAL_NUM_THREADS", "1")
    with gdal_env():
        assert str(get_gdal_config("GDAL_NUM_THREADS")) == "1"


@pytest.mark.parametrize("bands", [(1, 2, 3), (3, 1, 2), (2, 2, 2), (3,)])
@pytest.mark.parametrize(
    ("rows", "cols"), [((-5, 20), (-7, 40)), ((3, 30), (10, 45)), ((20, 40), (30, 55))]
)
def test_read_rows_matches_an_outer_product_gather(make_geotiff, bands, rows, cols) -> None:
    rng = np.random.default_rng(3)
    data = rng.integers(1, 60000, (3, 33, 47)).astype(np.uint16)
    data[1, 10:14, 20:30] = 0  # nodata in one band only
    path = make_geotiff(data, nodata=0)
    row_idx = reflect_index(np.arange(*rows), 33)
    col_idx = reflect_index(np.arange(*cols), 47)
    with rasterio.open(path) as src:
        got, valid = read_rows(src, row_idx, col_idx, bands)
    rr, cc = row_idx[:, None], col_idx[None, :]
    expected = np.stack([data[b - 1][rr, cc] for b in bands], axis=-1)
    np.testing.assert_array_equal(got, expected)
    assert got.dtype == np.uint16
    np.testing.assert_array_equal(valid, np.all(data[[b - 1 for b in bands]] > 0, axis=0)[rr, cc])


def test_decimated_shape_keeps_small_rasters_and_bounds_large_ones() -> None:
    assert decimated_shape(300, 200, 1024) == (300, 200)
    assert decimated_shape(4096, 2048, 1024) == (1024, 512)
    assert decimated_shape(100000, 3, 1024) == (1024, 1)
