"""Probability levels: a prediction's probabilities as small integers, so one
pass of histograms gives the metrics at every threshold. Float probabilities
are binned on the grid ``k / 254`` plus the threshold (:func:`float_levels`,
:func:`quantize_probabilities`); the raw values of an integer raster are
levels themselves (:func:`integer_level_values`); :class:`Decoder` turns
blocks of any prediction into levels."""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from roadseg.encoding import PROB_SCALE

#: Probability at or above which a pixel is road unless a threshold is given.
DEFAULT_THRESHOLD = 0.5
#: Float probabilities are binned on ``k / FLOAT_STEPS``: the grid of the
#: uint8 probability rasters that ``roadseg predict`` writes (``v / 254``), and
#: 255 grid points plus one inserted threshold still fit in a uint8 level.
FLOAT_STEPS = PROB_SCALE
#: Tolerance when comparing a level's probability with the threshold, so
#: that ``127 * (1 / 254)``, which is a hair below 0.5 in floating point,
#: counts as 0.5.
THRESHOLD_TOLERANCE = 1e-9
#: Float probabilities this far outside [0, 1] are clipped, not refused.
_RANGE_TOLERANCE = 1e-6
#: The largest raw value of an integer prediction (uint16).
MAX_INTEGER_LEVEL = 65535


def float_levels(threshold: float = DEFAULT_THRESHOLD) -> NDArray[np.float64]:
    """The probability of each level used for float inputs.

    The grid ``k / 254`` (``k = 0..254``), with ``threshold`` inserted if it is
    not already on it, so the binary metrics at ``threshold`` are exact.

    Raises:
        ValueError: if ``threshold`` is not in [0, 1].
    """
    threshold = check_threshold(threshold)
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
    return v / float(MAX_INTEGER_LEVEL)


def check_threshold(threshold: float) -> float:
    """``threshold`` as a float.

    Raises:
        ValueError: if ``threshold`` is not in [0, 1].
    """
    threshold = float(threshold)
    if not 0.0 <= threshold <= 1.0:
        raise ValueError(f"threshold must be a probability in [0, 1], got {threshold}")
    return threshold


class Decoder:
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
        self.n_levels = 256 if kind in "bf" or self.dtype == np.uint8 else MAX_INTEGER_LEVEL + 1

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
        if values.size and (values.min() < 0 or values.max() > MAX_INTEGER_LEVEL):
            raise ValueError(
                f"integer predictions must be in 0..{MAX_INTEGER_LEVEL} "
                f"(found {values.min()} .. {values.max()})"
            )
        return values.astype(np.uint16), valid

    def values(self, max_level: int) -> NDArray[np.float64]:
        """The probability of each level, given the largest level seen."""
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
