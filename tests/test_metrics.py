"""Tests for roadseg.metrics: brute-force agreement, chunking, curves, empty cases."""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import rasterio
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from scipy import ndimage as ndi

from roadseg.errors import InvalidRasterError, UnsupportedRasterError
from roadseg.metrics import (
    FLOAT_STEPS,
    Counts,
    MetricsAccumulator,
    breakeven_point,
    disk_footprint,
    disk_max,
    evaluate_arrays,
    evaluate_rasters,
    float_levels,
    integer_level_values,
    iter_chunks,
    pixel_counts,
    quantize_probabilities,
)

RHOS = [0, 1, 1.5, 2, 2.9, 3, 4.2]


def brute_force(
    pred: np.ndarray, truth: np.ndarray, rho: float, valid: np.ndarray | None = None
) -> tuple[int, int, int, int]:
    """(predicted near truth, predicted, truth near prediction, truth) by a double loop."""
    if valid is None:
        valid = np.ones(pred.shape, dtype=bool)
    h, w = pred.shape
    p = [(i, j) for i in range(h) for j in range(w) if pred[i, j] and valid[i, j]]
    t = [(i, j) for i in range(h) for j in range(w) if truth[i, j] and valid[i, j]]
    r2 = rho * rho
    near = sum(any((i - a) ** 2 + (j - b) ** 2 <= r2 for a, b in t) for i, j in p)
    reached = sum(any((i - a) ** 2 + (j - b) ** 2 <= r2 for a, b in p) for i, j in t)
    return near, len(p), reached, len(t)


def masks(max_side: int = 12) -> st.SearchStrategy[np.ndarray]:
    shape = st.tuples(st.integers(1, max_side), st.integers(1, max_side))
    return shape.flatmap(lambda s: arrays(np.bool_, s))


def road_mask(h: int, w: int, rows: list[int], cols: list[int], width: int = 3) -> np.ndarray:
    m = np.zeros((h, w), dtype=np.uint8)
    for r in rows:
        m[r : r + width, :] = 1
    for c in cols:
        m[:, c : c + width] = 1
    return m


# --- brute force --------------------------------------------------------------------------


@settings(max_examples=60, deadline=None)
@given(data=st.data(), rho=st.sampled_from(RHOS))
def test_relaxed_counts_equal_brute_force(data: st.DataObject, rho: float) -> None:
    pred = data.draw(masks())
    truth = data.draw(arrays(np.bool_, pred.shape))
    valid = data.draw(st.one_of(st.none(), arrays(np.bool_, pred.shape)))
    c = pixel_counts(pred, truth, rho=rho, valid=valid)
    assert (c.relaxed_tp_pred, c.tp + c.fp, c.relaxed_tp_truth, c.tp + c.fn) == brute_force(
        pred, truth, rho, valid
    )
    v = np.ones(pred.shape, bool) if valid is None else valid
    assert c.tp == np.count_nonzero(pred & truth & v)
    assert c.fp == np.count_nonzero(pred & ~truth & v)
    assert c.fn == np.count_nonzero(~pred & truth & v)
    assert c.tn == np.count_nonzero(~pred & ~truth & v)


@pytest.mark.parametrize("rho", RHOS)
def test_relaxed_counts_brute_force_seeded(rho: float) -> None:
    rng = np.random.default_rng(int(rho * 10))
    for _ in range(5):
        pred = rng.random((15, 19)) < 0.1
        truth = rng.random((15, 19)) < 0.1
        c = pixel_counts(pred, truth, rho=rho)
        got = (c.relaxed_tp_pred, c.tp + c.fp, c.relaxed_tp_truth, c.tp + c.fn)
        assert got == brute_force(pred, truth, rho)


@settings(max_examples=40, deadline=None)
@given(
    a=arrays(np.uint8, st.tuples(st.integers(1, 20), st.integers(1, 20))), rho=st.sampled_from(RHOS)
)
def test_disk_max_equals_scipy_maximum_filter(a: np.ndarray, rho: float) -> None:
    expected = ndi.maximum_filter(a, footprint=disk_footprint(rho), mode="constant", cval=0)
    np.testing.assert_array_equal(disk_max(a, rho), expected)


@pytest.mark.parametrize("rho", RHOS)
def test_near_truth_is_distance_transform(rho: float) -> None:
    truth = np.random.default_rng(3).random((40, 50)) < 0.02
    truth[0, 0] = True
    near = disk_max(truth, rho).astype(bool)
    np.testing.assert_array_equal(near, ndi.distance_transform_edt(~truth) <= rho)


def test_disk_footprint_shape() -> None:
    assert disk_footprint(0).tolist() == [[True]]
    assert disk_footprint(1).sum() == 5
    assert disk_footprint(3).sum() == 29
    with pytest.raises(ValueError, match="rho"):
        disk_footprint(-1)


# --- special masks ------------------------------------------------------------------------


def test_mask_against_itself_is_perfect() -> None:
    truth = road_mask(60, 80, rows=[10, 40], cols=[25])
    r = evaluate_arrays(truth, truth)
    for name in ("iou", "f1", "precision", "recall", "relaxed_precision", "relaxed_recall"):
        assert getattr(r, name) == 1.0, name
    assert r.breakeven == 1.0


def test_two_pixel_shift_is_relaxed_perfect_but_not_strict() -> None:
    truth = road_mask(60, 80, rows=[10, 40], cols=[25])
    pred = road_mask(60, 80, rows=[12, 42], cols=[27])
    r = evaluate_arrays(pred, truth, rho=3)
    assert r.relaxed_precision == 1.0
    assert r.relaxed_recall == 1.0
    assert r.iou < 1.0 and r.f1 < 1.0
    # rho = 1 no longer forgives a 2-pixel shift.
    assert evaluate_arrays(pred, truth, rho=1).relaxed_precision < 1.0


def test_empty_cases() -> None:
    empty = np.zeros((10, 10), bool)
    road = empty.copy()
    road[4] = True
    both = pixel_counts(empty, empty)
    assert (both.iou, both.f1, both.precision, both.recall) == (1.0, 1.0, 1.0, 1.0)
    assert (both.relaxed_precision, both.relaxed_recall) == (1.0, 1.0)
    missed = pixel_counts(empty, road)
    assert (missed.iou, missed.f1, missed.precision, missed.recall) == (0.0, 0.0, 1.0, 0.0)
    assert missed.relaxed_recall == 0.0
    invented = pixel_counts(road, empty)
    assert (invented.iou, invented.f1, invented.precision, invented.recall) == (0.0, 0.0, 0.0, 1.0)
    assert invented.relaxed_precision == 0.0
    r = evaluate_arrays(empty, empty)
    assert r.iou == r.relaxed_precision == r.relaxed_recall == 1.0


def test_all_nodata_counts_nothing() -> None:
    r = evaluate_arrays(np.ones((5, 5), bool), np.ones((5, 5), bool), valid=np.zeros((5, 5), bool))
    assert r.counts.total == 0 and r.nodata == 25
    assert r.iou == 1.0  # vacuous: nothing to compare


def test_counts_metrics() -> None:
    c = Counts(tp=6, fp=2, fn=4, tn=88, relaxed_tp_pred=7, relaxed_tp_truth=9)
    assert c.precision == 0.75 and c.recall == 0.6
    assert c.iou == 0.5 and c.f1 == pytest.approx(12 / 18)
    assert c.relaxed_precision == 7 / 8 and c.relaxed_recall == 0.9
    assert c.total == 100


# --- thresholds ---------------------------------------------------------------------------


def _assert_counts_equal(got: Counts, expected: Counts) -> None:
    assert got == expected


@pytest.mark.parametrize("threshold", [0.5, 0.3, 0.123456])
def test_curve_matches_binary_metrics_float(threshold: float) -> None:
    rng = np.random.default_rng(7)
    truth = road_mask(50, 60, rows=[10, 30], cols=[20], width=2)
    prob = np.clip(truth * 0.6 + rng.random(truth.shape) * 0.5, 0, 1)
    prob[0, :5] = [0.0, 1.0, threshold, 0.5, 127 / 254]  # exact grid and threshold values
    r = evaluate_arrays(prob, truth, threshold=threshold, rho=2)
    curve = r.curve
    assert threshold in curve.thresholds
    for i, t in enumerate(curve.thresholds):
        assert curve.counts_at(i) == pixel_counts(prob >= t, truth, rho=2), t
    assert r.counts == pixel_counts(prob >= threshold, truth, rho=2)
    assert r.threshold == threshold


def test_curve_matches_binary_metrics_scaled_uint8() -> None:
    rng = np.random.default_rng(8)
    truth = road_mask(40, 40, rows=[10], cols=[30], width=2)
    levels = rng.integers(0, 255, truth.shape).astype(np.uint8)
    scale = 1 / 254
    r = evaluate_arrays(levels, truth, scale=scale, threshold=0.5)
    assert len(r.curve) == 255  # 0/254 .. 254/254
    for i, t in enumerate(r.curve.thresholds):
        assert r.curve.counts_at(i) == pixel_counts(levels >= i, truth), t
    # 127 * (1/254) is a hair below 0.5 in floating point; it still counts as 0.5.
    assert r.counts == pixel_counts(levels >= 127, truth)


def test_curve_metric_arrays() -> None:
    rng = np.random.default_rng(9)
    truth = rng.random((30, 30)) < 0.1
    prob = rng.random((30, 30))
    curve = evaluate_arrays(prob, truth).curve
    for i in (0, 50, 200):
        c = curve.counts_at(i)
        assert curve.iou[i] == c.iou and curve.f1[i] == c.f1
        assert curve.precision[i] == c.precision and curve.recall[i] == c.recall
        assert curve.relaxed_precision[i] == c.relaxed_precision
        assert curve.relaxed_recall[i] == c.relaxed_recall
    assert curve.thresholds[0] == 0.0 and curve.thresholds[-1] == 1.0
    assert np.all(np.diff(curve.relaxed_recall) <= 0)  # more threshold, less recall


@settings(max_examples=50, deadline=None)
@given(
    prob=arrays(np.float64, st.integers(1, 200), elements=st.floats(0, 1)),
    threshold=st.floats(0, 1),
)
def test_quantize_is_exact(prob: np.ndarray, threshold: float) -> None:
    values = float_levels(threshold)
    levels = quantize_probabilities(prob, threshold)
    assert threshold in values
    for k in range(len(values)):
        np.testing.assert_array_equal(levels >= k, prob >= values[k])


def test_quantize_grid_points() -> None:
    grid = np.arange(FLOAT_STEPS + 1) / FLOAT_STEPS
    np.testing.assert_array_equal(quantize_probabilities(grid, 0.5), np.arange(FLOAT_STEPS + 1))
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        quantize_probabilities(np.array([0.2, 1.5]))


def test_breakeven_interpolates() -> None:
    t = [0.0, 0.5, 1.0]
    value, at = breakeven_point(t, precision=[0.2, 0.6, 0.9], recall=[1.0, 0.8, 0.1])
    # d = -0.8, -0.2, 0.8: crosses between 0.5 and 1.0 at f = 0.2
    assert at == pytest.approx(0.6)
    assert value == pytest.approx(0.6 + 0.2 * 0.3)
    assert breakeven_point(t, [0.5, 0.8, 0.9], [1.0, 0.8, 0.1]) == (0.8, 0.5)
    nan_value, nan_at = breakeven_point(t, [0.1, 0.1, 0.1], [1.0, 1.0, 1.0])
    assert math.isnan(nan_value) and math.isnan(nan_at)


def test_breakeven_lies_between_curve_points() -> None:
    rng = np.random.default_rng(10)
    truth = road_mask(60, 60, rows=[20], cols=[40], width=3)
    prob = np.clip(
        ndi.gaussian_filter(truth.astype(float), 2) * 2 + rng.random(truth.shape) * 0.3, 0, 1
    )
    r = evaluate_arrays(prob, truth)
    assert 0 < r.breakeven <= 1 and 0 < r.breakeven_threshold < 1
    i = int(np.searchsorted(r.curve.thresholds, r.breakeven_threshold))
    lo, hi = sorted([r.curve.relaxed_precision[i - 1], r.curve.relaxed_precision[i]])
    assert lo - 1e-12 <= r.breakeven <= hi + 1e-12


# --- input kinds --------------------------------------------------------------------------


def test_binary_masks_in_any_encoding_agree() -> None:
    truth = road_mask(30, 40, rows=[5], cols=[10])
    pred = road_mask(30, 40, rows=[6], cols=[25])
    ref = evaluate_arrays(pred.astype(bool), truth).to_dict()
    for encoded in (pred, pred * 255, pred.astype(np.float32), pred.astype(np.uint16)):
        got = evaluate_arrays(encoded, truth * 255).to_dict()
        # Any threshold in (0, 1] splits a binary mask the same way; where the
        # breakeven threshold lands in that interval depends on the level grid.
        del got["breakeven_threshold"]
        assert got == {k: v for k, v in ref.items() if k != "breakeven_threshold"}, encoded.dtype


def test_integer_level_values_rules() -> None:
    v = integer_level_values(256, max_level=1)
    assert v[1] == 1.0
    assert integer_level_values(256, max_level=200)[255] == 1.0
    assert integer_level_values(256, max_level=254, scale=1 / 254)[254] == pytest.approx(1.0)
    assert integer_level_values(65536, max_level=40000, is_uint8=False)[65535] == 1.0
    assert integer_level_values(65536, max_level=255, is_uint8=False)[255] == 1.0


def test_float_nan_is_nodata() -> None:
    truth = road_mask(20, 20, rows=[5], cols=[])
    prob = truth.astype(np.float32)
    prob[:, :4] = np.nan
    r = evaluate_arrays(prob, truth)
    assert r.nodata == 80 and r.counts.total == 320 and r.iou == 1.0


def test_invalid_inputs() -> None:
    with pytest.raises(ValueError, match="same shape"):
        evaluate_arrays(np.zeros((3, 4)), np.zeros((4, 3)))
    with pytest.raises(ValueError, match="threshold"):
        evaluate_arrays(np.zeros((3, 3)), np.zeros((3, 3)), threshold=1.5)
    with pytest.raises(ValueError, match="rho"):
        evaluate_arrays(np.zeros((3, 3)), np.zeros((3, 3)), rho=-1)
    with pytest.raises(ValueError, match="integer predictions"):
        evaluate_arrays(np.full((3, 3), -1, np.int16), np.zeros((3, 3)))


# --- chunking -----------------------------------------------------------------------------


def test_chunks_tile_the_raster_once() -> None:
    seen = np.zeros((23, 31), int)
    for chunk in iter_chunks(23, 31, 7, 3):
        block = seen[chunk.rows, chunk.cols]
        block[chunk.core] += 1
    assert (seen == 1).all()


@pytest.mark.parametrize("chunk_size", [1, 3, 7, 16])
@pytest.mark.parametrize("rho", [0, 1.5, 3])
def test_chunked_equals_whole(chunk_size: int, rho: float) -> None:
    rng = np.random.default_rng(chunk_size)
    truth = road_mask(37, 45, rows=[3, 20], cols=[8, 30], width=2)
    prob = np.clip(truth * 0.5 + rng.random(truth.shape) * 0.6, 0, 1)
    valid = rng.random(truth.shape) > 0.05
    for pred in (prob, (prob * 254).astype(np.uint8)):
        whole = evaluate_arrays(pred, truth, rho=rho, valid=valid, chunk_size=10**6)
        chunked = evaluate_arrays(pred, truth, rho=rho, valid=valid, chunk_size=chunk_size)
        assert chunked.to_dict(curve=True) == whole.to_dict(curve=True)


def test_accumulator_adds_pairs() -> None:
    """Blocks of different images add up (the future dataset mode)."""
    rng = np.random.default_rng(11)
    a_t, b_t = rng.random((20, 20)) < 0.1, rng.random((15, 25)) < 0.1
    a_p, b_p = rng.random((20, 20)) < 0.1, rng.random((15, 25)) < 0.1
    acc = MetricsAccumulator(2, rho=2)
    acc.add(a_p, a_t)
    acc.add(b_p, b_t)
    c = acc.curve(np.array([0.0, 1.0])).counts_at(1)
    ca, cb = pixel_counts(a_p, a_t, rho=2), pixel_counts(b_p, b_t, rho=2)
    summed = {k: v + cb.to_dict()[k] for k, v in ca.to_dict().items()}
    assert c == Counts(**summed)


# --- rasters ------------------------------------------------------------------------------


def test_rasters_chunked_equal_arrays(make_geotiff: Callable[..., Path]) -> None:
    rng = np.random.default_rng(12)
    truth = road_mask(70, 90, rows=[10, 50], cols=[33], width=3)
    prob = np.clip(truth * 200 + rng.integers(0, 120, truth.shape), 0, 254).astype(np.uint8)
    prob[:5, :7] = 255  # nodata
    pred_path = make_geotiff(prob, nodata=255)
    with rasterio.open(pred_path, "r+") as dst:
        dst.scales = (1 / 254,)
    truth_path = make_geotiff(truth * 255)
    r = evaluate_rasters(pred_path, truth_path, chunk_size=16)
    expected = evaluate_arrays(prob, truth, valid=prob != 255, scale=1 / 254)
    assert r.to_dict(curve=True) == expected.to_dict(curve=True)
    assert r.nodata == 35


def test_rasters_size_mismatch(make_geotiff: Callable[..., Path]) -> None:
    a = make_geotiff(np.zeros((10, 12), np.uint8))
    b = make_geotiff(np.zeros((11, 12), np.uint8))
    with pytest.raises(InvalidRasterError, match=r"12 x 10 px.*12 x 11 px"):
        evaluate_rasters(a, b)


def test_rasters_rgb_truth_refused(make_geotiff: Callable[..., Path]) -> None:
    rgb = np.random.default_rng(0).integers(0, 255, (3, 10, 10)).astype(np.uint8)
    a = make_geotiff(np.zeros((10, 10), np.uint8))
    with pytest.raises(UnsupportedRasterError, match="3 bands that differ"):
        evaluate_rasters(a, make_geotiff(rgb))
    grey = np.repeat(rgb[:1], 3, axis=0)  # an RGB rendering of a mask is fine
    assert evaluate_rasters(a, make_geotiff(grey)).counts.total == 100


def test_levels_above_probability_one_still_count() -> None:
    """uint8 255 with scale 1/254 (no nodata set) is 'more than 1': road at any threshold."""
    levels = np.array([[0, 100, 254, 255]], np.uint8)
    truth = np.array([[0, 0, 1, 1]], np.uint8)
    r = evaluate_arrays(levels, truth, scale=1 / 254, threshold=1.0, rho=0)
    assert (r.counts.tp, r.counts.fp) == (2, 0)
    assert r.curve.thresholds[-1] == 1.0 and len(r.curve) == 255
    assert r.curve.tp[-1] == 2


def test_nodata_zero_is_background(make_geotiff: Callable[..., Path]) -> None:
    truth = road_mask(30, 30, rows=[10], cols=[20])
    pred = road_mask(30, 30, rows=[11], cols=[])
    plain = evaluate_rasters(make_geotiff(pred), make_geotiff(truth))
    zero = evaluate_rasters(make_geotiff(pred, nodata=0), make_geotiff(truth, nodata=0))
    assert zero.to_dict(curve=True) == plain.to_dict(curve=True)
    assert zero.nodata == 0 and zero.counts.total == 900


def test_best_f1_of_a_curve_is_its_highest_and_the_lowest_threshold_on_a_tie() -> None:
    from roadseg.metrics import MetricsAccumulator

    acc = MetricsAccumulator(4, rho=0)
    acc.add(np.array([[3, 2, 1, 0]]), np.array([[1, 1, 0, 0]]))
    f1, at = acc.curve(np.array([0.0, 0.25, 0.5, 0.75])).best_f1()
    assert f1 == 1.0 and at == 0.5
    flat = MetricsAccumulator(2, rho=0)
    flat.add(np.array([[1, 1]]), np.array([[1, 1]]))
    assert flat.curve(np.array([0.0, 1.0])).best_f1() == (1.0, 0.0)
