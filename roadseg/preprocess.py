"""Band selection, dtype handling and normalisation.

Normalisation statistics are computed once for the whole raster, never per
tile: per-tile statistics make neighbouring tiles disagree at their seams.
uint8 imagery is divided by 255; every other dtype gets a per-band robust
percentile stretch (2nd to 98th percentile) sampled from a decimated read of
the whole raster, so it costs a bounded amount of memory whatever its size.
"""

from __future__ import annotations

import functools
import os
import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import rasterio
from rasterio.enums import ColorInterp, Resampling
from rasterio.errors import RasterioError

from roadseg.errors import UnsupportedRasterError
from roadseg.raster_io import corrupt, decimated_shape, display_name

#: Longest side of the decimated read used for percentile statistics.
STATS_SAMPLE_SIDE = 1024
PERCENTILES = (2.0, 98.0)


@dataclass(frozen=True)
class Normalizer:
    """Per-band linear map to [0, 1]: ``(x - low) / (high - low)``, clipped."""

    low: tuple[float, ...]
    high: tuple[float, ...]
    method: str

    def __call__(
        self, data: np.ndarray, valid: np.ndarray | None = None, out: np.ndarray | None = None
    ) -> np.ndarray:
        """Normalise ``(..., bands)`` data to float32 in [0, 1].

        Non-finite values are set to 0 (and should be marked invalid). 64-bit
        data is stretched in float64, so values beyond float32's range (or
        its precision) do not overflow. With ``out`` (float32, the shape of
        ``data``) the result is written there and returned.
        """
        if data.dtype in _LUT_DTYPES:
            # 8- and 16-bit values index a table of their normalised values,
            # computed by the same arithmetic: half the time, the same bits.
            table = _table(self.low, self.high, self.method, data.dtype.str)
            if out is None:
                out = np.empty(data.shape, dtype=np.float32)
            for b in range(data.shape[-1]):
                # (every index is in the table, so "clip" only skips a buffered copy)
                np.take(table[b], data[..., b], out=out[..., b], mode="clip")
        else:
            result = self.stretch(data)
            if out is None:
                out = result
            else:
                out[...] = result
        if valid is not None and not valid.all():
            out[~valid] = 0.0
        return out

    def stretch(self, data: np.ndarray) -> np.ndarray:
        """``data`` (``(..., bands)``) stretched from ``low..high`` to 0..1 per band
        in float32, by arithmetic: what the lookup tables of 8- and 16-bit
        inputs hold, and what every other dtype gets. No validity mask."""
        wide = np.float64 if data.dtype.itemsize == 8 else np.float32
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
            low = np.asarray(self.low, dtype=wide)
            scale = 1.0 / np.maximum(np.asarray(self.high, dtype=wide) - low, 1e-12)
            out = (data.astype(wide, copy=False) - low) * scale
        np.clip(out, 0.0, 1.0, out=out)
        out[~np.isfinite(out)] = 0.0
        return out.astype(np.float32, copy=False)


#: Input dtypes normalised through a lookup table (every value is an index).
_LUT_DTYPES = (np.dtype(np.uint8), np.dtype(np.uint16))


@functools.lru_cache(maxsize=8)
def _table(low: tuple[float, ...], high: tuple[float, ...], method: str, dtype: str) -> np.ndarray:
    """``(bands, values)`` float32: every value of ``dtype`` normalised per band."""
    values = np.arange(np.iinfo(np.dtype(dtype)).max + 1, dtype=dtype)
    grid = np.repeat(values[:, None], len(low), axis=1)
    return np.ascontiguousarray(Normalizer(low, high, method).stretch(grid).T)


def parse_bands(text: str | None) -> tuple[int, ...] | None:
    """Parse ``"1,2,3"`` into ``(1, 2, 3)``.

    Raises:
        ValueError: if the text is not a comma-separated list of positive integers.
    """
    if text is None or not text.strip():
        return None
    try:
        bands = tuple(int(part) for part in text.split(","))
    except ValueError:
        raise ValueError(
            f"bands must be comma-separated band numbers like 1,2,3, got {text!r}"
        ) from None
    if any(b < 1 for b in bands):
        raise ValueError(f"band numbers start at 1, got {text!r}")
    return bands


def select_bands(
    src: rasterio.io.DatasetReader,
    requested: Sequence[int] | None,
    model_bands: int,
    path: str | os.PathLike[str],
) -> tuple[int, ...]:
    """Choose which raster bands feed the model.

    Without a request, a raster whose band count equals the model's is used
    as it is, and an RGBA raster (alpha band last) drops its alpha band (GDAL
    already treats alpha as the nodata mask).

    Raises:
        UnsupportedRasterError: the choice does not match the model or the raster.
    """
    name = os.fspath(path)
    if requested is not None:
        bad = [b for b in requested if b > src.count]
        if bad:
            raise UnsupportedRasterError(
                f"{name} has {src.count} band(s); --bands asks for band {bad[0]}"
            )
        if len(requested) != model_bands:
            raise UnsupportedRasterError(
                f"--bands gives {len(requested)} band(s); the model expects {model_bands}"
            )
        return tuple(requested)
    if src.count == model_bands:
        return tuple(range(1, model_bands + 1))
    interp = list(src.colorinterp)
    if src.count == model_bands + 1 and interp and interp[-1] == ColorInterp.alpha:
        return tuple(range(1, model_bands + 1))
    hint = ""
    if src.count == 1 and model_bands == 3:
        hint = " Use --bands 1,1,1 to repeat the single band."
    elif src.count > model_bands:
        first = ",".join(str(i) for i in range(1, model_bands + 1))
        hint = f" Choose {model_bands} with --bands, e.g. --bands {first}."
    else:
        hint = f" Repeat bands with --bands, e.g. --bands {','.join(['1'] * model_bands)}."
    if src.count == 1 and src.colorinterp and src.colorinterp[0] == ColorInterp.palette:
        hint = (
            " It is a palette (colour-table) image; expand it first with "
            "gdal_translate -expand rgb in.tif rgb.tif."
        )
    raise UnsupportedRasterError(
        f"{name} has {src.count} band(s); the model expects {model_bands}.{hint}"
    )


#: How training may turn pixels into model inputs (recorded in the model file):
#: ``auto`` divides uint8 by 255 and stretches other dtypes; ``percentile`` stretches
#: every dtype, uint8 included, so brightness, contrast and colour balance of a
#: sensor do not reach the model.
NORMALIZATIONS = ("auto", "percentile")


def compute_normalizer(
    src: rasterio.io.DatasetReader,
    bands: Sequence[int],
    method: str = "auto",
) -> Normalizer:
    """Normalisation for the whole raster, from a decimated sample.

    Args:
        src: open raster.
        bands: the bands that feed the model.
        method: ``"auto"`` (uint8: /255, else percentile stretch), ``"unit"``
            (/255 whatever the dtype) or ``"percentile"``.

    Raises:
        UnsupportedRasterError: if the method is unknown.
        InvalidRasterError: the pixels cannot be read (corrupt or truncated).
    """
    dtype = src.dtypes[bands[0] - 1]
    if method == "unit" or (method == "auto" and dtype == "uint8"):
        n = len(bands)
        return Normalizer((0.0,) * n, (255.0,) * n, "uint8/255")
    if method not in ("auto", "percentile"):
        raise UnsupportedRasterError(f"unknown normalisation {method!r} in the model file")
    out_h, out_w = decimated_shape(src.height, src.width, STATS_SAMPLE_SIDE)
    unique = sorted(set(bands))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            sample = src.read(
                unique,
                out_shape=(len(unique), out_h, out_w),
                resampling=Resampling.nearest,
                masked=True,
            )
        except (RasterioError, OSError) as exc:
            raise corrupt(display_name(src), exc) from None
    lows: list[float] = []
    highs: list[float] = []
    for b in bands:
        band = sample[unique.index(b)]
        with np.errstate(invalid="ignore"):  # signalling NaNs (corrupt data) warn on cast
            values = np.asarray(band.compressed(), dtype=np.float64)
        values = values[np.isfinite(values)]
        if values.size == 0:
            lows.append(0.0)
            highs.append(1.0)
            continue
        with np.errstate(over="ignore", invalid="ignore"):
            lo, hi = np.percentile(values, PERCENTILES)
        if not (np.isfinite(lo) and np.isfinite(hi)):  # a range wider than float64 holds
            lo, hi = values.min(), values.max()
        if hi <= lo:  # a constant band: map it to mid-grey rather than divide by 0
            lo, hi = lo - 1.0, lo + 1.0
        lows.append(float(lo))
        highs.append(float(hi))
    return Normalizer(
        tuple(lows), tuple(highs), f"percentile {PERCENTILES[0]:g}-{PERCENTILES[1]:g}"
    )
