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

This module is the public API; the parts live in modules of their own:

* :mod:`roadseg.metrics_types`: :class:`Counts`, :class:`ThresholdCurve`,
  :class:`EvaluationResult`;
* :mod:`roadseg.disk_filter`: the disk and its maximum filter;
* :mod:`roadseg.levels`: probabilities as integer levels;
* :mod:`roadseg.metrics_accumulator`: the histograms, curves, breakeven and
  the blocks with a halo;
* :mod:`roadseg.metrics_io`: rasters and the curve CSV (the I/O edge).
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

from roadseg.disk_filter import disk_footprint, disk_max
from roadseg.levels import (
    DEFAULT_THRESHOLD,
    FLOAT_STEPS,
    Decoder,
    check_threshold,
    float_levels,
    integer_level_values,
    quantize_probabilities,
)
from roadseg.metrics_accumulator import (
    DEFAULT_CHUNK_SIZE,
    DEFAULT_RHO,
    Chunk,
    MetricsAccumulator,
    breakeven_point,
    iter_chunks,
    pixel_counts,
)
from roadseg.metrics_io import evaluate_rasters, write_curve_csv
from roadseg.metrics_types import Counts, EvaluationResult, ThresholdCurve

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
    threshold = check_threshold(threshold)
    p = np.asarray(pred)
    t = np.asarray(truth)
    if p.ndim != 2 or p.shape != t.shape:
        raise ValueError(f"pred {p.shape} and truth {t.shape} must be 2-D with the same shape")
    va = None if valid is None else np.asarray(valid, dtype=bool)
    decode = Decoder(p.dtype, threshold, scale, offset)
    acc = MetricsAccumulator(decode.n_levels, rho)
    for chunk in iter_chunks(p.shape[0], p.shape[1], chunk_size, acc.halo):
        block_valid = None if va is None else va[chunk.rows, chunk.cols]
        levels, ok = decode(p[chunk.rows, chunk.cols], block_valid)
        acc.add(levels, t[chunk.rows, chunk.cols] > 0, ok, chunk.core)
    return acc.result(decode.values(acc.max_level), threshold)
