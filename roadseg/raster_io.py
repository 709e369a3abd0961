"""Opening and validating rasters, output profiles and atomic writes.

Everything that touches files for the raster flow goes through here, so that
every command refuses bad input the same way and no command ever leaves a
partial file at its output path.
"""

from __future__ import annotations

import contextlib
import logging
import os
import tempfile
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
from rasterio.errors import NotGeoreferencedWarning, RasterioIOError

from roadseg.errors import InvalidRasterError, OutputError, UnsupportedRasterError

log = logging.getLogger(__name__)

#: dtypes roadseg reads as image data.
SUPPORTED_DTYPES = frozenset(
    {"uint8", "int8", "uint16", "int16", "uint32", "int32", "float32", "float64"}
)

#: GDAL block cache for roadseg's own reads and writes: enough for a few block
#: rows of a wide raster, far below GDAL's default of 5 % of RAM.
GDAL_CACHE_MB = 256

#: Largest raster side GDAL may claim before we call the header a lie.
MAX_SIDE = 4_000_000


def gdal_env(**options: Any) -> rasterio.Env:
    """A rasterio environment with roadseg's GDAL settings."""
    settings: dict[str, Any] = {
        "GDAL_CACHEMAX": GDAL_CACHE_MB,
        "GDAL_NUM_THREADS": "ALL_CPUS",
        "CPL_LOG": os.devnull,
    }
    settings.update(options)
    return rasterio.Env(**settings)


def open_raster(path: str | os.PathLike[str]) -> rasterio.io.DatasetReader:
    """Open a raster for reading and check that it has pixels.

    Raises:
        InvalidRasterError: missing file, not a raster, corrupt, or zero-size.
    """
    path = Path(path)
    if not path.exists():
        raise InvalidRasterError(f"{path} does not exist; check the path")
    if path.is_dir():
        raise InvalidRasterError(f"{path} is a folder, not a raster file")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", NotGeoreferencedWarning)
            src = rasterio.open(path)
    except RasterioIOError as exc:
        raise InvalidRasterError(
            f"{path} is not a raster GDAL can read ({_gdal_reason(exc)}); "
            "give a GeoTIFF or another GDAL raster"
        ) from None
    if src.width <= 0 or src.height <= 0 or src.count <= 0:
        src.close()
        raise InvalidRasterError(f"{path} has no pixels ({src.width}x{src.height}x{src.count})")
    if max(src.width, src.height) > MAX_SIDE:
        src.close()
        raise InvalidRasterError(
            f"{path} claims {src.width}x{src.height} pixels, beyond anything real; "
            "the file header is probably corrupt"
        )
    return src


def corrupt(name: str, exc: Exception) -> InvalidRasterError:
    """The error for a raster whose pixels cannot be read."""
    return InvalidRasterError(
        f"{name} is corrupt or truncated: reading its pixels failed ({_gdal_reason(exc)}); "
        "re-export or re-download it"
    )


def _gdal_reason(exc: Exception) -> str:
    text = " ".join(str(exc).split())
    return text[:200] if text else type(exc).__name__


def check_dtype(src: rasterio.io.DatasetReader, path: str | os.PathLike[str]) -> str:
    """The raster's dtype, if roadseg can read it as image data.

    Raises:
        UnsupportedRasterError: complex or otherwise unsupported dtypes.
    """
    dtype = src.dtypes[0]
    if dtype not in SUPPORTED_DTYPES:
        raise UnsupportedRasterError(
            f"{path} has pixel type {dtype}, which roadseg cannot use as imagery; "
            "convert it to an 8/16-bit integer or float raster (e.g. gdal_translate -ot Float32)"
        )
    return dtype


def check_output(
    path: str | os.PathLike[str],
    *,
    overwrite: bool,
    inputs: tuple[str | os.PathLike[str], ...] = (),
    what: str = "output",
) -> Path:
    """Check that an output path can be written.

    Raises:
        OutputError: the folder is missing or read-only, the file exists without
            ``overwrite``, or the path is one of the inputs.
    """
    path = Path(path)
    folder = path.parent if str(path.parent) else Path(".")
    if not folder.is_dir():
        raise OutputError(f"{what} folder {folder} does not exist; create it first")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise OutputError(f"{what} folder {folder} is not writable; choose another with -o")
    for src in inputs:
        if Path(src).exists() and path.exists() and os.path.samefile(src, path):
            raise OutputError(f"{what} {path} is the input file; choose another output path")
    if path.exists() and not overwrite:
        raise OutputError(f"{what} {path} already exists; use --overwrite to replace it")
    if path.is_dir():
        raise OutputError(f"{what} {path} is a folder; give a file name")
    return path


@contextlib.contextmanager
def atomic_output(path: str | os.PathLike[str], suffix: str | None = None) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it to ``path`` on success.

    On any exception (KeyboardInterrupt included) the temporary file is
    removed and ``path`` is left untouched, so an output appears whole or not
    at all.
    """
    path = Path(path)
    suffix = path.suffix if suffix is None else suffix
    fd, tmp_name = tempfile.mkstemp(
        prefix=f".{path.stem}.", suffix=f".tmp{suffix}", dir=path.parent or "."
    )
    os.close(fd)
    os.unlink(tmp_name)  # GDAL wants to create the file itself
    tmp = Path(tmp_name)
    try:
        yield tmp
        os.replace(tmp, path)
    except BaseException:
        _remove_quietly(tmp)
        raise
    finally:
        for side in (tmp.with_name(tmp.name + ".aux.xml"), tmp.with_name(tmp.name + ".ovr")):
            _remove_quietly(side)


def _remove_quietly(path: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        path.unlink()


def output_profile(
    src: rasterio.io.DatasetReader,
    *,
    dtype: str,
    count: int = 1,
    nodata: float | int | None,
    blocksize: int = 256,
) -> dict[str, Any]:
    """A tiled, deflate-compressed GeoTIFF profile on the grid of ``src``."""
    profile: dict[str, Any] = {
        "driver": "GTiff",
        "width": src.width,
        "height": src.height,
        "count": count,
        "dtype": dtype,
        "nodata": nodata,
        "crs": src.crs,
        "transform": src.transform,
        "compress": "deflate",
        "predictor": 3 if dtype.startswith("float") else 2,
        "BIGTIFF": "IF_SAFER",
    }
    if src.width >= blocksize or src.height >= blocksize:
        profile.update(tiled=True, blockxsize=blocksize, blockysize=blocksize)
    # GCPs/RPCs describe georeferencing that is not an affine transform.
    if src.gcps[0] and not src.crs:
        profile["gcps"] = src.gcps
    return profile


def to_cog(tmp_tif: Path, dest: Path, *, resampling: str = "average") -> None:
    """Copy a finished GeoTIFF into a cloud-optimized GeoTIFF with overviews.

    The COG driver writes overviews first and data after, so QGIS and web
    viewers can stream it.
    """
    from rasterio.shutil import copy as rio_copy

    with rasterio.open(tmp_tif) as ds:
        compress = ds.profile.get("compress", "deflate")
        predictor = "YES" if ds.dtypes[0].startswith("uint8") else "STANDARD"
        if ds.dtypes[0].startswith("float"):
            predictor = "FLOATING_POINT"
    rio_copy(
        tmp_tif,
        dest,
        driver="COG",
        COMPRESS=str(compress).upper(),
        PREDICTOR=predictor,
        BLOCKSIZE=256,
        OVERVIEW_RESAMPLING=resampling.upper(),
        RESAMPLING=resampling.upper(),
        BIGTIFF="IF_SAFER",
        NUM_THREADS="ALL_CPUS",
    )


def read_rows(
    src: rasterio.io.DatasetReader,
    row_idx: np.ndarray,
    col_idx: np.ndarray,
    bands: tuple[int, ...],
) -> tuple[np.ndarray, np.ndarray]:
    """Read the pixels at the outer product of ``row_idx`` x ``col_idx``.

    The indices must lie inside the raster (reflect them first); the read
    covers only their bounding window.

    Returns:
        ``(data, valid)``: data of shape ``(len(row_idx), len(col_idx), len(bands))``
        in the raster's dtype, and a boolean validity mask of shape
        ``(len(row_idx), len(col_idx))`` (False where the input is nodata).
    """
    from rasterio.windows import Window

    r0, r1 = int(row_idx.min()), int(row_idx.max()) + 1
    c0, c1 = int(col_idx.min()), int(col_idx.max()) + 1
    window = Window(c0, r0, c1 - c0, r1 - r0)
    unique = sorted(set(bands))
    try:
        block = src.read(unique, window=window)  # (b, h, w)
        masks = src.read_masks(unique, window=window)
    except RasterioIOError as exc:
        raise corrupt(src.name, exc) from None
    pos = {b: i for i, b in enumerate(unique)}
    order = [pos[b] for b in bands]
    rr = (row_idx - r0)[:, None]
    cc = (col_idx - c0)[None, :]
    data = np.stack([block[i][rr, cc] for i in order], axis=-1)
    # GDAL's per-band masks: a pixel is nodata if any used band says so.
    valid = np.all(masks[[pos[b] for b in unique]] > 0, axis=0)[rr, cc]
    return data, valid
