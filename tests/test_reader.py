"""The reader: batches of normalised tiles, read a few tile columns at a time."""

from __future__ import annotations

import numpy as np
import pytest
import rasterio


@pytest.mark.parametrize("dtype", [np.uint16, np.float32])
def test_strips_read_in_column_chunks_give_the_same_batches(make_geotiff, dtype) -> None:
    from roadseg.preprocess import compute_normalizer
    from roadseg.reader import iter_batches
    from roadseg.tile_plan import Plan
    from roadseg.tiling import axis_spans

    rng = np.random.default_rng(5)
    data = rng.integers(0, 1000, (3, 150, 301)).astype(dtype)
    data[:, 40:90, 100:180] = 0  # nodata across chunk seams
    if dtype == np.float32:
        data[1, 5, 7] = np.nan
    src_path = make_geotiff(data, nodata=0)
    with rasterio.open(src_path) as src:
        plan = Plan(
            height=src.height,
            width=src.width,
            tile=32,
            overlap=8,
            rows=axis_spans(src.height, 32, 8),
            cols=axis_spans(src.width, 32, 8),
            bands=(3, 1, 2),
            normalizer=compute_normalizer(src, (3, 1, 2)),
        )

        def collect(chunk_px: int) -> tuple[list, dict[int, np.ndarray]]:
            valid: dict[int, np.ndarray] = {}
            batches = [(b, w) for b, w in iter_batches(src, plan, 7, valid, 1, chunk_px=chunk_px)]
            return batches, valid

        whole, whole_valid = collect(10_000)
        for chunk_px in (1, 50, 77):
            chunked, chunked_valid = collect(chunk_px)
            assert [w for _, w in chunked] == [w for _, w in whole]
            for (a, _), (b, _) in zip(chunked, whole, strict=True):
                np.testing.assert_array_equal(a, b)
            assert whole_valid.keys() == chunked_valid.keys()
            for i, v in whole_valid.items():
                np.testing.assert_array_equal(chunked_valid[i], v)
