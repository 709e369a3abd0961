"""Pixel metrics of rasters, the I/O edge of the metrics (rasterio is imported
here only): :func:`evaluate_rasters` reads a prediction and a truth raster
block by block with a halo; :func:`write_curve_csv` writes a threshold
curve."""

from __future__ import annotations

import csv
import math
import os
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import NDArray

from roadseg.disk_filter import check_rho
from roadseg.errors import (
    InvalidRasterError,
    OutputError,
    UnsupportedRasterError,
)
from roadseg.levels import DEFAULT_THRESHOLD, Decoder, check_threshold
from roadseg.metrics_accumulator import (
    DEFAULT_CHUNK_SIZE,
    DEFAULT_RHO,
    MetricsAccumulator,
    iter_chunks,
)
from roadseg.metrics_types import EvaluationResult, ThresholdCurve

if TYPE_CHECKING:  # pragma: no cover
    from rasterio.io import DatasetReader


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
    threshold = check_threshold(threshold)
    rho = check_rho(rho)
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
    decode = Decoder(pred.dtype, threshold, scale, offset)
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
