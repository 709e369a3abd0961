"""Opening and validating rasters, output profiles and atomic writes.

Everything that touches files for the raster flow goes through here, so that
every command refuses bad input the same way and no command ever leaves a
partial file at its output path.
"""

from __future__ import annotations

import contextlib
import errno
import glob
import logging
import math
import os
import re
import shutil
import tempfile
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape, quoteattr

import numpy as np
import rasterio
from rasterio._err import CPLE_BaseError
from rasterio.enums import ColorInterp
from rasterio.errors import NotGeoreferencedWarning, RasterioError

from roadseg.errors import InvalidRasterError, OutputError, RoadsegError, UnsupportedRasterError

log = logging.getLogger(__name__)

#: dtypes roadseg reads as image data.
SUPPORTED_DTYPES = frozenset(
    {
        "uint8",
        "int8",
        "uint16",
        "int16",
        "uint32",
        "int32",
        "uint64",
        "int64",
        "float32",
        "float64",
    }
)

#: GDAL block cache for roadseg's own reads and writes, in bytes: rasterio hands
#: GDAL_CACHEMAX to GDALSetCacheMax64, so a plain 256 (meant as MB, as GDAL reads
#: the environment variable) was a 256-byte cache, i.e. none. A few MB hold the
#: blocks that neighbouring read chunks share and a block row of overviews being
#: built; more would fill with input blocks read once and grow with the width.
GDAL_CACHE_BYTES = 8 << 20

#: Largest raster side GDAL may claim before we call the header a lie.
MAX_SIDE = 4_000_000

#: Largest ratio of claimed pixel bytes to file bytes we believe. Deflate tops
#: out near 1000:1 and a sparse GeoTIFF (empty tiles stored as a zero offset)
#: near tile bytes / 16; a header claiming more than this is corrupt or
#: hostile, and is refused before anything the size of a raster row is allocated.
MAX_EXPANSION = 2**20

#: Claims below this many pixel bytes are not worth second-guessing.
MIN_CHECKED_CLAIM = 2**28

#: Largest transform coefficient (map units) that can be real: the Earth is
#: 4e7 m round; beyond this a geotransform is garbage.
MAX_COORDINATE = 1e12

#: Drivers whose file describes pixels stored elsewhere: their size says nothing.
_VIRTUAL_DRIVERS = frozenset({"VRT", "WMS", "WMTS", "DERIVED"})

#: Free space below which a failed write is reported as a full disk.
DISK_FULL_MARGIN = 16 << 20


def gdal_env(**options: Any) -> rasterio.Env:
    """A rasterio environment with roadseg's GDAL settings."""
    settings: dict[str, Any] = {
        "GDAL_CACHEMAX": GDAL_CACHE_BYTES,
        "GDAL_NUM_THREADS": "ALL_CPUS",
        "CPL_LOG": os.devnull,
    }
    for name in ("GDAL_CACHEMAX", "GDAL_NUM_THREADS"):
        if name in os.environ:  # the user's own setting (or a Dask worker's) wins
            del settings[name]
    settings.update(options)
    return rasterio.Env(**settings)


def open_raster(
    path: str | os.PathLike[str], *, expand_palette: bool = False
) -> rasterio.io.DatasetReader:
    """Open a raster for reading and check that it has pixels.

    Beyond opening, the header is checked against the file before anyone
    allocates memory for it: a header claiming far more pixels than the file
    could hold, a GeoTIFF whose blocks run past the end of the file
    (truncated), a geotransform with zero-area or absurd pixels, and a VRT
    whose source files are missing are all refused here, not hours into a run.

    Args:
        path: any GDAL raster file.
        expand_palette: read a single-band palette (colour-table) raster as
            RGB through its colour table, as ``gdal_translate -expand rgb``
            would. The returned dataset is an in-memory VRT with the source's
            grid, CRS and nodata mask.

    Raises:
        InvalidRasterError: missing file, not a raster, corrupt, truncated,
            zero-size, a broken geotransform, or a VRT with missing sources.
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
    except (RasterioError, OSError) as exc:
        raise InvalidRasterError(
            f"{path} is not a raster GDAL can read ({_gdal_reason(exc)}); "
            "give a GeoTIFF or another GDAL raster"
        ) from None
    try:
        _check_header(src, path)
        if expand_palette and is_palette(src):
            expanded = _expand_palette(src, path)
            src.close()
            return expanded
    except (RasterioError, CPLE_BaseError) as exc:
        src.close()
        raise InvalidRasterError(
            f"{path} is corrupt: its header cannot be read ({_gdal_reason(exc)}); "
            "re-export or re-download it"
        ) from None
    except BaseException:
        src.close()
        raise
    return src


def _check_header(src: rasterio.io.DatasetReader, path: Path) -> None:
    """Refuse headers that cannot describe the file they are in.

    Raises:
        InvalidRasterError: see :func:`open_raster`.
    """
    if src.width <= 0 or src.height <= 0 or src.count <= 0:
        raise InvalidRasterError(f"{path} has no pixels ({src.width}x{src.height}x{src.count})")
    if max(src.width, src.height) > MAX_SIDE:
        raise InvalidRasterError(
            f"{path} claims {src.width}x{src.height} pixels, beyond anything real; "
            "the file header is probably corrupt"
        )
    _check_transform(src, path)
    # GDAL reads these lazily; a damaged directory fails here rather than in
    # the middle of a command.
    _ = src.colorinterp, src.block_shapes, src.nodatavals
    if src.driver == "VRT":
        _check_vrt_sources(src, path)
    if src.driver in _VIRTUAL_DRIVERS:
        return
    itemsize = max(_itemsize(d) for d in src.dtypes)
    claimed = src.width * src.height * src.count * itemsize
    stored = _files_size(src, path)
    if claimed > MIN_CHECKED_CLAIM and claimed > stored * MAX_EXPANSION:
        raise InvalidRasterError(
            f"{path} claims {src.width}x{src.height}x{src.count} pixels "
            f"({_human(claimed)} of pixel data) in {_human(stored)} of file; "
            "the file header is corrupt"
        )
    if src.driver == "GTiff":
        _check_tiff_blocks(src, path)


def _check_transform(src: rasterio.io.DatasetReader, path: Path) -> None:
    """Refuse a geotransform that maps pixels nowhere: zero-area or absurd pixels.

    Raises:
        InvalidRasterError: a coefficient is not finite or beyond
            :data:`MAX_COORDINATE`, or the transform cannot be inverted.
    """
    coefficients = tuple(src.transform)[:6]
    broken = not all(math.isfinite(v) and abs(v) <= MAX_COORDINATE for v in coefficients)
    if broken or src.transform.determinant == 0:
        raise InvalidRasterError(
            f"{path} has a broken geotransform {tuple(round(v, 6) for v in coefficients)} "
            "(pixels of zero area, or coordinates beyond any map); its georeferencing is "
            "corrupt. Remove it with gdal_edit.py -unsetgt to work in pixel space, or fix it"
        )


def _itemsize(dtype: str) -> int:
    """Bytes per pixel of a rasterio dtype name (GDAL's CInt16 has no numpy twin)."""
    try:
        return np.dtype(dtype).itemsize
    except TypeError:
        return 4 if dtype == "complex_int16" else 8


def _files_size(src: rasterio.io.DatasetReader, path: Path) -> int:
    """Bytes in the raster's files (the main one and any sidecars GDAL lists)."""
    files = {str(path), *(str(f) for f in (src.files or []))}
    total = 0
    for name in files:
        with contextlib.suppress(OSError):
            total += os.path.getsize(name)
    return total


def _check_tiff_blocks(src: rasterio.io.DatasetReader, path: Path) -> None:
    """Refuse a GeoTIFF whose blocks end beyond the end of the file (truncated).

    GDAL reports each block's offset and byte count without reading it. A
    sample of blocks of the first band (a grid of up to 8 x 8, with the first
    and the last) and the last block of every band are checked, so the cost
    does not grow with the raster.

    Raises:
        InvalidRasterError: a block runs past the end of the file.
    """
    size = os.path.getsize(path)
    end = 0
    for bidx in range(1, src.count + 1):
        bh, bw = src.block_shapes[bidx - 1]
        ny, nx = math.ceil(src.height / bh), math.ceil(src.width / bw)
        if bidx == 1:
            rows = np.unique(np.linspace(0, ny - 1, min(ny, 8)).round().astype(int))
            cols = np.unique(np.linspace(0, nx - 1, min(nx, 8)).round().astype(int))
            blocks = [(int(y), int(x)) for y in rows for x in cols]
        else:
            blocks = [(ny - 1, nx - 1)]
        for y, x in blocks:
            try:
                offset = src.get_tag_item(f"BLOCK_OFFSET_{x}_{y}", "TIFF", bidx=bidx)
                nbytes = src.get_tag_item(f"BLOCK_SIZE_{x}_{y}", "TIFF", bidx=bidx)
            except (RasterioError, OSError) as exc:
                raise InvalidRasterError(
                    f"{path} is corrupt: its block table cannot be read ({_gdal_reason(exc)}); "
                    "re-export or re-download it"
                ) from None
            if not offset or not nbytes:  # sparse (empty) block, or not reported
                continue
            end = max(end, int(offset) + int(nbytes))
    if end > size:
        raise InvalidRasterError(
            f"{path} is corrupt or truncated: its {src.width}x{src.height} pixels need "
            f"{end:,} bytes of file but it has {size:,}; re-export or re-download it"
        )


def _check_vrt_sources(src: rasterio.io.DatasetReader, path: Path) -> None:
    """Refuse a VRT that refers to local files that do not exist.

    Raises:
        InvalidRasterError: a source file is missing.
    """
    for name in (src.files or [])[1:]:
        name = str(name)
        if name.startswith("/vsi"):
            continue
        source = Path(name)
        if not source.is_absolute():
            # GDAL lists sources relative to the working directory, or to the
            # VRT when it has no path of its own.
            candidates = [source, path.parent / source]
        else:
            candidates = [source]
        if not any(c.exists() for c in candidates):
            raise InvalidRasterError(
                f"{path} is a VRT whose source file {name} does not exist; "
                "restore it or rebuild the VRT (gdalbuildvrt)"
            )


def decimated_shape(height: int, width: int, side: int) -> tuple[int, int]:
    """``(height, width)`` of a read decimated so its longer side is at most
    ``side`` pixels (the raster's own size when it is smaller), at least 1 each."""
    scale = max(1.0, max(width, height) / side)
    return max(1, round(height / scale)), max(1, round(width / scale))


def is_palette(src: rasterio.io.DatasetReader) -> bool:
    """Whether ``src`` is a single-band raster of colour-table indices."""
    if src.count != 1 or src.dtypes[0] not in ("uint8", "uint16"):
        return False
    if src.colorinterp[0] != ColorInterp.palette:
        return False
    try:
        return bool(src.colormap(1))
    except ValueError:  # colour interpretation says palette but no table is stored
        return False


def _expand_palette(src: rasterio.io.DatasetReader, path: Path) -> rasterio.io.DatasetReader:
    """``src`` as an RGB dataset: an in-memory VRT looking each index up in its colour table.

    The VRT keeps the source's size, transform, CRS, GCPs and nodata mask
    (the mask of the index band, so a nodata index stays nodata). It is parsed
    when opened, so its in-memory file is freed at once.
    """
    from rasterio.io import MemoryFile

    source = escape(str(path.resolve()))

    def simple(band: str) -> str:
        return (
            f'<SourceFilename relativeToVRT="0">{source}</SourceFilename>'
            f"<SourceBand>{band}</SourceBand>"
        )

    parts = [f'<VRTDataset rasterXSize="{src.width}" rasterYSize="{src.height}">']
    if src.crs:
        parts.append(f"<SRS>{escape(src.crs.to_wkt())}</SRS>")
    if not src.transform.is_identity:
        parts.append(
            "<GeoTransform>"
            + ", ".join(repr(float(v)) for v in src.transform.to_gdal())
            + "</GeoTransform>"
        )
    gcps, gcp_crs = src.gcps
    if gcps:
        srs = f" Projection={quoteattr(gcp_crs.to_wkt())}" if gcp_crs else ""
        points = "".join(
            f'<GCP Id={quoteattr(str(g.id))} Pixel="{g.col!r}" Line="{g.row!r}" '
            f'X="{g.x!r}" Y="{g.y!r}" Z="{float(g.z or 0.0)!r}"/>'
            for g in gcps
        )
        parts.append(f"<GCPList{srs}>{points}</GCPList>")
    for i, name in enumerate(("Red", "Green", "Blue"), start=1):
        parts.append(
            f'<VRTRasterBand dataType="Byte" band="{i}"><ColorInterp>{name}</ColorInterp>'
            f"<ComplexSource>{simple('1')}<ColorTableComponent>{i}</ColorTableComponent>"
            "</ComplexSource></VRTRasterBand>"
        )
    parts.append(
        '<MaskBand><VRTRasterBand dataType="Byte">'
        f"<SimpleSource>{simple('mask,1')}</SimpleSource></VRTRasterBand></MaskBand>"
    )
    parts.append("</VRTDataset>")
    memfile = MemoryFile("".join(parts).encode(), filename=path.name)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", NotGeoreferencedWarning)
            return memfile.open(driver="VRT")
    except (RasterioError, OSError) as exc:
        raise InvalidRasterError(
            f"{path} is a palette image whose colour table cannot be applied "
            f"({_gdal_reason(exc)}); expand it with gdal_translate -expand rgb"
        ) from None
    finally:
        memfile.close()


def display_name(src: rasterio.io.DatasetReader) -> str:
    """The file a dataset was opened from, for messages.

    A palette raster opened with ``expand_palette`` is an in-memory VRT whose
    name means nothing to a user; its source file is named instead.
    """
    name = str(src.name)
    if name.startswith("/vsimem/") and src.files:
        return str(src.files[0])
    return name


def corrupt(name: str, exc: Exception) -> InvalidRasterError:
    """The error for a raster whose pixels cannot be read."""
    return InvalidRasterError(
        f"{name} is corrupt or truncated: reading its pixels failed ({_gdal_reason(exc)}); "
        "re-export or re-download it"
    )


def _gdal_reason(exc: BaseException) -> str:
    """GDAL's own words for a failure, on one line.

    rasterio raises "Read failed. See previous exception for details." and
    chains GDAL's message as the cause; that message is the useful one.
    """
    for current in _chain(exc):
        text = " ".join(str(current).split())
        if text and "see previous exception" not in text.lower():
            return text[:200]
    return type(exc).__name__


def _human(nbytes: float) -> str:
    units = ("bytes", "kB", "MB", "GB", "TB", "PB")
    i = 0
    while abs(nbytes) >= 1000 and i < len(units) - 1:
        nbytes /= 1000
        i += 1
    return f"{nbytes:.0f} bytes" if i == 0 else f"{nbytes:.1f} {units[i]}"


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
        OutputError: the folder is missing or read-only, the path is a folder
            or one of the inputs, or the file exists without ``overwrite``.
    """
    path = Path(path)
    folder = path.parent
    if not folder.is_dir():
        raise OutputError(f"{what} folder {folder} does not exist; create it first")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise OutputError(f"{what} folder {folder} is not writable; choose another with -o")
    if path.is_dir():
        raise OutputError(f"{what} {path} is a folder; give a file name")
    for src in inputs:
        if Path(src).exists() and path.exists() and os.path.samefile(src, path):
            raise OutputError(f"{what} {path} is the input file; choose another output path")
    if path.exists() and not overwrite:
        raise OutputError(f"{what} {path} already exists; use --overwrite to replace it")
    return path


@contextlib.contextmanager
def atomic_output(
    path: str | os.PathLike[str], suffix: str | None = None, *, overwrite: bool = True
) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; move it to ``path`` on success.

    On any exception (KeyboardInterrupt included) every temporary file is
    removed (the yielded path and anything named after it, such as GDAL's
    ``.aux.xml`` sidecars) and ``path`` is left untouched, so an output appears
    whole or not at all. Two processes writing the same ``path`` each write
    their own temporary file; the last to finish wins with a complete file.

    I/O failures inside the block (a full disk, a read-only or vanished
    folder, GDAL write errors) are raised as :class:`OutputError`; other
    exceptions pass through unchanged.

    Args:
        path: the final output path.
        suffix: the temporary file's extension (default: that of ``path``).
        overwrite: replace ``path`` if it appeared while writing. Without it
            a file created meanwhile (by another process) is kept and
            :class:`OutputError` is raised.

    Raises:
        OutputError: the output could not be written, or (without
            ``overwrite``) appeared while it was being written.
    """
    path = Path(path)
    suffix = path.suffix if suffix is None else suffix
    try:
        fd, tmp_name = tempfile.mkstemp(
            prefix=f".{path.stem}.", suffix=f".tmp{suffix}", dir=path.parent
        )
    except OSError as exc:
        raise _io_error(path, exc) from exc
    os.close(fd)
    os.unlink(tmp_name)  # GDAL wants to create the file itself
    tmp = Path(tmp_name)
    try:
        yield tmp
        _publish(tmp, path, overwrite=overwrite)
    except BaseException as exc:
        # Judge a full disk before the temporary files free their space.
        error = None if isinstance(exc, RoadsegError) else _write_error(path, exc)
        _remove_temporaries(tmp)
        if error is None:
            raise
        raise error from exc
    finally:
        _remove_temporaries(tmp)


class maybe_atomic_output:
    """:func:`atomic_output` for an optional path: yields None when ``path`` is None."""

    def __init__(self, path: Path | None, overwrite: bool) -> None:
        self._cm = atomic_output(path, overwrite=overwrite) if path is not None else None

    def __enter__(self) -> Path | None:
        return self._cm.__enter__() if self._cm is not None else None

    def __exit__(self, *exc: Any) -> Any:
        return self._cm.__exit__(*exc) if self._cm is not None else None


def _publish(tmp: Path, path: Path, *, overwrite: bool) -> None:
    """Move the finished ``tmp`` to ``path`` in one step.

    Raises:
        OutputError: without ``overwrite``, ``path`` exists by now.
    """
    if overwrite:
        os.replace(tmp, path)
        return
    try:
        # A hard link fails if the name is taken: no window in which another
        # process's output could be replaced.
        os.link(tmp, path)
    except FileExistsError:
        raise OutputError(
            f"{path} was created by another program while roadseg was writing it; "
            "it was left as it is. Use --overwrite to replace it"
        ) from None
    except OSError:  # no hard links here (FAT, some network shares)
        if path.exists():
            raise OutputError(f"{path} already exists; use --overwrite to replace it") from None
        os.replace(tmp, path)
        return
    tmp.unlink()


def _remove_temporaries(tmp: Path) -> None:
    """Remove ``tmp`` and every file named after it (sidecars, intermediate copies)."""
    for name in glob.glob(glob.escape(str(tmp)) + "*"):
        with contextlib.suppress(OSError):
            os.unlink(name)


_DISK_FULL_WORDS = ("no space left", "disk full", "disk is full", "quota exceeded")


def _write_error(path: Path, exc: BaseException) -> OutputError | None:
    """The :class:`OutputError` for an I/O failure while writing ``path``, else None."""
    import sqlite3

    if isinstance(exc, OSError | RasterioError | CPLE_BaseError | sqlite3.OperationalError):
        return _io_error(path, exc)
    return None


#: A temporary name made by :func:`atomic_output`: ``.<stem>.<random>.tmp<suffix>...``.
_TEMP_NAME = re.compile(r"^\.(?P<stem>.+)\.[a-z0-9_]{8}\.tmp(?P<suffix>\.[^.]*)?")


def _final_name(path: Path) -> str:
    """The name a user asked for, also when ``path`` is one of our temporary files."""
    match = _TEMP_NAME.match(path.name)
    return match["stem"] + (match["suffix"] or "") if match else path.name


def _io_error(path: Path, exc: BaseException) -> OutputError:
    """Name the cause of a write failure: a full disk, permissions, or GDAL's words."""
    folder = path.parent
    name = _final_name(path)
    errnos = {e.errno for e in _chain(exc) if isinstance(e, OSError)}
    if errnos & {errno.EROFS, errno.EACCES, errno.EPERM}:
        return OutputError(
            f"cannot write {name} in {folder}: {_gdal_reason(exc)}; "
            "choose a folder you can write to"
        )
    text = " ".join(str(e) for e in _chain(exc)).lower()
    free = _free_bytes(folder)
    if (
        errnos & {errno.ENOSPC, errno.EDQUOT, errno.EFBIG}
        or any(word in text for word in _DISK_FULL_WORDS)
        # GDAL often reports a failed write without the system's reason.
        or (free is not None and free < DISK_FULL_MARGIN)
    ):
        room = f" ({_human(free)} free)" if free is not None else ""
        return OutputError(
            f"the disk holding {folder} is full{room}: {name} could not be written and "
            "nothing was left behind; free some space or write to another disk"
        )
    return OutputError(f"writing {folder / name} failed ({_gdal_reason(exc)}); nothing was written")


def _chain(exc: BaseException) -> Iterator[BaseException]:
    """``exc`` and the exceptions it was raised from, outermost first."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__


def _free_bytes(folder: Path) -> int | None:
    try:
        return shutil.disk_usage(folder).free
    except OSError:
        return None


def output_profile(
    src: rasterio.io.DatasetReader,
    *,
    dtype: str,
    count: int = 1,
    nodata: float | int | None,
    blocksize: int = 256,
    intermediate: bool = False,
) -> dict[str, Any]:
    """A tiled, deflate-compressed GeoTIFF profile on the grid of ``src``.

    With ``intermediate``, the file is only a step before :func:`to_cog`
    (which compresses with deflate itself): ZSTD level 1 then costs a tenth of
    deflate's CPU time while the model is running, at about the same size.

    A raster with no georeferencing at all (no CRS, identity transform, no
    GCPs) gives a profile without a transform, so the output is not given a
    made-up one either; a raster georeferenced by ground control points
    passes them on instead of a transform.
    """
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
    if intermediate:
        profile.update(compress="zstd", zstd_level=1)
    gcps, gcp_crs = src.gcps
    if not src.crs and src.transform.is_identity:
        del profile["transform"]
        # Ground control points describe georeferencing that is not an affine
        # transform; rasterio takes them as a list, with their CRS as ``crs``
        # (and cannot write them without one).
        if gcps and gcp_crs:
            profile.update(gcps=gcps, crs=gcp_crs)
    if src.width >= blocksize or src.height >= blocksize:
        profile.update(tiled=True, blockxsize=blocksize, blockysize=blocksize)
    return profile


def to_cog(tmp_tif: Path, dest: Path, *, resampling: str = "average") -> None:
    """Copy a finished GeoTIFF into a cloud-optimized GeoTIFF with overviews.

    The COG driver writes overviews first and data after, so QGIS and web
    viewers can stream it.

    GDAL does not report every failed write: a block that could not be
    written (a full disk) is dropped with a message on stderr and the dataset
    still closes without error. So the source is checked to have every block
    before the copy, and the copy is read back block by block after it; an
    incomplete file is an error here rather than a corrupt output later.

    Raises:
        OutputError: either file is incomplete or could not be written (the
            message says when the disk is full).
    """
    from rasterio.shutil import copy as rio_copy

    try:
        check_written(tmp_tif)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", NotGeoreferencedWarning)
            ds = rasterio.open(tmp_tif)
        with ds:
            predictor = "YES" if ds.dtypes[0].startswith("uint8") else "STANDARD"
            if ds.dtypes[0].startswith("float"):
                predictor = "FLOATING_POINT"
        rio_copy(
            tmp_tif,
            dest,
            driver="COG",
            COMPRESS="DEFLATE",
            PREDICTOR=predictor,
            BLOCKSIZE=256,
            OVERVIEW_RESAMPLING=resampling.upper(),
            RESAMPLING=resampling.upper(),
            BIGTIFF="IF_SAFER",
            NUM_THREADS="ALL_CPUS",
        )
        check_written(dest, read=True)
    except RoadsegError:
        raise
    except Exception as exc:
        error = _write_error(dest, exc)
        if error is None:
            raise
        raise error from exc


class IncompleteWriteError(OSError):
    """A GeoTIFF just written lacks blocks or ends early."""


def check_written(path: str | os.PathLike[str], *, read: bool = False) -> None:
    """Check that a GeoTIFF just written holds every block of every band.

    Every block of the full-resolution image must have a stored offset (none
    left sparse) and end inside the file; with ``read``, every block is also
    decoded. Cost: one metadata lookup per block, plus one decode per block
    with ``read``, so memory stays at one block.

    Raises:
        IncompleteWriteError: a block is missing or runs past the end of the file.
        rasterio.errors.RasterioError: the file cannot be opened or decoded.
    """
    path = Path(path)
    size = os.path.getsize(path)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NotGeoreferencedWarning)
        ds = rasterio.open(path)
    with ds:
        interleaved = ds.interleaving is not None and ds.interleaving.name == "pixel"
        for bidx in range(1, (1 if interleaved else ds.count) + 1):
            bh, bw = ds.block_shapes[bidx - 1]
            for y in range(math.ceil(ds.height / bh)):
                for x in range(math.ceil(ds.width / bw)):
                    offset = ds.get_tag_item(f"BLOCK_OFFSET_{x}_{y}", "TIFF", bidx=bidx)
                    nbytes = ds.get_tag_item(f"BLOCK_SIZE_{x}_{y}", "TIFF", bidx=bidx)
                    if not offset or not nbytes or int(offset) + int(nbytes) > size:
                        raise IncompleteWriteError(
                            f"{path.name} is incomplete: block {x},{y} of band {bidx} "
                            "was not written"
                        )
            if read:
                for _, window in ds.block_windows(bidx):
                    ds.read(bidx, window=window)


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
    data = np.empty((r1 - r0, c1 - c0, len(bands)), dtype=src.dtypes[bands[0] - 1])
    try:
        # GDAL fills the (rows, cols, bands) array through a strided view, in
        # the requested band order: no planar copy to stack and reorder.
        if len(unique) == len(bands):
            src.read(list(bands), window=window, out=np.moveaxis(data, -1, 0))
        else:
            planes = src.read(unique, window=window)
            for k, band in enumerate(bands):
                data[..., k] = planes[unique.index(band)]
        masks = src.read_masks(unique, window=window)
    except (RasterioError, OSError) as exc:
        raise corrupt(display_name(src), exc) from None
    # GDAL's per-band masks: a pixel is nodata if any used band says so.
    valid = masks[0] > 0 if len(unique) == 1 else np.all(masks > 0, axis=0)
    # Only the reflected margins need a gather; inside the raster the indices
    # are the window itself.
    rows, cols = row_idx - r0, col_idx - c0
    if not _is_range(rows, r1 - r0):
        data, valid = data[rows], valid[rows]
    if not _is_range(cols, c1 - c0):
        data, valid = data[:, cols], valid[:, cols]
    return data, valid


def _is_range(idx: np.ndarray, n: int) -> bool:
    """Whether ``idx`` is exactly ``0, 1, ..., n - 1``."""
    return len(idx) == n and bool(idx[0] == 0) and bool(np.all(np.diff(idx) == 1))
