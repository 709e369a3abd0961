from __future__ import annotations

import numpy as np
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from roadseg.tiling import (
    axis_spans,
    is_tile_size,
    ramp,
    reflect_index,
    tile_grid,
    validate_tiling,
    weight_window,
)


@given(
    length=st.integers(1, 3000),
    tile=st.sampled_from([64, 224, 256, 512]),
    overlap=st.sampled_from([0, 16, 32, 48, 64]),
)
def test_spans_cover_every_pixel_with_margin(length: int, tile: int, overlap: int) -> None:
    assume(overlap < tile - 8)
    spans = axis_spans(length, tile, overlap)
    margin = overlap // 2
    assert all(s.size == tile for s in spans)
    covered = np.zeros(length, dtype=int)
    for s in spans:
        lo, hi = max(s.start, 0), min(s.stop, length)
        covered[lo:hi] += 1
    assert covered.min() >= 1
    if length + 2 * margin > tile:
        assert spans[0].start == -margin
        assert spans[-1].stop == length + margin
        starts = [s.start for s in spans]
        assert starts == sorted(set(starts))
        # neighbouring tiles overlap by at least `overlap`
        assert all(b.start <= a.stop - overlap for a, b in zip(spans, spans[1:], strict=False))
    else:
        assert len(spans) == 1


def test_tile_grid_covers_2d() -> None:
    grid = tile_grid(500, 301, 224, 32)
    covered = np.zeros((500, 301), dtype=int)
    for t in grid:
        covered[max(t.row, 0) : t.row + t.height, max(t.col, 0) : t.col + t.width] += 1
    assert covered.min() >= 1


@pytest.mark.parametrize(("tile", "overlap"), [(0, 0), (100, 0), (224, -2), (224, 31), (224, 220)])
def test_validate_rejects(tile: int, overlap: int) -> None:
    with pytest.raises(ValueError):
        validate_tiling(tile, overlap)


@given(st.integers(-64, 2048))
def test_tile_size_is_a_positive_multiple_of_8(size: int) -> None:
    assert is_tile_size(size) == (size >= 8 and size % 8 == 0)


def test_weight_window_is_smooth_positive_and_symmetric() -> None:
    w = weight_window(224, 32)
    assert w.shape == (224, 224)
    assert w.min() > 0
    assert w.max() == pytest.approx(1.0)
    np.testing.assert_allclose(w, w[::-1, ::-1])
    r = ramp(224, 32)
    assert np.all(np.diff(r[:32]) > 0)
    assert np.all(r[32:-32] == 1.0)


@given(st.integers(-1000, 1000), st.integers(1, 50))
def test_reflect_index_matches_numpy_pad(start: int, length: int) -> None:
    idx = np.arange(start, start + 7)
    got = reflect_index(idx, length)
    assert got.min() >= 0 and got.max() < length
    if length > 1:
        base = np.arange(length)
        pad = 2000
        padded = np.pad(base, pad, mode="reflect")
        np.testing.assert_array_equal(got, padded[idx + pad])
