"""File to file: :func:`vectorize_raster` (a road mask or probability GeoTIFF to a
GeoPackage or GeoJSON file, with the options in its metadata) and
:func:`default_output_path`."""

from __future__ import annotations

import contextlib
import logging
import os
import time
import warnings
from pathlib import Path
from typing import Any

from roadseg import encoding as enc
from roadseg.distributed import DEFAULT_RETRIES
from roadseg.errors import RoadsegError, VectorError
from roadseg.vectorize.cleaning import Thresholds, resolve_thresholds
from roadseg.vectorize.options import VectorizeOptions, VectorizeResult
from roadseg.vectorize.pipeline import extract_network
from roadseg.vectorize.sources import RasterSource

log = logging.getLogger(__name__)


def default_output_path(input_path: str | os.PathLike[str]) -> Path:
    """``<stem>_roads.gpkg`` beside the input (``<stem>.gpkg`` if the stem already
    ends in ``_roads``, as ``roadseg predict``'s outputs do)."""
    src = Path(input_path)
    stem = src.stem if src.stem.endswith("_roads") else f"{src.stem}_roads"
    return src.with_name(f"{stem}.gpkg")


def vectorize_raster(
    input_path: str | os.PathLike[str],
    output_path: str | os.PathLike[str],
    options: VectorizeOptions = VectorizeOptions(),
    *,
    workers: int | None = None,
    scheduler: str | None = None,
    retries: int = DEFAULT_RETRIES,
) -> VectorizeResult:
    """Vectorize a road mask or probability GeoTIFF into a GeoPackage or GeoJSON file.

    ``roadseg predict --vectorize`` calls this on its finished probability file.
    The output format follows the extension: ``.gpkg`` (in the raster's CRS) or
    ``.geojson`` / ``.json`` (WGS84 longitude/latitude, RFC 7946). The file appears
    whole or not at all.

    With ``workers`` or ``scheduler`` the chunk steps (reading, thresholding and
    labelling for the cleaning, thinning) run as Dask tasks and the result is the
    same as in-process, bit for bit (see :func:`extract_network`). Workers need
    roadseg installed and must see the input and the output's folder under the
    same paths; the cleaned mask passes through a hidden ``.roadseg-*`` folder
    beside the output, removed at the end.

    Args:
        input_path: single-band road mask (non-zero = road) or road probabilities
            (uint8 as ``roadseg predict`` writes them, or float 0..1).
        output_path: the vector file to write.
        options: see :class:`VectorizeOptions`.
        workers: run the chunk steps on a Dask LocalCluster of this many worker
            processes on this machine, each limited to ``cores // workers`` threads.
        scheduler: run them on the running Dask cluster at this address
            (``tcp://host:8786``).
        retries: retries of a Dask task that raised an unexpected exception.

    Returns:
        A :class:`VectorizeResult`.

    Raises:
        InvalidRasterError: the input is missing or not a raster.
        UnsupportedRasterError: several bands, or values neither mask nor probability.
        OutputError: the output exists (without ``overwrite``), its folder is
            missing, or it is the input.
        VectorError: GeoJSON asked for a raster with no CRS, or an unknown extension.
        MissingDependencyError: ``workers`` or ``scheduler`` without Dask installed.
        RoadsegError: invalid options; both ``workers`` and ``scheduler``; an
            unreachable scheduler; a Dask task that failed after its retries.
    """
    from roadseg.raster_io import check_output, gdal_env, open_raster
    from roadseg.vector_io import output_format, write_lines

    started = time.perf_counter()
    input_path = Path(input_path)
    output_path = Path(output_path)
    options.validate()
    where = _where(workers, scheduler)
    fmt = output_format(output_path)
    check_output(output_path, overwrite=options.overwrite, inputs=(input_path,), what="output")
    with gdal_env(), open_raster(input_path) as ds:
        source = RasterSource(ds, input_path.name)
        notes = _input_notes(source, input_path.name, fmt, options)
        th = resolve_thresholds(source, options)
        stats: dict[str, Any] = {}
        with warnings.catch_warnings(), contextlib.ExitStack() as stack:
            warnings.simplefilter("ignore")
            client = None
            if where != "in-process":
                from roadseg.distributed import dask_client

                client = stack.enter_context(dask_client(workers=workers, scheduler=scheduler))
            network = extract_network(
                source,
                options,
                temp_dir=output_path.parent,
                stats=stats,
                client=client,
                retries=retries,
            )
        tags = _output_tags(source, input_path.name, th, options)
        write_lines(
            output_path,
            network.lines,
            network.properties(),
            network.crs,
            layer="roads",
            metadata=tags,
            overwrite=options.overwrite,
        )
    return VectorizeResult(
        output=output_path,
        lines=len(network),
        junctions=network.junctions,
        length_m=network.total_length_m,
        kind=source.kind,
        threshold=th.high if source.kind == "probability" else None,
        halo=int(stats.get("halo", options.halo)),
        seconds=time.perf_counter() - started,
        warnings=tuple(notes),
        tags=tags,
        where=where,
    )


def _where(workers: int | None, scheduler: str | None) -> str:
    """Where the chunk steps run, in words; checks the Dask arguments (and that Dask
    is installed) before any file is looked at."""
    where = "in-process"
    if workers is not None or scheduler is not None:
        from roadseg.distributed import check_workers_or_scheduler, import_distributed

        check_workers_or_scheduler(workers, scheduler)
        if workers is not None and workers < 1:
            raise RoadsegError(f"the number of workers must be at least 1, got {workers}")
        import_distributed()  # fail before any file is looked at
        where = f"Dask scheduler {scheduler}" if scheduler else f"{workers} local worker processes"
    return where


def _input_notes(source: RasterSource, name: str, fmt: str, options: VectorizeOptions) -> list[str]:
    """Warnings about the input (each also logged); refuses GeoJSON for a raster
    with no CRS."""
    notes: list[str] = []
    if source.crs is None:
        if fmt == "geojson":
            raise VectorError(
                f"{name} has no CRS, so its coordinates cannot be sent to "
                "longitude/latitude for GeoJSON (RFC 7946); write a GeoPackage (.gpkg) "
                "instead, or set the CRS (gdal_edit.py -a_srs EPSG:...)"
            )
        notes.append(
            f"{name} has no CRS; lines are in its map units (pixel space if "
            "it has no transform either) and lengths assume metres"
        )
        log.warning(notes[-1])
    if source.kind == "mask" and (options.threshold is not None or options.low is not None):
        notes.append(f"{name} is a mask; --threshold and --low are not used")
        log.warning(notes[-1])
    return notes


def _output_tags(
    source: RasterSource, name: str, th: Thresholds, options: VectorizeOptions
) -> dict[str, str]:
    """The output's metadata: the roadseg version, the input and every option the
    lines depend on, and the model tags of a probability input."""
    from roadseg import __version__

    tags = {
        enc.TAG_VERSION: __version__,
        enc.TAG_INPUT: name,
        enc.TAG_INPUT_KIND: source.kind,
        enc.TAG_THRESHOLD: f"{th.high:g}" if source.kind == "probability" else "",
        enc.TAG_LOW: f"{th.low:g}" if th.low < th.high else "",
        enc.TAG_MIN_AREA_M2: f"{options.min_area_m2:g}",
        enc.TAG_HOLE_AREA_M2: f"{options.hole_area_m2:g}",
        enc.TAG_SPUR_M: f"{options.spur_m:g}",
        enc.TAG_MERGE_M: f"{options.merge_m:g}",
        enc.TAG_GAP_M: f"{options.gap_m:g}",
        enc.TAG_GAP_ANGLE_DEG: f"{options.gap_angle_deg:g}",
        enc.TAG_SIMPLIFY_M: f"{options.simplify_m:g}",
    }
    tags = {k: v for k, v in tags.items() if v}
    for key in (enc.TAG_MODEL, enc.TAG_MODEL_SHA256, enc.TAG_TILE_SIZE):
        if key in source.tags:
            tags[key] = source.tags[key]
    return tags
