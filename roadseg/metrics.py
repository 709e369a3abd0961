"""Pixel metrics for road masks: IoU, F1, precision, recall and the relaxed ones.

Strict metrics compare a binary prediction with a binary truth pixel by pixel.
Road masks are thin, and a road drawn one pixel to the side of where an
annotator put it is not wrong, so the road-extraction literature (Mnih &
Hinton 2010; Zhang, Liu & Wang 2018, "Road Extraction by Deep Residual U-Net")
also reports *relaxed* precision and recall with a tolerance of ``rho`` pixels:

* relaxed precision: the fraction of predicted road pixels that lie within
  ``rho`` pixels of a true road pixel;
* relaxed recall: the fraction of true road pixels that lie within ``rho``
  pixels of a predicted road pixel;
* breakeven: the value where relaxed precision equals relaxed recall as the
  threshold on the road probability varies.

"Within ``rho``" means Euclidean: offsets ``(dy, dx)`` with
``dy**2 + dx**2 <= rho**2`` (a disk; ``rho = 0`` gives the strict metrics).

Empty cases follow one rule: a ratio whose denominator is zero is vacuously
1.0. So precision is 1.0 when nothing is predicted (no false claims), recall
is 1.0 when there is no road in the truth, and IoU and F1 (computed from counts
as ``tp / (tp + fp + fn)`` and ``2 tp / (2 tp + fp + fn)``) are 1.0 only when
both masks are empty and 0.0 when exactly one of them is.

How it stays fast and bounded. A probability map is first turned into integer
*levels* (uint8 rasters are used as they are; floats are binned on the grid
``k / 254`` plus the chosen threshold). For each pixel, the prediction at
threshold level ``k`` is road iff ``level >= k``. Then, in one pass:

* "near truth" is the truth dilated by the disk (the same as
  ``distance_transform_edt(~truth) <= rho``, but computed as a separable
  running maximum, about 35 times faster); a histogram of the levels of all
  pixels and of those near truth gives relaxed precision at every threshold by
  suffix sums;
* "best prediction near each true pixel" is a grey dilation (maximum filter
  with the disk footprint) of the levels; its histogram over the true road
  pixels gives relaxed recall at every threshold.

Everything is O(pixels) + O(levels). Large rasters are processed in blocks
with a halo of ``floor(rho)`` pixels, so the result is identical to a
whole-array computation while memory depends only on the block size.

Nodata pixels (in either input) are ignored: they are not counted, and they
act as neither road nor background for their neighbours' tolerance.
"""

from __future__ import annotations

import csv
import math
import os
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np
from numpy.typing import ArrayLike, NDArray

from roadseg.encoding import PROB_SCALE
from roadseg.errors import (
    InvalidRasterError,
    OutputError,
    UnsupportedRasterError,
)

if TYPE_CHECKING:  # pragma: no cover
    from rasterio.io import DatasetReader

__all__ = [
    "DEFAULT_CHUNK_SIZE",
    "DEFAULT_RHO",
    "DEFAULT_THRESHOLD",
    "FLOAT_STEPS",
    "Chunk",
    "Counts",
    "EvaluationResult",
    "MetricsAccumulator",
    "ThresholdCurve",
    "breakeven_point",
    "disk_footprint",
    "disk_max",
    "evaluate_arrays",
    "evaluate_rasters",
    "float_levels",
    "integer_level_values",
    "iter_chunks",
    "pixel_counts",
    "quantize_probabilities",
    "write_curve_csv",
]

#: The tolerance of the relaxed metrics in the ResUNet paper, in pixels.
DEFAULT_RHO = 3.0
DEFAULT_THRESHOLD = 0.5
#: Side of the square blocks read at a time (plus halo). About 4 Mpx: a few
#: tens of MB of temporaries, large enough that per-block overhead is noise.
DEFAULT_CHUNK_SIZE = 2048
#: Float probabilities are binned on ``k / FLOAT_STEPS``: the grid of the
#: uint8 probability rasters that ``roadseg predict`` writes (``v / 254``), and
#: 255 grid points plus one inserted threshold still fit in a uint8 level.
FLOAT_STEPS = PROB_SCALE
#: Tolerance when comparing a level's probability with the threshold, so
#: that ``127 * (1 / 254)``, which is a hair below 0.5 in floating point,
#: counts as 0.5.
_THRESHOLD_TOLERANCE = 1e-9
#: Float probabilities this far outside [0, 1] are clipped, not refused.
_RANGE_TOLERANCE = 1e-6
_MAX_INTEGER_LEVEL = 65535


# --------------------------------------------------------------------------------------------
# Value types
# --------------------------------------------------------------------------------------------


def _ratio(num: Any, den: Any) -> Any:
    """``num / den``, and 1.0 where ``den`` is 0 (vacuous truth). Scalars or arrays."""
    num_a = np.asarray(num, dtype=np.float64)
    den_a = np.asarray(den, dtype=np.float64)
    out = np.divide(num_a, den_a, out=np.ones(np.broadcast(num_a, den_a).shape), where=den_a > 0)
    return float(out) if out.ndim == 0 else out


@dataclass(frozen=True)
class Counts:
    """Pixel counts of one comparison at one threshold.

    Attributes:
        tp: predicted road, true road.
        fp: predicted road, true background.
        fn: predicted background, true road.
        tn: predicted background, true background.
        relaxed_tp_pred: predicted road pixels within rho of a true road pixel.
        relaxed_tp_truth: true road pixels within rho of a predicted road pixel.
    """

    tp: int
    fp: int
    fn: int
    tn: int
    relaxed_tp_pred: int
    relaxed_tp_truth: int

    @property
    def total(self) -> int:
        """Number of pixels counted (nodata excluded)."""
        return self.tp + self.fp + self.fn + self.tn

    @property
    def precision(self) -> float:
        """``tp / (tp + fp)``; 1.0 when nothing is predicted."""
        return float(_ratio(self.tp, self.tp + self.fp))

    @property
    def recall(self) -> float:
        """``tp / (tp + fn)``; 1.0 when the truth has no road."""
        return float(_ratio(self.tp, self.tp + self.fn))

    @property
    def iou(self) -> float:
        """Road-class intersection over union; 1.0 when both masks are empty."""
        return float(_ratio(self.tp, self.tp + self.fp + self.fn))

    @property
    def f1(self) -> float:
        """``2 tp / (2 tp + fp + fn)``; 1.0 when both masks are empty."""
        return float(_ratio(2 * self.tp, 2 * self.tp + self.fp + self.fn))

    @property
    def relaxed_precision(self) -> float:
        """Fraction of predicted road pixels within rho of the truth; 1.0 if none."""
        return float(_ratio(self.relaxed_tp_pred, self.tp + self.fp))

    @property
    def relaxed_recall(self) -> float:
        """Fraction of true road pixels within rho of the prediction; 1.0 if none."""
        return float(_ratio(self.relaxed_tp_truth, self.tp + self.fn))

    def to_dict(self) -> dict[str, int]:
        return {
            "tp": self.tp,
            "fp": self.fp,
            "fn": self.fn,
            "tn": self.tn,
            "relaxed_tp_pred": self.relaxed_tp_pred,
            "relaxed_tp_truth": self.relaxed_tp_truth,
        }


@dataclass(frozen=True, eq=False)
class ThresholdCurve:
    """Counts and metrics at every threshold, as parallel 1-D arrays.

    Entry ``i`` describes the prediction ``probability >= thresholds[i]``.
    Thresholds increase; the first is 0 (everything valid is road).
    """

    thresholds: NDArray[np.float64]
    tp: NDArray[np.int64]
    fp: NDArray[np.int64]
    fn: NDArray[np.int64]
    tn: NDArray[np.int64]
    relaxed_tp_pred: NDArray[np.int64]
    relaxed_tp_truth: NDArray[np.int64]

    def __post_init__(self) -> None:
        for name in ("thresholds", "tp", "fp", "fn", "tn", "relaxed_tp_pred", "relaxed_tp_truth"):
            getattr(self, name).flags.writeable = False

    def __len__(self) -> int:
        return len(self.thresholds)

    @property
    def precision(self) -> NDArray[np.float64]:
        return _ratio(self.tp, self.tp + self.fp)  # type: ignore[no-any-return]

    @property
    def recall(self) -> NDArray[np.float64]:
        return _ratio(self.tp, self.tp + self.fn)  # type: ignore[no-any-return]

    @property
    def iou(self) -> NDArray[np.float64]:
        return _ratio(self.tp, self.tp + self.fp + self.fn)  # type: ignore[no-any-return]

    @property
    def f1(self) -> NDArray[np.float64]:
        return _ratio(2 * self.tp, 2 * self.tp + self.fp + self.fn)  # type: ignore[no-any-return]

    @property
    def relaxed_precision(self) -> NDArray[np.float64]:
        return _ratio(self.relaxed_tp_pred, self.tp + self.fp)  # type: ignore[no-any-return]

    @property
    def relaxed_recall(self) -> NDArray[np.float64]:
        return _ratio(self.relaxed_tp_truth, self.tp + self.fn)  # type: ignore[no-any-return]

    def select(self, which: NDArray[Any]) -> ThresholdCurve:
        """The curve at some of its entries (a boolean mask or an index array)."""
        return ThresholdCurve(
            thresholds=self.thresholds[which],
            tp=self.tp[which],
            fp=self.fp[which],
            fn=self.fn[which],
            tn=self.tn[which],
            relaxed_tp_pred=self.relaxed_tp_pred[which],
            relaxed_tp_truth=self.relaxed_tp_truth[which],
        )

    def counts_at(self, index: int) -> Counts:
        """The :class:`Counts` of entry ``index``."""
        return Counts(
            tp=int(self.tp[index]),
            fp=int(self.fp[index]),
            fn=int(self.fn[index]),
            tn=int(self.tn[index]),
            relaxed_tp_pred=int(self.relaxed_tp_pred[index]),
            relaxed_tp_truth=int(self.relaxed_tp_truth[index]),
        )

    #: Column order of :meth:`columns` and of the CSV written by :func:`write_curve_csv`.
    COLUMNS = (
        "threshold",
        "precision",
        "recall",
        "iou",
        "f1",
        "relaxed_precision",
        "relaxed_recall",
        "tp",
        "fp",
        "fn",
        "tn",
        "relaxed_tp_pred",
        "relaxed_tp_truth",
    )

    def columns(self) -> dict[str, list[float] | list[int]]:
        """The curve as plain lists, keyed by :attr:`COLUMNS` (for JSON)."""
        return {
            "threshold": self.thresholds.tolist(),
            "precision": self.precision.tolist(),
            "recall": self.recall.tolist(),
            "iou": self.iou.tolist(),
            "f1": self.f1.tolist(),
            "relaxed_precision": self.relaxed_precision.tolist(),
            "relaxed_recall": self.relaxed_recall.tolist(),
            "tp": self.tp.tolist(),
            "fp": self.fp.tolist(),
            "fn": self.fn.tolist(),
            "tn": self.tn.tolist(),
            "relaxed_tp_pred": self.relaxed_tp_pred.tolist(),
            "relaxed_tp_truth": self.relaxed_tp_truth.tolist(),
        }


def _json_float(value: float) -> float | None:
    return None if math.isnan(value) else value


@dataclass(frozen=True, eq=False)
class EvaluationResult:
    """Everything ``roadseg evaluate`` reports.

    Attributes:
        iou: road-class IoU at ``threshold``.
        f1: F1 (Dice) at ``threshold``.
        precision: strict precision at ``threshold``.
        recall: strict recall at ``threshold``.
        relaxed_precision: relaxed precision (tolerance ``rho``) at ``threshold``.
        relaxed_recall: relaxed recall (tolerance ``rho``) at ``threshold``.
        breakeven: the value where relaxed precision equals relaxed recall along
            the threshold curve (linear interpolation between the two nearest
            thresholds); NaN if they never cross (e.g. a binary prediction whose
            relaxed precision stays below its relaxed recall).
        breakeven_threshold: the probability threshold of the breakeven point
            (interpolated likewise); NaN when ``breakeven`` is.
        threshold: the probability threshold of the strict and relaxed metrics
            above (a pixel is road if its probability is ``>= threshold``).
        rho: relaxation tolerance in pixels.
        counts: pixel counts at ``threshold``.
        nodata: pixels excluded because either input is nodata there.
        curve: counts and metrics at every threshold level of the input.
    """

    iou: float
    f1: float
    precision: float
    recall: float
    relaxed_precision: float
    relaxed_recall: float
    breakeven: float
    breakeven_threshold: float
    threshold: float
    rho: float
    counts: Counts
    nodata: int
    curve: ThresholdCurve

    def to_dict(self, *, curve: bool = False) -> dict[str, Any]:
        """A JSON-ready dict (NaN becomes None).

        Args:
            curve: also include the threshold curve as lists under ``"curve"``.
        """
        out: dict[str, Any] = {
            "iou": self.iou,
            "f1": self.f1,
            "precision": self.precision,
            "recall": self.recall,
            "relaxed_precision": self.relaxed_precision,
            "relaxed_recall": self.relaxed_recall,
            "breakeven": _json_float(self.breakeven),
            "breakeven_threshold": _json_float(self.breakeven_threshold),
            "threshold": self.threshold,
            "rho": self.rho,
            "valid_pixels": self.counts.total,
            "nodata_pixels": self.nodata,
            "counts": self.counts.to_dict(),
        }
        if curve:
            out["curve"] = self.curve.columns()
        return out


# --------------------------------------------------------------------------------------------
# The disk and its maximum filter
# --------------------------------------------------------------------------------------------


def _check_rho(rho: float) -> float:
    rho = float(rho)
    if not math.isfinite(rho) or rho < 0:
        raise ValueError(f"rho must be a finite number of pixels >= 0, got {rho}")
    return rho


def _half_widths(rho: float) -> list[int]:
    """``w[dy]``: the largest ``dx`` with ``dx**2 + dy**2 <= rho**2``, ``dy = 0..floor(rho)``."""
    r2 = math.floor(_check_rho(rho) ** 2)
    return [math.isqrt(r2 - dy * dy) for dy in range(math.isqrt(r2) + 1)]


def disk_footprint(rho: float) -> NDArray[np.bool_]:
    """The disk of radius ``rho``: True where ``dy**2 + dx**2 <= rho**2``.

    Raises:
        ValueError: if ``rho`` is negative or not finite.
    """
    r = len(_half_widths(rho)) - 1
    dy, dx = np.mgrid[-r : r + 1, -r : r + 1]
    return np.asarray(dy * dy + dx * dx <= math.floor(rho * rho))


def _running_max(a: NDArray[Any], half: int, axis: int) -> NDArray[Any]:
    """Centred running maximum of width ``2 * half + 1`` along ``axis``, zeros outside."""
    if half == 0:
        return a
    n = 2 * half + 1
    pad = [(0, 0)] * a.ndim
    pad[axis] = (half, half)
    cur = np.pad(a, pad)

    def cut(x: NDArray[Any], start: int, stop: int) -> NDArray[Any]:
        index: list[slice] = [slice(None)] * x.ndim
        index[axis] = slice(start, stop)
        return x[tuple(index)]

    # Doubling: after the loop, cur[i] = max of the p values starting at i.
    p = 1
    while 2 * p <= n:
        m = cur.shape[axis]
        cur = np.maximum(cut(cur, 0, m - p), cut(cur, p, m))
        p *= 2
    length = a.shape[axis]
    out: NDArray[Any] = np.maximum(cut(cur, 0, length), cut(cur, n - p, n - p + length))
    return out


def disk_max(a: ArrayLike, rho: float) -> NDArray[Any]:
    """Grey dilation of a 2-D array by the disk of radius ``rho``.

    ``out[i, j]`` is the maximum of ``a`` over the pixels within ``rho`` of
    ``(i, j)``; outside the array counts as 0, so ``a`` must be >= 0. Equal to
    ``scipy.ndimage.maximum_filter(a, footprint=disk_footprint(rho),
    mode="constant")`` but about ten times faster: the disk is a union of
    rectangles, and each rectangle is a separable running maximum computed by
    doubling.

    Raises:
        ValueError: if ``a`` is not 2-D or ``rho`` is invalid.
    """
    arr = np.asarray(a)
    if arr.ndim != 2:
        raise ValueError(f"disk_max needs a 2-D array, got shape {arr.shape}")
    if arr.dtype == np.bool_:
        arr = arr.view(np.uint8)
    widths = _half_widths(rho)
    out: NDArray[Any] | None = None
    for dy, w in enumerate(widths):
        # A rectangle per run of equal half-widths: rows |y| <= dy, cols |x| <= w.
        if dy + 1 < len(widths) and widths[dy + 1] == w:
            continue
        rect = _running_max(_running_max(arr, w, 1), dy, 0)
        if out is None:
            out = rect.copy() if rect is arr else rect
        else:
            np.maximum(out, rect, out=out)
    return out if out is not None else arr.copy()


# --------------------------------------------------------------------------------------------
# Levels: probabilities as small integers
# --------------------------------------------------------------------------------------------


def float_levels(threshold: float = DEFAULT_THRESHOLD) -> NDArray[np.float64]:
    """The probability of each level used for float inputs.

    The grid ``k / 254`` (``k = 0..254``), with ``threshold`` inserted if it is
    not already on it, so the binary metrics at ``threshold`` are exact.

    Raises:
        ValueError: if ``threshold`` is not in [0, 1].
    """
    threshold = _check_threshold(threshold)
    grid = np.arange(FLOAT_STEPS + 1, dtype=np.float64) / FLOAT_STEPS
    if np.any(grid == threshold):
        return grid
    return np.insert(grid, int(np.searchsorted(grid, threshold)), threshold)


def quantize_probabilities(
    prob: ArrayLike, threshold: float = DEFAULT_THRESHOLD
) -> NDArray[np.uint8]:
    """Levels of float probabilities on the grid of :func:`float_levels`.

    ``levels[i] = k`` where ``values[k] <= prob[i] < values[k + 1]`` exactly,
    with ``values = float_levels(threshold)``. So ``levels >= k`` is the same
    mask as ``prob >= values[k]``.

    Args:
        prob: probabilities in [0, 1] (NaN is not allowed; mask it first).
        threshold: the threshold inserted into the grid.

    Raises:
        ValueError: if a value is outside [0, 1] or NaN.
    """
    p = np.asarray(prob, dtype=np.float64)
    if p.size and not (np.min(p) >= -_RANGE_TOLERANCE and np.max(p) <= 1 + _RANGE_TOLERANCE):
        lo, hi = float(np.min(p)), float(np.max(p))
        raise ValueError(f"probabilities must be in [0, 1] (found {lo:.4g} .. {hi:.4g})")
    p = np.clip(p, 0.0, 1.0)
    grid = np.arange(FLOAT_STEPS + 1, dtype=np.float64) / FLOAT_STEPS
    u = np.floor(p * FLOAT_STEPS).astype(np.int16)
    np.clip(u, 0, FLOAT_STEPS, out=u)
    # floor(p * 254) can be one off either way after rounding; fix it exactly.
    u -= p < grid[u]
    u += (u < FLOAT_STEPS) & (p >= grid[np.minimum(u + 1, FLOAT_STEPS)])
    values = float_levels(threshold)
    if len(values) > len(grid):  # threshold inserted between grid[j] and grid[j + 1]
        j = int(np.searchsorted(grid, threshold)) - 1
        u += (u > j) | ((u == j) & (p >= threshold))
    return u.astype(np.uint8)


def integer_level_values(
    n_levels: int,
    *,
    max_level: int,
    scale: float | None = None,
    offset: float = 0.0,
    is_uint8: bool = True,
) -> NDArray[np.float64]:
    """The probability of each raw integer value of a prediction raster.

    Rules, in order: if ``scale`` is given, ``value * scale + offset`` (the
    band scale of a ``roadseg predict`` output, 1/254); else a raster whose
    largest value is 0 or 1 is a binary mask (value = probability); else
    ``value / 255`` for uint8 (or any raster whose values are <= 255) and
    ``value / 65535`` otherwise.

    Args:
        n_levels: number of raw levels (256 or 65536).
        max_level: the largest value seen in valid pixels.
        scale: band scale, or None if the raster has none.
        offset: band offset (only with ``scale``).
        is_uint8: whether the raster is uint8.
    """
    v = np.arange(n_levels, dtype=np.float64)
    if scale is not None:
        return v * scale + offset
    if max_level <= 1:
        return v
    if is_uint8 or max_level <= 255:
        return v / 255.0
    return v / float(_MAX_INTEGER_LEVEL)


def _check_threshold(threshold: float) -> float:
    threshold = float(threshold)
    if not 0.0 <= threshold <= 1.0:
        raise ValueError(f"threshold must be a probability in [0, 1], got {threshold}")
    return threshold


# --------------------------------------------------------------------------------------------
# Counting
# --------------------------------------------------------------------------------------------


def _suffix_sums(h: NDArray[np.int64]) -> NDArray[np.int64]:
    """``out[k] = h[k:].sum()``."""
    return np.cumsum(h[::-1])[::-1]


def breakeven_point(
    thresholds: ArrayLike, precision: ArrayLike, recall: ArrayLike
) -> tuple[float, float]:
    """Where precision first meets recall as the threshold increases.

    Finds the first index ``k`` with ``precision[k] >= recall[k]`` and
    interpolates linearly between ``k - 1`` and ``k`` (where the difference
    changes sign) for both the value and the threshold.

    Returns:
        ``(value, threshold)``, or ``(nan, nan)`` if precision stays below recall.
    """
    t = np.asarray(thresholds, dtype=np.float64)
    p = np.asarray(precision, dtype=np.float64)
    r = np.asarray(recall, dtype=np.float64)
    d = p - r
    hits = np.flatnonzero(d >= 0)
    if hits.size == 0:
        return math.nan, math.nan
    k = int(hits[0])
    if k == 0 or d[k] == 0:
        return float((p[k] + r[k]) / 2), float(t[k])
    f = d[k - 1] / (d[k - 1] - d[k])  # in (0, 1]: d[k-1] < 0 <= d[k]
    value = p[k - 1] + f * (p[k] - p[k - 1])
    return float(value), float(t[k - 1] + f * (t[k] - t[k - 1]))


class MetricsAccumulator:
    """Accumulates the histograms behind all metrics, block by block.

    Feed it blocks of prediction levels and truth (with an optional validity
    mask); each block may carry a halo around the part to be counted
    (``core``), so the tolerance of ``rho`` sees across block edges. Blocks of
    one raster, or blocks of many image pairs (a whole dataset), add up.

    Args:
        n_levels: number of prediction levels (256 for uint8 levels, up to 65536).
        rho: relaxation tolerance in pixels.

    Raises:
        ValueError: if ``n_levels`` or ``rho`` is invalid.
    """

    def __init__(self, n_levels: int = 256, rho: float = DEFAULT_RHO) -> None:
        if not 2 <= n_levels <= _MAX_INTEGER_LEVEL + 1:
            raise ValueError(f"n_levels must be in [2, 65536], got {n_levels}")
        self.n_levels = int(n_levels)
        self.rho = _check_rho(rho)
        self.halo = len(_half_widths(self.rho)) - 1
        # Levels of valid pixels by class: 0 far from truth, 1 near truth (within rho,
        # not road), 2 true road. Row 3: for each true road pixel, the best level in its disk.
        self._hist = np.zeros((4, self.n_levels), dtype=np.int64)
        self.nodata = 0

    def add(
        self,
        levels: ArrayLike,
        truth: ArrayLike,
        valid: ArrayLike | None = None,
        core: tuple[slice, slice] | None = None,
    ) -> None:
        """Count one block.

        Args:
            levels: 2-D non-negative integer prediction levels (< ``n_levels``);
                the prediction at level ``k`` is ``levels >= k``.
            truth: 2-D, road where true (or > 0).
            valid: 2-D, False where either input is nodata; None means all valid.
            core: the part of the block to count (slices relative to it); the
                rest is halo that only informs the tolerance. None counts all.

        Raises:
            ValueError: if shapes differ, levels are not integers or out of range.
        """
        lv = np.asarray(levels)
        tr = np.asarray(truth)
        if lv.ndim != 2 or lv.shape != tr.shape:
            raise ValueError(f"levels {lv.shape} and truth {tr.shape} must be 2-D, same shape")
        if lv.dtype.kind not in "ub":
            if lv.dtype.kind != "i" or (lv.size and lv.min() < 0):
                raise ValueError(f"levels must be non-negative integers, got {lv.dtype}")
        lv = lv.astype(np.uint8 if self.n_levels <= 256 else np.uint16, copy=False)
        if lv.size and int(lv.max()) >= self.n_levels:
            raise ValueError(f"level {int(lv.max())} is out of range for {self.n_levels} levels")
        tr = tr if tr.dtype == np.bool_ else tr > 0
        va: NDArray[np.bool_] | None = None
        if valid is not None:
            va = np.asarray(valid, dtype=bool)
            if va.shape != lv.shape:
                raise ValueError(f"valid {va.shape} must have the shape of levels {lv.shape}")
            if va.all():
                va = None
            else:
                tr = tr & va
                lv = np.where(va, lv, 0).astype(lv.dtype, copy=False)
        rows, cols = core if core is not None else (slice(None), slice(None))
        tr_c = tr[rows, cols]
        lv_c = lv[rows, cols]
        va_c = va[rows, cols] if va is not None else None
        if va_c is not None:
            self.nodata += int(va_c.size - np.count_nonzero(va_c))

        if tr.any():
            near_c = disk_max(tr, self.rho)[rows, cols]
            cls = near_c.astype(np.intp) + tr_c
        else:
            cls = np.zeros(tr_c.shape, dtype=np.intp)
        index = lv_c + cls * self.n_levels
        if va_c is not None:
            index = index[va_c]
        self._hist[:3] += np.bincount(index.ravel(), minlength=3 * self.n_levels).reshape(
            3, self.n_levels
        )
        if tr_c.any():
            # Invalid pixels have level 0, which never decides anything: at
            # level 0 every valid true pixel is reached by itself.
            best = disk_max(lv, self.rho)[rows, cols][tr_c]
            self._hist[3] += np.bincount(best, minlength=self.n_levels)

    def merge(self, other: MetricsAccumulator) -> None:
        """Add the counts of ``other`` (same levels and rho): pooling images.

        Raises:
            ValueError: if the two count different levels or tolerances.
        """
        if (other.n_levels, other.rho) != (self.n_levels, self.rho):
            raise ValueError("can only merge accumulators with the same levels and rho")
        self._hist += other._hist
        self.nodata += other.nodata

    @property
    def max_level(self) -> int:
        """The largest level seen in a valid pixel (0 if none)."""
        seen = np.flatnonzero(self._hist[:3].sum(axis=0))
        return int(seen[-1]) if seen.size else 0

    def curve(self, values: ArrayLike) -> ThresholdCurve:
        """The threshold curve at the levels whose probability is in [0, 1].

        Args:
            values: the probability of each level (non-decreasing, ``n_levels`` long).

        Raises:
            ValueError: if ``values`` has the wrong length or is not non-decreasing.
        """
        vals = self._check_values(values)
        # Levels above probability 1 (e.g. 255 with scale 1/254) are no thresholds
        # anyone asks for; their pixels still count as road at every threshold kept.
        keep = vals <= 1.0 + _THRESHOLD_TOLERANCE
        keep[0] = True
        return self._full_curve(np.clip(vals, 0.0, 1.0)).select(keep)

    def _full_curve(self, thresholds: NDArray[np.float64]) -> ThresholdCurve:
        far, near, road, best = self._hist
        tp = _suffix_sums(road)
        predicted = _suffix_sums(far + near + road)
        n_truth = int(road.sum())
        n_total = int(predicted[0])
        fp = predicted - tp
        fn = n_truth - tp
        return ThresholdCurve(
            thresholds=thresholds,
            tp=tp,
            fp=fp,
            fn=fn,
            tn=n_total - tp - fp - fn,
            relaxed_tp_pred=_suffix_sums(near + road),
            relaxed_tp_truth=_suffix_sums(best),
        )

    def result(self, values: ArrayLike, threshold: float = DEFAULT_THRESHOLD) -> EvaluationResult:
        """All metrics from what was added so far.

        Args:
            values: the probability of each level (see :func:`float_levels`,
                :func:`integer_level_values`).
            threshold: pixels whose probability is ``>= threshold`` are road
                for the single-threshold metrics.

        Raises:
            ValueError: if ``values`` or ``threshold`` is invalid.
        """
        threshold = _check_threshold(threshold)
        vals = self._check_values(values)
        curve = self.curve(vals)
        # The first level whose probability reaches the threshold. If none does,
        # nothing is predicted.
        k = int(np.searchsorted(vals, threshold - _THRESHOLD_TOLERANCE, side="left"))
        if k < self.n_levels:
            counts = self._full_curve(vals).counts_at(k)
        else:
            n_truth = int(self._hist[2].sum())
            n_total = int(self._hist[:3].sum())
            counts = Counts(0, 0, n_truth, n_total - n_truth, 0, 0)
        value, at = breakeven_point(curve.thresholds, curve.relaxed_precision, curve.relaxed_recall)
        return EvaluationResult(
            iou=counts.iou,
            f1=counts.f1,
            precision=counts.precision,
            recall=counts.recall,
            relaxed_precision=counts.relaxed_precision,
            relaxed_recall=counts.relaxed_recall,
            breakeven=value,
            breakeven_threshold=at,
            threshold=threshold,
            rho=self.rho,
            counts=counts,
            nodata=self.nodata,
            curve=curve,
        )

    def _check_values(self, values: ArrayLike) -> NDArray[np.float64]:
        vals = np.asarray(values, dtype=np.float64)
        if vals.shape != (self.n_levels,):
            raise ValueError(f"values must have {self.n_levels} entries, got shape {vals.shape}")
        if np.any(np.diff(vals) < 0):
            raise ValueError("values must be non-decreasing")
        return vals


def pixel_counts(
    pred: ArrayLike, truth: ArrayLike, *, rho: float = DEFAULT_RHO, valid: ArrayLike | None = None
) -> Counts:
    """Strict and relaxed counts of a binary prediction against a binary truth.

    Args:
        pred: 2-D, road where true (or > 0).
        truth: 2-D, road where true (or > 0).
        rho: relaxation tolerance in pixels.
        valid: 2-D, False where a pixel is to be ignored; None means all valid.

    Returns:
        The :class:`Counts`; its properties give precision, recall, IoU, F1 and
        the relaxed precision and recall.

    Raises:
        ValueError: if the shapes differ or ``rho`` is invalid.
    """
    p = np.asarray(pred)
    acc = MetricsAccumulator(2, rho)
    acc.add(p if p.dtype == np.bool_ else p > 0, truth, valid)
    return acc.curve(np.array([0.0, 1.0])).counts_at(1)


# --------------------------------------------------------------------------------------------
# Blocks with a halo
# --------------------------------------------------------------------------------------------


class Chunk(NamedTuple):
    """A block to read, with its halo, and the part of it to count.

    Attributes:
        rows: rows to read, in raster coordinates.
        cols: columns to read, in raster coordinates.
        core: the counted part, as slices relative to the block read.
    """

    rows: slice
    cols: slice
    core: tuple[slice, slice]


def iter_chunks(height: int, width: int, chunk_size: int, halo: int) -> Iterator[Chunk]:
    """Square blocks of ``chunk_size`` covering a raster, each read with ``halo``.

    The halo is clipped at the raster's edges (beyond them is "nothing"); the
    cores tile the raster exactly once.

    Raises:
        ValueError: if ``chunk_size`` < 1 or ``halo`` < 0.
    """
    if chunk_size < 1 or halo < 0:
        raise ValueError(f"chunk_size must be >= 1 and halo >= 0, got {chunk_size}, {halo}")
    for r0 in range(0, height, chunk_size):
        r1 = min(r0 + chunk_size, height)
        a0, a1 = max(r0 - halo, 0), min(r1 + halo, height)
        for c0 in range(0, width, chunk_size):
            c1 = min(c0 + chunk_size, width)
            b0, b1 = max(c0 - halo, 0), min(c1 + halo, width)
            core = (slice(r0 - a0, r1 - a0), slice(c0 - b0, c1 - b0))
            yield Chunk(slice(a0, a1), slice(b0, b1), core)


# --------------------------------------------------------------------------------------------
# Arrays
# --------------------------------------------------------------------------------------------


def evaluate_arrays(
    pred: ArrayLike,
    truth: ArrayLike,
    *,
    threshold: float = DEFAULT_THRESHOLD,
    rho: float = DEFAULT_RHO,
    valid: ArrayLike | None = None,
    scale: float | None = None,
    offset: float = 0.0,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
) -> EvaluationResult:
    """Evaluate a prediction array against a truth array.

    Args:
        pred: 2-D prediction: bool (a mask); float probabilities in [0, 1]
            (NaN is nodata); or non-negative integers, read as described in
            :func:`integer_level_values` (0/1 and 0/255 masks and uint8
            probabilities all work).
        truth: 2-D, road where > 0.
        threshold: probability at or above which a pixel is road.
        rho: relaxation tolerance in pixels.
        valid: 2-D, False where a pixel is to be ignored; None means all valid.
        scale: the probability of integer value ``v`` is ``v * scale + offset``
            (for floats, of ``v``). None: see :func:`integer_level_values`.
        offset: see ``scale``.
        chunk_size: block side; results do not depend on it.

    Raises:
        ValueError: on mismatched shapes, probabilities outside [0, 1], negative
            or too large integers, or invalid options.
    """
    threshold = _check_threshold(threshold)
    p = np.asarray(pred)
    t = np.asarray(truth)
    if p.ndim != 2 or p.shape != t.shape:
        raise ValueError(f"pred {p.shape} and truth {t.shape} must be 2-D with the same shape")
    va = None if valid is None else np.asarray(valid, dtype=bool)
    decode = _Decoder(p.dtype, threshold, scale, offset)
    acc = MetricsAccumulator(decode.n_levels, rho)
    for chunk in iter_chunks(p.shape[0], p.shape[1], chunk_size, acc.halo):
        block_valid = None if va is None else va[chunk.rows, chunk.cols]
        levels, ok = decode(p[chunk.rows, chunk.cols], block_valid)
        acc.add(levels, t[chunk.rows, chunk.cols] > 0, ok, chunk.core)
    return acc.result(decode.values(acc.max_level), threshold)


class _Decoder:
    """Turns blocks of a prediction into levels, and levels into probabilities."""

    def __init__(
        self, dtype: np.dtype[Any], threshold: float, scale: float | None, offset: float
    ) -> None:
        self.dtype = np.dtype(dtype)
        self.threshold = threshold
        self.scale = scale
        self.offset = offset
        kind = self.dtype.kind
        if kind not in "biuf":
            raise ValueError(f"cannot read a {self.dtype} prediction; expected numbers")
        self.is_float = kind == "f"
        self.n_levels = 256 if kind in "bf" or self.dtype == np.uint8 else _MAX_INTEGER_LEVEL + 1

    def __call__(
        self, block: NDArray[Any], valid: NDArray[np.bool_] | None
    ) -> tuple[NDArray[Any], NDArray[np.bool_] | None]:
        if self.dtype.kind == "b":
            return block.view(np.uint8), valid
        if self.is_float:
            prob = block.astype(np.float64)
            if self.scale is not None:
                prob = prob * self.scale + self.offset
            nan = np.isnan(prob)
            if nan.any():
                valid = ~nan if valid is None else valid & ~nan
            if valid is not None:
                prob = np.where(valid, prob, 0.0)
            return quantize_probabilities(prob, self.threshold), valid
        if self.dtype == np.uint8:
            return block, valid
        values = block if valid is None else np.where(valid, block, 0)
        if values.size and (values.min() < 0 or values.max() > _MAX_INTEGER_LEVEL):
            raise ValueError(
                f"integer predictions must be in 0..{_MAX_INTEGER_LEVEL} "
                f"(found {values.min()} .. {values.max()})"
            )
        return values.astype(np.uint16), valid

    def values(self, max_level: int) -> NDArray[np.float64]:
        if self.dtype.kind == "b":
            return np.arange(256, dtype=np.float64)
        if self.is_float:
            vals = float_levels(self.threshold)
            # Unused top levels (grid without inserted threshold) lie above 1.
            return np.concatenate([vals, 2.0 + np.arange(self.n_levels - len(vals))])
        return integer_level_values(
            self.n_levels,
            max_level=max_level,
            scale=self.scale,
            offset=self.offset,
            is_uint8=self.dtype == np.uint8,
        )


# --------------------------------------------------------------------------------------------
# Rasters (the I/O edge: rasterio is imported here only)
# --------------------------------------------------------------------------------------------


class _Raster:
    """One input raster opened for block reading, with its checks."""

    def __init__(self, path: Path, role: str) -> None:
        from rasterio.enums import ColorInterp, MaskFlags

        from roadseg.raster_io import check_dtype, open_raster

        self.path = path
        self.role = role
        self.ds: DatasetReader = open_raster(path)
        try:
            check_dtype(self.ds, path)
        except UnsupportedRasterError:
            self.ds.close()
            raise
        ds = self.ds
        self.height, self.width = ds.height, ds.width
        # An alpha band is a mask (rasterio folds it into read_masks), not data.
        data_bands = [i + 1 for i, ci in enumerate(ds.colorinterp) if ci != ColorInterp.alpha]
        self.bands = data_bands or [1]
        self.dtype = np.dtype(ds.dtypes[self.bands[0] - 1])
        self.georeferenced = ds.crs is not None and not ds.transform.is_identity
        # Masks are often saved with nodata = 0, which would make all background
        # "unknown"; in a mask or a probability map 0 is a value, so ignore that.
        flags = ds.mask_flag_enums[self.bands[0] - 1]
        self.ignore_mask = MaskFlags.all_valid in flags or (
            list(flags) == [MaskFlags.nodata] and ds.nodata == 0
        )
        self.jpeg = ds.driver == "JPEG"

    def close(self) -> None:
        self.ds.close()

    def read(self, rows: slice, cols: slice) -> tuple[NDArray[Any], NDArray[np.bool_] | None]:
        """One block of the data band and its validity (None: all valid).

        Raises:
            InvalidRasterError: if the block cannot be read.
            UnsupportedRasterError: if several bands differ (not a mask).
        """
        from rasterio.errors import NotGeoreferencedWarning, RasterioError
        from rasterio.windows import Window

        window = Window.from_slices(rows, cols)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", NotGeoreferencedWarning)
                data = self.ds.read(self.bands, window=window)
                mask = None
                if not self.ignore_mask:
                    mask = self.ds.read_masks(self.bands[0], window=window)
        except RasterioError as exc:
            raise InvalidRasterError(
                f"cannot read {self.role} {self.path} ({' '.join(str(exc).split())})"
            ) from None
        valid = None if mask is None or mask.all() else mask > 0
        for i in range(1, data.shape[0]):
            same = data[i] == data[0]
            if not (same.all() if valid is None else same[valid].all()):
                raise UnsupportedRasterError(
                    f"{self.role} {self.path} has {data.shape[0]} bands that differ: it looks "
                    f"like an image, not a {'road mask' if self.role == 'truth' else 'prediction'}."
                    " Give a single-band raster (road > 0 for the truth; a probability or "
                    "0/1 mask for the prediction)."
                )
        return data[0], valid


def _check_same_grid(pred: _Raster, truth: _Raster) -> None:
    if (pred.height, pred.width) != (truth.height, truth.width):
        raise InvalidRasterError(
            f"pred {pred.path} is {pred.width} x {pred.height} px (width x height) but truth "
            f"{truth.path} is {truth.width} x {truth.height} px; they must cover the same "
            "pixel grid"
        )
    if not (pred.georeferenced and truth.georeferenced):
        return
    a, b = pred.ds.transform, truth.ds.transform
    pixel = max(abs(a.a), abs(a.e), abs(a.b), abs(a.d))
    corners = [(0, 0), (pred.width, 0), (0, pred.height), (pred.width, pred.height)]
    shift = max(
        math.hypot(xa - xb, ya - yb) for (xa, ya), (xb, yb) in ((a @ c, b @ c) for c in corners)
    )
    if shift > 0.5 * pixel:
        raise InvalidRasterError(
            f"pred {pred.path} and truth {truth.path} have the same size but different "
            f"georeferencing (corners up to {shift:.3g} map units apart, pixel size {pixel:.3g}); "
            "they do not cover the same ground. Resample one onto the other's grid first."
        )


def _truth_mask(raster: _Raster, block: NDArray[Any]) -> NDArray[np.bool_]:
    if raster.jpeg:
        # JPEG blurs a 0/255 mask into 0..255 around every edge; halfway is the sane cut.
        return np.asarray(block >= 128)
    return np.asarray(block > 0)  # NaN compares False


def evaluate_rasters(
    pred_path: str | os.PathLike[str],
    truth_path: str | os.PathLike[str],
    *,
    threshold: float = DEFAULT_THRESHOLD,
    rho: float = DEFAULT_RHO,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    progress: bool = False,
) -> EvaluationResult:
    """Evaluate a prediction raster against a truth raster, block by block.

    Neither raster is loaded whole: blocks of ``chunk_size`` pixels plus a
    halo of ``floor(rho)`` are read through rasterio windows, so memory does
    not depend on the raster's size and the result equals a whole-array
    computation. Any GDAL format works (GeoTIFF, PNG, JPEG); georeferencing is
    optional, but if both rasters have it their grids must agree.

    The prediction is one band: a probability raster as ``roadseg predict``
    writes it (uint8 with band scale 1/254, nodata 255), any uint8 raster
    (``v / 255``), a 0/1 or 0/255 mask, or float probabilities; see
    :func:`integer_level_values`. The truth is road where > 0 (where >= 128
    for JPEG, whose compression smears 0/255 masks). Nodata in either raster
    (nodata value, internal mask or alpha band; NaN for floats) is ignored,
    except a nodata value of 0: masks are often saved that way, and in a mask
    or a probability map 0 means "no road", not "unknown".
    Identical bands (an RGB rendering of a mask) count as one band.

    Args:
        pred_path: prediction raster.
        truth_path: truth road mask.
        threshold: probability at or above which a pixel is road.
        rho: relaxation tolerance in pixels.
        chunk_size: block side; results do not depend on it.
        progress: show a tqdm progress bar on stderr.

    Raises:
        InvalidRasterError: if a file is missing or unreadable, the sizes or
            grids differ, or a float prediction is outside [0, 1].
        UnsupportedRasterError: if a raster has several different bands or an
            unusable data type.
        ValueError: if ``threshold``, ``rho`` or ``chunk_size`` is invalid.
    """
    threshold = _check_threshold(threshold)
    rho = _check_rho(rho)
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")
    from roadseg.raster_io import gdal_env

    with gdal_env():
        pred = _Raster(Path(pred_path), "pred")
        try:
            truth = _Raster(Path(truth_path), "truth")
            try:
                return _evaluate_open(pred, truth, threshold, rho, chunk_size, progress)
            finally:
                truth.close()
        finally:
            pred.close()


def _evaluate_open(
    pred: _Raster, truth: _Raster, threshold: float, rho: float, chunk_size: int, progress: bool
) -> EvaluationResult:
    from tqdm import tqdm

    _check_same_grid(pred, truth)
    if pred.dtype.kind not in "uif":
        raise UnsupportedRasterError(
            f"pred {pred.path} has data type {pred.dtype}; expected uint8 or float probabilities "
            "or an integer mask"
        )
    band_scale = float(pred.ds.scales[pred.bands[0] - 1] or 1.0)
    offset = float(pred.ds.offsets[pred.bands[0] - 1] or 0.0)
    if not band_scale > 0:
        raise UnsupportedRasterError(
            f"pred {pred.path} has band scale {band_scale}; a probability scale must be > 0"
        )
    # No band scale set: infer the meaning of the values (integer_level_values).
    scale = None if band_scale == 1.0 and offset == 0.0 else band_scale
    decode = _Decoder(pred.dtype, threshold, scale, offset)
    acc = MetricsAccumulator(decode.n_levels, rho)
    chunks = list(iter_chunks(pred.height, pred.width, chunk_size, acc.halo))
    for chunk in tqdm(chunks, desc="evaluate", unit="block", disable=not progress, leave=False):
        p_block, p_valid = pred.read(chunk.rows, chunk.cols)
        t_block, t_valid = truth.read(chunk.rows, chunk.cols)
        valid = p_valid if t_valid is None else t_valid if p_valid is None else p_valid & t_valid
        try:
            levels, valid = decode(p_block, valid)
        except ValueError as exc:
            raise InvalidRasterError(f"pred {pred.path}: {exc}") from None
        acc.add(levels, _truth_mask(truth, t_block), valid, chunk.core)
    return acc.result(decode.values(acc.max_level), threshold)


def write_curve_csv(
    curve: ThresholdCurve, path: str | os.PathLike[str], *, overwrite: bool = False
) -> None:
    """Write the threshold curve as CSV (one row per threshold), atomically.

    Args:
        curve: the curve, e.g. ``EvaluationResult.curve``.
        path: the CSV file.
        overwrite: replace an existing file.

    Raises:
        OutputError: if the file exists (without ``overwrite``) or cannot be written.
    """
    from roadseg.raster_io import atomic_output, check_output

    path = check_output(path, overwrite=overwrite, what="curve CSV")
    cols = curve.columns()
    try:
        with atomic_output(path) as tmp, open(tmp, "w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(ThresholdCurve.COLUMNS)
            for row in zip(*(cols[name] for name in ThresholdCurve.COLUMNS), strict=True):
                writer.writerow([f"{v:.6g}" if isinstance(v, float) else v for v in row])
    except OSError as exc:
        raise OutputError(f"cannot write {path}: {exc.strerror or exc}") from None
