"""Tests for roadseg.synthetic.noise: every field is a pure function of global
coordinates, so a window of it equals the same window cut from a larger grid."""

from __future__ import annotations

import zlib

import numpy as np

from roadseg.synthetic.noise import cells, fbm, hash2, salt_for, unit, value_noise, white

ROWS = np.arange(-5, 203, dtype=np.int64)  # windows start 2 px before the scene (halo)
COLS = np.arange(-2, 151, dtype=np.int64)
WIN = (slice(37, 90), slice(11, 80))


def test_salt_is_a_stable_crc_of_seed_and_tag() -> None:
    assert salt_for(7, "big") == zlib.crc32(b"7/big")
    assert salt_for(7, "big") != salt_for(7, "mid") != salt_for(8, "mid")


def test_hash_and_unit_are_deterministic_and_in_range() -> None:
    i, j = np.meshgrid(np.arange(-50, 50), np.arange(-50, 50), indexing="ij")
    h = hash2(i, j, 12345)
    assert h.dtype == np.uint32
    np.testing.assert_array_equal(h, hash2(i, j, 12345))
    assert not np.array_equal(h, hash2(i, j, 12346))
    u = unit(h)
    assert u.dtype == np.float32 and u.min() >= 0 and u.max() < 1


def test_value_noise_window_equals_slice() -> None:
    whole = value_noise(ROWS, COLS, 40.0, 99)
    part = value_noise(ROWS[WIN[0]], COLS[WIN[1]], 40.0, 99)
    np.testing.assert_array_equal(part, whole[WIN])
    assert whole.min() >= 0 and whole.max() < 1


def test_fbm_and_white_windows_equal_slices() -> None:
    for scale, octaves in ((320.0, 4), (3.0, 2)):
        whole = fbm(ROWS, COLS, scale, octaves, 5)
        np.testing.assert_array_equal(
            fbm(ROWS[WIN[0]], COLS[WIN[1]], scale, octaves, 5), whole[WIN]
        )
    np.testing.assert_array_equal(white(ROWS[WIN[0]], COLS[WIN[1]], 5), white(ROWS, COLS, 5)[WIN])


def test_cells_are_pointwise() -> None:
    rng = np.random.default_rng(0)
    px = rng.uniform(-50, 500, 400).astype(np.float32)
    py = rng.uniform(-50, 500, 400).astype(np.float32)
    whole = cells(px, py, 12.0, 3)
    part = cells(px[100:150], py[100:150], 12.0, 3)
    for a, b in zip(part, whole, strict=True):
        np.testing.assert_array_equal(a, b[100:150])
    d, dx, dy, _val = whole
    np.testing.assert_allclose(d, np.hypot(dx, dy), rtol=1e-5)
