"""The row blender: finished rows, their pieces and the bits of the weight sum."""

from __future__ import annotations

import numpy as np
import pytest


@pytest.mark.parametrize(
    ("tile", "overlap", "height"), [(224, 32, 1000), (64, 16, 300), (96, 40, 77)]
)
def test_finished_rows_reach_the_writer_in_pieces_that_end_on_64_row_lines(
    tile, overlap, height
) -> None:
    from roadseg.blending import PIECE_ROWS, RowBlender
    from roadseg.preprocess import Normalizer
    from roadseg.tile_plan import Plan
    from roadseg.tiling import axis_spans

    plan = Plan(
        height=height,
        width=50,
        tile=tile,
        overlap=overlap,
        rows=axis_spans(height, tile, overlap),
        cols=axis_spans(50, tile, overlap),
        bands=(1,),
        normalizer=Normalizer((0.0,), (1.0,), "unit"),
    )
    blender = RowBlender(plan)
    rng = np.random.default_rng(0)
    row = 0
    for i in range(len(plan.rows)):
        for j in range(len(plan.cols)):
            done = blender.add(i, j, rng.random((tile, tile), dtype=np.float32))
        assert done is not None
        valid = rng.random((done.shape[0] + 3, 50)) > 0.5  # a strip mask is taller
        pieces = list(blender.pieces(done, valid))
        np.testing.assert_array_equal(np.concatenate([p for p, _ in pieces]), done)
        np.testing.assert_array_equal(np.concatenate([v for _, v in pieces]), valid[: len(done)])
        for p, _ in pieces[:-1]:
            row += len(p)
            assert row % PIECE_ROWS == 0
        row += len(pieces[-1][0])
    assert row == height


@pytest.mark.parametrize(
    ("tile", "overlap", "height", "width", "first"),
    [(224, 32, 700, 2500, 0), (32, 22, 150, 1500, 0), (64, 16, 40, 30, 0), (48, 8, 300, 200, 3)],
)
def test_blender_weight_sum_has_the_bits_of_a_running_sum(tile, overlap, height, width, first):
    from roadseg.blending import RowBlender
    from roadseg.preprocess import Normalizer
    from roadseg.tile_plan import Plan
    from roadseg.tiling import axis_spans, weight_window

    plan = Plan(
        height=height,
        width=width,
        tile=tile,
        overlap=overlap,
        rows=axis_spans(height, tile, overlap),
        cols=axis_spans(width, tile, overlap),
        bands=(1,),
        normalizer=Normalizer((0.0,), (1.0,), "unit"),
    )
    # The running sums the blender kept before (acc and wsum, slid together).
    c0 = plan.cols[0].start
    padded = plan.cols[-1].stop - c0
    acc = np.zeros((tile, padded), np.float32)
    wsum = np.zeros((tile, padded), np.float32)
    w = weight_window(tile, overlap)
    top = plan.rows[first].start
    blender = RowBlender(plan, first)
    rng = np.random.default_rng(tile + overlap)
    for i in range(first, len(plan.rows)):
        for j, cs in enumerate(plan.cols):
            prob = rng.random((tile, tile), dtype=np.float32)
            acc[:, cs.start - c0 : cs.stop - c0] += prob * w
            wsum[:, cs.start - c0 : cs.stop - c0] += w
            done = blender.add(i, j, prob)
        end = plan.rows[i + 1].start if i + 1 < len(plan.rows) else plan.rows[i].stop
        n = end - top
        lo, hi = max(0, -top), min(n, height - top)
        expected = acc[lo:hi, -c0 : -c0 + width] / wsum[lo:hi, -c0 : -c0 + width]
        np.testing.assert_array_equal(done.view(np.uint32), expected.view(np.uint32))
        acc[:-n], wsum[:-n] = acc[n:], wsum[n:]
        acc[-n:], wsum[-n:] = 0.0, 0.0
        top = end
