"""Where road values come from: :class:`RoadSource` (the protocol),
:class:`ArraySource` (an in-memory array) and :class:`RasterSource` (a rasterio
dataset, its kind found from its tags and values), and :class:`SourceSpec` (how a
Dask worker opens the raster again)."""

from __future__ import annotations

import contextlib
import math
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Protocol

import numpy as np
from affine import Affine

from roadseg import encoding as enc
from roadseg.errors import UnsupportedRasterError

#: What a road raster holds.

RasterKind = Literal["mask", "probability"]


class RoadSource(Protocol):
    """A single-band road raster read window by window as float32 in [0, 1].

    Masks read as 0.0 / 1.0; nodata reads as NaN.
    """

    height: int
    width: int
    transform: Affine
    crs: Any
    kind: RasterKind
    default_threshold: float | None

    def read(self, row0: int, row1: int, col0: int, col1: int) -> np.ndarray: ...


class ArraySource:
    """An in-memory mask or probability array as a :class:`RoadSource`.

    Args:
        values: 2-D array. bool or integer arrays are masks (non-zero = road);
            float arrays are probabilities in [0, 1] (NaN = nodata).
        transform: affine transform of the grid (default: pixel space).
        crs: anything rasterio's ``CRS.from_user_input`` accepts, or None.
        nodata: value that marks missing pixels.
        kind: force "mask" or "probability".

    Raises:
        UnsupportedRasterError: not 2-D, or probabilities outside [0, 1].
    """

    def __init__(
        self,
        values: np.ndarray,
        transform: Affine | None = None,
        crs: Any = None,
        *,
        nodata: float | None = None,
        kind: RasterKind | None = None,
    ) -> None:
        if values.ndim != 2:
            raise UnsupportedRasterError(
                f"a road mask is a 2-D array; got an array of shape {values.shape}"
            )
        self.values = values
        self.height, self.width = values.shape
        self.transform = transform or Affine.identity()
        self.crs = _as_crs(crs)
        self.nodata = nodata
        self.kind: RasterKind = kind or (
            "probability" if np.issubdtype(values.dtype, np.floating) else "mask"
        )
        self.default_threshold: float | None = None

    def read(self, row0: int, row1: int, col0: int, col1: int) -> np.ndarray:
        block = self.values[row0:row1, col0:col1]
        invalid = np.zeros(block.shape, bool)
        if self.nodata is not None:
            invalid |= block == self.nodata
        if self.kind == "mask":
            out = (block != 0).astype(np.float32)
        else:
            out = block.astype(np.float32)
            invalid |= np.isnan(out)
            bad = ~invalid & ((out < 0) | (out > 1))
            if bad.any():
                raise UnsupportedRasterError(
                    f"probabilities must lie in [0, 1]; found {float(out[bad][0]):g}"
                )
        out[invalid] = np.nan
        return out


def _as_crs(crs: Any) -> Any:
    if crs is None:
        return None
    from rasterio.crs import CRS

    return crs if isinstance(crs, CRS) else CRS.from_user_input(crs)


@dataclass(frozen=True)
class SourceSpec:
    """A road raster as a Dask worker opens it (see :meth:`RasterSource.spec`)."""

    path: str
    name: str
    kind: RasterKind
    scale: float
    nodata: float | None

    @contextlib.contextmanager
    def open(self) -> Iterator[RasterSource]:
        from roadseg.raster_io import gdal_env, open_raster

        with gdal_env(), open_raster(self.path) as ds:
            yield RasterSource(ds, self.name, known=self)


class RasterSource:
    """A rasterio dataset as a :class:`RoadSource`, its kind found from its contents.

    How the kind is decided, in order:

    * ``ROADSEG_VALUE`` tag (``roadseg predict`` writes it): probability or mask.
    * float rasters are probabilities (values outside [0, 1] are refused).
    * integer rasters whose valid pixels hold at most two values, one of them 0,
      are masks (0/1, 0/255, ...): non-zero is road.
    * other uint8 rasters are probabilities scaled by the band's scale factor when
      it is set, else by 1/255.

    Raises:
        UnsupportedRasterError: more than one band, or values that are neither a
            mask nor a probability.
    """

    def __init__(
        self, dataset: Any, name: str | None = None, *, known: SourceSpec | None = None
    ) -> None:
        self.ds = dataset
        self.name = name or Path(str(dataset.name)).name
        if dataset.count != 1:
            raise UnsupportedRasterError(
                f"{self.name} has {dataset.count} bands; vectorize needs a single-band road "
                "mask or road probability raster (the output of roadseg predict, or one band "
                "cut with gdal_translate -b 1)"
            )
        self.height = dataset.height
        self.width = dataset.width
        self.transform = dataset.transform
        self.crs = dataset.crs if dataset.crs else None
        self.dtype = np.dtype(dataset.dtypes[0])
        if self.dtype.kind not in "uif" or self.dtype.itemsize > 8:
            raise UnsupportedRasterError(
                f"{self.name} has pixel type {self.dtype}; a road mask or probability raster "
                "is an integer or float raster"
            )
        self.nodata = dataset.nodata
        tags = dataset.tags()
        self.tags = enc.roadseg_tags(tags)
        self.default_threshold = None
        with contextlib.suppress(KeyError, ValueError):
            self.default_threshold = float(tags[enc.TAG_THRESHOLD])
        self.scale = 1.0
        tagged = enc.value_kind(tags)
        if known is not None:  # decided already (on the client, for a Dask worker)
            self.kind: RasterKind = known.kind
            self.scale, self.nodata = known.scale, known.nodata
        elif tagged == "probability":
            self.kind = "probability"
            if self.dtype.kind in "ui":
                band_scale = float(dataset.scales[0] or 1.0)
                self.scale = band_scale if band_scale != 1.0 else 1.0 / enc.PROB_SCALE
        elif tagged == "mask":
            self.kind = "mask"
        elif self.dtype.kind == "f":
            self.kind = "probability"
        else:
            self.kind = self._sniff()

    def spec(self) -> SourceSpec:
        """How a Dask worker opens this raster again: its absolute path and the kind,
        scale and nodata decided here (so that no worker sniffs the file again)."""
        return SourceSpec(
            os.path.abspath(str(self.ds.name)), self.name, self.kind, self.scale, self.nodata
        )

    def _read(self, window: Any) -> np.ndarray:
        """Band 1 in ``window``; a damaged block becomes a one-line error."""
        from rasterio.errors import RasterioError

        from roadseg.raster_io import corrupt

        try:
            return self.ds.read(1, window=window)
        except (RasterioError, OSError) as exc:
            raise corrupt(self.name, exc) from None

    def _sniff(self) -> RasterKind:
        """Mask or probability, from the distinct values of an integer raster."""
        seen: set[int] = set()
        for _, window in self.ds.block_windows(1):
            block = self._read(window)
            if self.nodata is not None:
                block = block[block != self.nodata]
            if self.dtype == np.uint8:
                counts = np.bincount(block.ravel(), minlength=256)
                seen.update(np.flatnonzero(counts).tolist())
            else:
                seen.update(np.unique(block).tolist()[:3])
            if len(seen) > 3:
                break
        if len(seen) <= 1 or (len(seen) == 2 and 0 in seen):
            return "mask"
        if self.dtype == np.uint8 and seen == {0, 1, 255} and self.nodata is None:
            # roadseg predict's mask convention (1 road, 0 not, 255 nodata) without
            # the nodata tag.
            self.nodata = 255
            return "mask"
        band_scale = float(self.ds.scales[0] or 1.0)
        if self.dtype == np.uint8 or band_scale != 1.0:
            self.scale = band_scale if band_scale != 1.0 else 1.0 / 255.0
            return "probability"
        raise UnsupportedRasterError(
            f"{self.name} holds integer values {sorted(seen)[:3]}...; that is neither a road "
            "mask (0 and one other value) nor a probability raster (uint8 or float in 0..1)"
        )

    def read(self, row0: int, row1: int, col0: int, col1: int) -> np.ndarray:
        from rasterio.windows import Window

        block = self._read(Window(col0, row0, col1 - col0, row1 - row0))
        invalid = np.zeros(block.shape, bool)
        if self.nodata is not None and not (
            isinstance(self.nodata, float) and math.isnan(self.nodata)
        ):
            invalid |= block == self.nodata
        if self.kind == "mask":
            out = (block != 0).astype(np.float32)
        elif self.dtype.kind == "f":
            out = block.astype(np.float32)
            invalid |= np.isnan(out)
            if self.nodata is None:
                invalid |= out == enc.FLOAT_NODATA
            bad = ~invalid & ((out < -1e-6) | (out > 1 + 1e-6))
            if bad.any():
                raise UnsupportedRasterError(
                    f"{self.name} holds {float(out[bad][0]):g}, outside 0..1; give a road "
                    "probability raster (0..1) or a mask"
                )
            np.clip(out, 0.0, 1.0, out=out)
        else:
            out = block.astype(np.float32) * np.float32(self.scale)
            if self.nodata is None and self.scale == 1.0 / enc.PROB_SCALE:
                invalid |= block == enc.PROB_NODATA
            np.clip(out, 0.0, 1.0, out=out)
        out[invalid] = np.nan
        return out
