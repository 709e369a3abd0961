"""Normalisation: the lookup-table path gives the bits of the arithmetic one."""

from __future__ import annotations

import numpy as np
import pytest

from roadseg.preprocess import Normalizer


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
@pytest.mark.parametrize(
    "norm",
    [
        Normalizer((0.0, 0.0, 0.0), (255.0, 255.0, 255.0), "uint8/255"),
        Normalizer((3.5, 10.0, 7.25), (200.0, 61000.0, 240.75), "percentile 2-98"),
    ],
)
def test_table_lookup_equals_the_stretch_bit_for_bit(dtype, norm) -> None:
    rng = np.random.default_rng(1)
    top = np.iinfo(dtype).max
    data = rng.integers(0, top + 1, (40, 70, 3)).astype(dtype)[:, 5:60]  # a strided view
    data[0, :3] = [[0, 0, 0], [top, top, top], [1, 2, 3]]
    valid = rng.random(data.shape[:2]) > 0.2
    expected = norm.stretch(data)
    expected[~valid] = 0.0
    got = norm(data, valid)
    assert got.dtype == np.float32
    np.testing.assert_array_equal(got.view(np.uint32), expected.view(np.uint32))
    out = np.full(data.shape, np.nan, dtype=np.float32)
    assert norm(data, valid, out=out) is out
    np.testing.assert_array_equal(out.view(np.uint32), expected.view(np.uint32))


def test_other_dtypes_still_use_the_stretch_and_write_into_out() -> None:
    norm = Normalizer((-1.0,), (1.0,), "percentile 2-98")
    data = np.array([[[-2.0], [0.0], [np.nan], [0.5]]], dtype=np.float32)
    out = np.empty(data.shape, dtype=np.float32)
    got = norm(data, np.array([[True, True, True, False]]), out=out)
    assert got is out
    np.testing.assert_array_equal(out[0, :, 0], [0.0, 0.5, 0.0, 0.0])
