"""Counting road pixels for the pixel metrics: :class:`MetricsAccumulator`
keeps the histograms of prediction levels by truth class, block by block,
and turns them into threshold curves and results; :func:`breakeven_point`,
:func:`pixel_counts`, and the square blocks with a halo that large inputs
are counted in (:func:`iter_chunks`)."""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import NamedTuple

import numpy as np
from numpy.typing import ArrayLike, NDArray

from roadseg.disk_filter import check_rho, disk_max, half_widths
from roadseg.levels import (
    DEFAULT_THRESHOLD,
    MAX_INTEGER_LEVEL,
    THRESHOLD_TOLERANCE,
    check_threshold,
)
from roadseg.metrics_types import Counts, EvaluationResult, ThresholdCurve

#: The tolerance of the relaxed metrics in the ResUNet paper, in pixels.
DEFAULT_RHO = 3.0
#: Side of the square blocks read at a time (plus halo). About 4 Mpx: a few
#: tens of MB of temporaries, large enough that per-block overhead is noise.
DEFAULT_CHUNK_SIZE = 2048


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
        if not 2 <= n_levels <= MAX_INTEGER_LEVEL + 1:
            raise ValueError(f"n_levels must be in [2, 65536], got {n_levels}")
        self.n_levels = int(n_levels)
        self.rho = check_rho(rho)
        self.halo = len(half_widths(self.rho)) - 1
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
        keep = vals <= 1.0 + THRESHOLD_TOLERANCE
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
        threshold = check_threshold(threshold)
        vals = self._check_values(values)
        curve = self.curve(vals)
        # The first level whose probability reaches the threshold. If none does,
        # nothing is predicted.
        k = int(np.searchsorted(vals, threshold - THRESHOLD_TOLERANCE, side="left"))
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
