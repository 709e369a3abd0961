"""Running a model at the ground sample distance (GSD) it was trained at.

A network trained on 1 m imagery has learnt roads a few pixels wide; shown
0.3 m imagery, it sees roads three times wider than any it knows. When both
the model's training GSD (:attr:`roadseg.model.ModelInfo.gsd`) and the
input's are known and differ by more than :data:`GSD_TOLERANCE`,
:func:`predict_at_model_gsd` reads the input resampled on the fly to the
model's GSD, predicts there, and writes the results back on the input's own
grid (same size, transform and CRS), so nothing downstream can tell.

How, with bounded memory throughout:

1. a VRT describes the input at the model's GSD (GDAL's bilinear
   resampling, which widens its kernel when going coarser so it does not
   alias, and skips nodata); nothing is written but a little XML;
2. :func:`roadseg.predict.predict_raster` streams over that VRT into a
   temporary float32 probability raster (float, so the probabilities are
   quantised once, at the end);
3. strips of the input's grid are interpolated bilinearly from that raster
   (nodata-aware) and written exactly as ``predict_raster`` writes its own
   output: uint8 x 254 or float, mask, preview, tags, cloud-optimized.

A pixel that is nodata in the input is nodata in every output.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import math
import os
import tempfile
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple
from xml.sax.saxutils import escape

import numpy as np
import rasterio
from affine import Affine
from rasterio.enums import MaskFlags
from rasterio.errors import NotGeoreferencedWarning, RasterioError
from rasterio.windows import Window

from roadseg import encoding as enc
from roadseg.errors import RoadsegError, UnsupportedRasterError
from roadseg.geo import pixel_size_on_ground
from roadseg.model import LoadedModel
from roadseg.predict import PredictOptions, PredictResult, predict_raster
from roadseg.preprocess import compute_normalizer, select_bands
from roadseg.preview import write_preview
from roadseg.raster_io import (
    atomic_output,
    check_dtype,
    check_output,
    corrupt,
    display_name,
    gdal_env,
    is_palette,
    maybe_atomic_output,
    open_raster,
)
from roadseg.writer import raw_outputs

log = logging.getLogger(__name__)

#: Relative GSD difference below which the input is read as it is: 5 % is
#: well inside the scale augmentation a model is trained with.
GSD_TOLERANCE = 0.05

#: Largest enlargement per side. Imagery much coarser than the training data
#: has lost the roads the model looks for; inventing pixels does not bring
#: them back, and a 4x enlargement already makes 16x the pixels.
MAX_UPSAMPLE = 4.0

#: Rows of the input's grid written per step of the write-back (one block row).
STRIP_ROWS = 256

_GDAL_TYPES = {
    "uint8": "Byte",
    "int8": "Int8",
    "uint16": "UInt16",
    "int16": "Int16",
    "uint32": "UInt32",
    "int32": "Int32",
    "uint64": "UInt64",
    "int64": "Int64",
    "float32": "Float32",
    "float64": "Float64",
}


# --------------------------------------------------------------------------- GSD


def input_pixel_size(
    src: rasterio.io.DatasetReader, stated: float | None = None
) -> tuple[float, float] | None:
    """The input's pixel size on the ground, ``(x, y)`` in metres, if known.

    Args:
        src: the open input raster.
        stated: a GSD the user gave (``--gsd``), for square pixels. It wins
            over the georeferencing, with a warning when the two differ by
            more than :data:`GSD_TOLERANCE`: the user may know better (a
            mis-scaled transform, a CRS whose units are not ground metres).

    Returns:
        Metres per pixel along x and y, or None when the raster is not
        georeferenced and nothing was stated.

    Raises:
        RoadsegError: ``stated`` is not a positive number.
    """
    if stated is not None and not (math.isfinite(stated) and stated > 0):
        raise RoadsegError(f"a ground sample distance must be positive metres, got {stated}")
    size = pixel_size_on_ground(src)
    if size is not None and not min(size) > 0:
        size = None
    if stated is None:
        return size
    if size is not None and _differs(stated, math.sqrt(size[0] * size[1])):
        log.warning(
            "%s: the stated GSD %g m overrides its georeferencing, which gives %s",
            Path(display_name(src)).name,
            stated,
            describe_size(size),
        )
    return float(stated), float(stated)


def input_gsd(src: rasterio.io.DatasetReader, stated: float | None = None) -> float | None:
    """The input's ground sample distance in metres per pixel, if known.

    Non-square pixels are summarised by the geometric mean of their sides
    (the side of a square pixel of the same area); see
    :func:`input_pixel_size` for the arguments and errors.
    """
    size = input_pixel_size(src, stated)
    return None if size is None else math.sqrt(size[0] * size[1])


def describe_size(size: tuple[float, float]) -> str:
    """``"0.5 m"``, or ``"0.558 x 1.11 m"`` for non-square pixels."""
    if not _differs(size[0], size[1]):
        return f"{math.sqrt(size[0] * size[1]):.3g} m"
    return f"{size[0]:.3g} x {size[1]:.3g} m"


def _differs(a: float, b: float, tolerance: float = GSD_TOLERANCE) -> bool:
    return abs(a / b - 1.0) > tolerance


# --------------------------------------------------------------------------- plan


@dataclass(frozen=True)
class GsdPlan:
    """Whether, and how, an input is resampled to the model's GSD.

    Attributes:
        input_size: the input's pixel size ``(x, y)`` in metres, if known.
        model_gsd: metres per pixel of the model's training data, if known.
        resample: read the input at ``model_gsd``.
        message: one line saying what is done and why, for the log.
    """

    input_size: tuple[float, float] | None
    model_gsd: float | None
    resample: bool
    message: str

    @property
    def input_gsd(self) -> float | None:
        """The input's GSD: the geometric mean of its pixel's sides."""
        if self.input_size is None:
            return None
        return math.sqrt(self.input_size[0] * self.input_size[1])

    @property
    def factors(self) -> tuple[float, float]:
        """Model-grid pixels per input pixel along x and y (< 1: coarser).

        Each axis is scaled on its own, so non-square input pixels (common
        in EPSG:4326 away from the equator) become square ones.
        """
        if self.input_size is None or self.model_gsd is None:
            return 1.0, 1.0
        return self.input_size[0] / self.model_gsd, self.input_size[1] / self.model_gsd


def plan_gsd(
    input_size: float | tuple[float, float] | None,
    model_gsd: float | None,
    *,
    enabled: bool = True,
    tolerance: float = GSD_TOLERANCE,
    name: str = "the input",
) -> GsdPlan:
    """Decide whether to resample: only when both GSDs are known and differ.

    Args:
        input_size: the input's GSD, or its pixel size ``(x, y)``, in metres.
        model_gsd: the model's training GSD in metres.
        enabled: False never resamples (``--no-resample``).
        tolerance: relative difference (along either axis) that is ignored.
        name: the input, for the message.

    Raises:
        UnsupportedRasterError: the input is more than :data:`MAX_UPSAMPLE`
            times coarser than the model's training data.
    """
    size = (input_size, input_size) if isinstance(input_size, int | float) else input_size
    size = None if size is None else (float(size[0]), float(size[1]))
    if model_gsd is None:
        return GsdPlan(size, None, False, "the model records no training GSD; input read as it is")
    if size is None:
        return GsdPlan(
            None,
            model_gsd,
            False,
            f"{name} has no georeferencing to tell its GSD, so it is read as it is; the model "
            f"was trained at {model_gsd:g} m. Pass --gsd METRES to resample it to match",
        )
    text = describe_size(size)
    if not any(_differs(side, model_gsd, tolerance) for side in size):
        return GsdPlan(
            size,
            model_gsd,
            False,
            f"{name} is {text} per pixel, within {tolerance:.0%} of the model's "
            f"{model_gsd:g} m; read as it is",
        )
    if not enabled:
        return GsdPlan(
            size,
            model_gsd,
            False,
            f"{name} is {text} per pixel and the model was trained at "
            f"{model_gsd:g} m; read as it is (--no-resample)",
        )
    if max(size) / model_gsd > MAX_UPSAMPLE:
        raise UnsupportedRasterError(
            f"{name} is {text} per pixel but the model was trained at "
            f"{model_gsd:g} m: matching it would enlarge the image "
            f"{max(size) / model_gsd:.1f}x per side (at most {MAX_UPSAMPLE:g}x), and roads "
            "narrower than a pixel cannot be recovered. Use finer imagery, a model trained "
            "at this resolution, or --no-resample to run as it is"
        )
    return GsdPlan(
        size,
        model_gsd,
        True,
        f"resampling {name} from {text} to the model's {model_gsd:g} m per pixel; "
        "results are written on the input's grid",
    )


def model_grid_shape(width: int, height: int, factors: tuple[float, float]) -> tuple[int, int]:
    """``(width, height)`` of the input's extent at ``factors`` (x, y) pixels per input pixel.

    The model grid covers exactly the input's extent, so its pixels differ
    from the model's GSD by less than one pixel over the whole side.
    """
    return max(1, round(width * factors[0])), max(1, round(height * factors[1]))


# --------------------------------------------------------------------------- VRT


def write_resampled_vrt(
    src: rasterio.io.DatasetReader,
    source: Path,
    vrt_path: Path,
    width: int,
    height: int,
    window: tuple[int, int, int, int] | None = None,
) -> None:
    """Describe ``source`` (or its ``window``: column and row offsets, width and
    height in source pixels) resampled to ``width`` x ``height`` as a VRT file.

    The VRT covers the same extent (the window's), CRS and bands (colour interpretation,
    nodata, colour table, dataset mask) as the source. GDAL resamples it
    bilinearly, skipping nodata; going coarser, GDAL widens the kernel by the
    scale factor, so it filters like an average without aliasing. Not
    ``average`` itself: in GDAL 3.10 a VRT source with ``resampling="average"``
    returns rows of zeros for some windows (any axis enlarged, and some
    non-integer reductions), and ``predict_raster`` reads by windows.
    Palette images are sampled by nearest neighbour, since interpolating
    colour-table indices would make up colours.
    """
    palette = is_palette(src)
    method = "nearest" if palette else "bilinear"
    path = escape(str(source.resolve()))
    c0, r0, w0, h0 = window if window is not None else (0, 0, src.width, src.height)
    rects = (
        f'<SrcRect xOff="{c0}" yOff="{r0}" xSize="{w0}" ySize="{h0}"/>'
        f'<DstRect xOff="0" yOff="0" xSize="{width}" ySize="{height}"/>'
    )

    def simple_source(band: str) -> str:
        return (
            f'<SimpleSource resampling="{method}">'
            f'<SourceFilename relativeToVRT="0">{path}</SourceFilename>'
            f"<SourceBand>{band}</SourceBand>{rects}</SimpleSource>"
        )

    parts = [f'<VRTDataset rasterXSize="{width}" rasterYSize="{height}">']
    if src.crs:
        parts.append(f"<SRS>{escape(src.crs.to_wkt())}</SRS>")
    if not src.transform.is_identity:
        t = src.transform @ Affine.translation(c0, r0) @ Affine.scale(w0 / width, h0 / height)
        parts.append(
            "<GeoTransform>" + ", ".join(repr(float(v)) for v in t.to_gdal()) + "</GeoTransform>"
        )
    for bidx in range(1, src.count + 1):
        dtype = _GDAL_TYPES.get(src.dtypes[bidx - 1], "Float64")
        interp = src.colorinterp[bidx - 1].name.capitalize()
        band = [f'<VRTRasterBand dataType="{dtype}" band="{bidx}">']
        band.append(f"<ColorInterp>{interp}</ColorInterp>")
        nodata = src.nodatavals[bidx - 1]
        if nodata is not None:
            band.append(f"<NoDataValue>{_nodata_text(nodata)}</NoDataValue>")
        if palette:
            entries = "".join(
                f'<Entry c1="{r}" c2="{g}" c3="{b}" c4="{a}"/>'
                for _, (r, g, b, a) in sorted(src.colormap(1).items())
            )
            band.append(f"<ColorTable>{entries}</ColorTable>")
        band.append(simple_source(str(bidx)))
        band.append("</VRTRasterBand>")
        parts.append("".join(band))
    flags = src.mask_flag_enums[0]
    if MaskFlags.per_dataset in flags and MaskFlags.alpha not in flags:
        # An internal mask (no nodata value, no alpha band): carry it over.
        parts.append(f'<MaskBand><VRTRasterBand dataType="Byte">{simple_source("mask,1")}')
        parts.append("</VRTRasterBand></MaskBand>")
    parts.append("</VRTDataset>")
    vrt_path.write_text("".join(parts), encoding="utf-8")


def _nodata_text(value: float) -> str:
    if math.isnan(value):
        return "nan"
    return repr(int(value)) if float(value).is_integer() else repr(float(value))


# --------------------------------------------------------------------------- write-back


class Taps(NamedTuple):
    """Bilinear interpolation taps along one axis: neighbours and weight of the second."""

    lo: np.ndarray
    hi: np.ndarray
    frac: np.ndarray


def bilinear_taps(start: int, stop: int, out_size: int, in_size: int) -> Taps:
    """Taps for output pixels ``start..stop`` of an axis of ``out_size`` pixels
    resampled from ``in_size`` pixels over the same extent.

    Pixel centres are at +0.5 on both grids; beyond the outermost input
    centres the edge value is repeated (as GDAL does).
    """
    x = (np.arange(start, stop, dtype=np.float64) + 0.5) * (in_size / out_size) - 0.5
    x = np.clip(x, 0.0, in_size - 1)
    lo = np.floor(x).astype(np.intp)
    hi = np.minimum(lo + 1, in_size - 1)
    return Taps(lo, hi, (x - lo).astype(np.float32))


def interpolate(
    values: np.ndarray, valid: np.ndarray, rows: Taps, cols: Taps
) -> tuple[np.ndarray, np.ndarray]:
    """Bilinear interpolation that ignores invalid pixels.

    Values and validity are interpolated alike and divided, so a nodata
    neighbour gives its weight to the valid ones instead of dragging the
    result towards the nodata value.

    Args:
        values: ``(h, w)`` source values; row taps index its rows.
        valid: ``(h, w)`` boolean validity of ``values``.
        rows: taps along the rows (into ``values``' rows).
        cols: taps along the columns.

    Returns:
        ``(result, result_valid)`` of shape ``(len(rows.lo), len(cols.lo))``;
        a result pixel is valid when any of its neighbours with weight is.
    """
    weight = valid.astype(np.float32)
    data = np.where(valid, values, 0.0).astype(np.float32)
    fr = rows.frac[:, None]
    fc = cols.frac[None, :]

    def along(a: np.ndarray) -> np.ndarray:
        a = a[rows.lo] * (1.0 - fr) + a[rows.hi] * fr
        return a[:, cols.lo] * (1.0 - fc) + a[:, cols.hi] * fc

    num, den = along(data), along(weight)
    ok = den > 1e-6
    out = np.divide(num, den, out=np.zeros_like(num), where=ok)
    return out, ok


def _input_valid(
    src: rasterio.io.DatasetReader, window: Window, bands: tuple[int, ...]
) -> np.ndarray:
    """Validity of the input's pixels as ``predict_raster`` judges it: the masks
    of the used bands, and finite values for float data."""
    unique = sorted(set(bands))
    try:
        valid = np.all(src.read_masks(unique, window=window) > 0, axis=0)
        if np.dtype(src.dtypes[unique[0] - 1]).kind == "f":
            valid &= np.all(np.isfinite(src.read(unique, window=window)), axis=0)
    except (RasterioError, OSError) as exc:
        raise corrupt(display_name(src), exc) from None
    return valid


def _strips(
    src: rasterio.io.DatasetReader, grid: rasterio.io.DatasetReader
) -> Iterator[tuple[int, int, np.ndarray, np.ndarray]]:
    """Rows ``(top, bottom)`` of the input's grid with their interpolated
    probability and its validity, one strip of :data:`STRIP_ROWS` at a time."""
    cols = bilinear_taps(0, src.width, src.width, grid.width)
    for top in range(0, src.height, STRIP_ROWS):
        bottom = min(top + STRIP_ROWS, src.height)
        rows = bilinear_taps(top, bottom, src.height, grid.height)
        g0, g1 = int(rows.lo.min()), int(rows.hi.max()) + 1
        window = Window(0, g0, grid.width, g1 - g0)
        prob = grid.read(1, window=window)
        ok = grid.read_masks(1, window=window) > 0
        local = Taps(rows.lo - g0, rows.hi - g0, rows.frac)
        out, out_ok = interpolate(prob, ok, local, cols)
        yield top, bottom, out, out_ok


def write_back(
    src: rasterio.io.DatasetReader,
    grid_path: Path,
    bands: tuple[int, ...],
    tmp_out: Path,
    tmp_mask: Path | None,
    threshold: float,
    as_float: bool,
    tags: dict[str, str],
) -> None:
    """Write probabilities from the model grid onto the input's grid.

    The outputs are encoded by ``predict_raster``'s own writer, so they match
    its outputs in every respect but the values.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NotGeoreferencedWarning)
        grid = rasterio.open(grid_path)
    with (
        grid,
        raw_outputs(
            src,
            tmp_out,
            tmp_mask,
            threshold=threshold,
            as_float=as_float,
            tags=tags,
            block=STRIP_ROWS,
        ) as writer,
    ):
        for top, bottom, prob, ok in _strips(src, grid):
            window = Window(0, top, src.width, bottom - top)
            writer.add(prob, ok & _input_valid(src, window, bands))
        writer.close()


# --------------------------------------------------------------------------- entry point


def predict_at_model_gsd(
    input_path: str | os.PathLike[str],
    output_path: str | os.PathLike[str],
    model: LoadedModel,
    options: PredictOptions | None = None,
    *,
    gsd: float | None = None,
    resample: bool = True,
    infer_fn: Callable[[np.ndarray], np.ndarray] | None = None,
) -> PredictResult:
    """:func:`roadseg.predict.predict_raster`, reading the input at the model's GSD.

    When the model records its training GSD and the input's is known (from
    its georeferencing, or ``gsd``) and they differ by more than
    :data:`GSD_TOLERANCE`, the model sees the input resampled to its GSD and
    the results are written back on the input's grid (see the module
    docstring). Otherwise this is exactly ``predict_raster``. One line is
    logged saying which (a warning when the model's GSD is known but the
    input's is not).

    Args:
        input_path: any GDAL raster.
        output_path: the probability GeoTIFF to write.
        model: a loaded model.
        options: as for ``predict_raster`` (default: its defaults).
        gsd: the input's GSD in metres, overriding its georeferencing.
        resample: False reads the input as it is, whatever the GSDs.
        infer_fn: replaces the network (tests).

    Returns:
        The :class:`roadseg.predict.PredictResult`; after resampling its tags
        (also written to the files) include ``ROADSEG_INPUT_GSD`` and
        ``ROADSEG_RESAMPLED_GSD`` (the model's GSD the input was read at).

    Raises:
        RoadsegError: ``gsd`` is not positive; the input is far coarser than
            the model's GSD (:data:`MAX_UPSAMPLE`); and everything
            ``predict_raster`` raises.
    """
    started = time.perf_counter()
    options = PredictOptions() if options is None else options
    input_path, output_path = Path(input_path), Path(output_path)
    model_gsd = model.info.gsd
    with gdal_env(), open_raster(input_path) as src:
        measured = input_pixel_size(src, gsd)
    plan = plan_gsd(measured, model_gsd, enabled=resample, name=input_path.name)
    if gsd is not None and model_gsd is None:
        log.warning(
            "the model records no training GSD, so --gsd %g has no effect; "
            "retrain with roadseg train --gsd to record one",
            gsd,
        )
    elif model_gsd is not None and measured is None:
        log.warning("%s", plan.message)
    else:
        log.info("%s", plan.message)
    if not plan.resample:
        return predict_raster(input_path, output_path, model, options, infer_fn=infer_fn)
    return _predict_resampled(input_path, output_path, model, options, plan, infer_fn, started)


def _predict_resampled(
    input_path: Path,
    output_path: Path,
    model: LoadedModel,
    options: PredictOptions,
    plan: GsdPlan,
    infer_fn: Callable[[np.ndarray], np.ndarray] | None,
    started: float,
) -> PredictResult:
    outputs = [(output_path, "output")]
    if options.mask_path is not None:
        outputs.append((Path(options.mask_path), "mask"))
    if options.preview_path is not None:
        outputs.append((Path(options.preview_path), "preview"))
    if len({p.resolve() for p, _ in outputs}) != len(outputs):
        raise RoadsegError("the output, mask and preview paths must differ")
    for path, what in outputs:
        check_output(path, overwrite=options.overwrite, inputs=(input_path,), what=what)

    with gdal_env(), open_raster(input_path, expand_palette=True) as src:
        # Checked on the input itself, so messages name the user's file, not the VRT.
        check_dtype(src, input_path)
        bands = select_bands(src, options.bands, model.info.bands, input_path)

    # The intermediate files live beside the output: the model grid can be
    # large, and /tmp is often a small RAM disk.
    with tempfile.TemporaryDirectory(
        prefix=f".{output_path.stem}.resample.", dir=output_path.parent
    ) as tmp:
        folder = Path(tmp)
        vrt = folder / f"{input_path.stem}@{plan.model_gsd:g}m.vrt"
        with gdal_env(), open_raster(input_path) as src:
            width, height = model_grid_shape(src.width, src.height, plan.factors)
            write_resampled_vrt(src, input_path, vrt, width, height)
        inner = dataclasses.replace(
            options,
            as_float=True,  # quantise once, on the input's grid
            mask_path=None,
            preview_path=None,
            overwrite=True,
            **_no_resume(options),
        )
        grid_path = folder / "model_grid.tif"
        with _renamed_in_log(vrt.name, input_path.name):
            result = predict_raster(vrt, grid_path, model, inner, infer_fn=infer_fn)
        tags = {
            **result.tags,
            enc.TAG_INPUT_GSD: f"{plan.input_gsd:.6g}",
            enc.TAG_RESAMPLED_GSD: f"{plan.model_gsd:g}",
            enc.TAG_VALUE: enc.probability_value(options.as_float),
        }
        with (
            gdal_env(),
            open_raster(input_path, expand_palette=True) as src,
            atomic_output(output_path, overwrite=options.overwrite) as tmp_out,
            maybe_atomic_output(options.mask_path, options.overwrite) as tmp_mask,
            maybe_atomic_output(options.preview_path, options.overwrite) as tmp_preview,
        ):
            write_back(
                src, grid_path, bands, tmp_out, tmp_mask, result.threshold, options.as_float, tags
            )
            if tmp_preview is not None:
                normalizer = options.normalizer or compute_normalizer(
                    src, bands, model.info.normalization
                )
                write_preview(src, bands, normalizer, tmp_out, tmp_preview)
    return PredictResult(
        output=output_path,
        mask=options.mask_path,
        preview=options.preview_path,
        tiles=result.tiles,
        seconds=time.perf_counter() - started,
        model_seconds=result.model_seconds,
        threshold=result.threshold,
        tags=tags,
    )


class _RenameFilter(logging.Filter):
    """Rewrites a file name in log records' arguments."""

    def __init__(self, old: str, new: str) -> None:
        super().__init__()
        self.old, self.new = old, new

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(self.new if a == self.old else a for a in record.args)
        return True


@contextlib.contextmanager
def _renamed_in_log(old: str, new: str) -> Iterator[None]:
    """Warnings of ``predict_raster`` about the VRT name the user's file instead."""
    logger = logging.getLogger("roadseg.predict")
    rename = _RenameFilter(old, new)
    logger.addFilter(rename)
    try:
        yield
    finally:
        logger.removeFilter(rename)


def _no_resume(options: PredictOptions) -> dict[str, Any]:
    """Switch off a resume journal for the intermediate run, if predict has one:
    its output lives in a fresh temporary folder, so there is nothing to resume."""
    names = {f.name for f in dataclasses.fields(options)}
    return {"resume": False} if "resume" in names else {}
