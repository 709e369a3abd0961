"""The vector flow composed: :func:`extract_network` (a road source to a
:class:`~roadseg.vectorize.options.RoadNetwork` in memory, in-process or on Dask),
:func:`clean_graph` (the order of the graph cleaning steps), and the entry points
:func:`vectorize_array` and :func:`vectorize_raster` (a GeoTIFF to a GeoPackage or
GeoJSON file)."""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np
from affine import Affine

from roadseg.distributed import DEFAULT_RETRIES
from roadseg.errors import RoadsegError, VectorError
from roadseg.vectorize.bridging import Bridger
from roadseg.vectorize.chunks import ChunkFiles, MaskStore, chunk_grid
from roadseg.vectorize.cleaning import (
    KEEP_EXTENT_M,
    Cleaner,
    Thresholds,
    analyse_chunk,
    clean_chunk,
)
from roadseg.vectorize.graph import PixelGraph
from roadseg.vectorize.ground import AREA_UNIT_M2, GroundScale
from roadseg.vectorize.lines import build_network
from roadseg.vectorize.options import RoadNetwork, VectorizeOptions, VectorizeResult
from roadseg.vectorize.pruning import (
    drop_fragments,
    drop_small_loops,
    extend_to_border,
    merge_junctions,
    prune_spurs,
    refine_junctions,
)
from roadseg.vectorize.skeleton import skeletonize_chunks
from roadseg.vectorize.sources import ArraySource, RasterKind, RasterSource, RoadSource
from roadseg.vectorize.stitching import merge_chunk_graphs
from roadseg.vectorize.tasks import DaskMap

log = logging.getLogger(__name__)


def clean_graph(g: PixelGraph, options: VectorizeOptions, source: RoadSource | None) -> None:
    """Prune spurs, merge junctions, bridge gaps, drop fragments, refine junctions
    and extend roads to the raster's edge, in place."""
    drop_small_loops(g, options.merge_m)
    g.merge_all_degree2()
    prune_spurs(g, options.spur_m)
    merge_junctions(g, options.merge_m)
    prune_spurs(g, options.spur_m)
    Bridger(g, source, options).run()
    g.merge_all_degree2()
    prune_spurs(g, options.spur_m)
    drop_fragments(g, options.spur_m)
    g.merge_all_degree2()
    refine_junctions(g)
    if source is not None:
        extend_to_border(g, (source.height, source.width))


def _resolve_thresholds(source: RoadSource, options: VectorizeOptions) -> Thresholds:
    if source.kind == "mask":
        return Thresholds(0.5, 0.5)
    high = options.threshold
    if high is None:
        high = source.default_threshold if source.default_threshold is not None else 0.5
    low = options.low if options.low is not None else high
    if low > high:
        raise RoadsegError(
            f"low threshold {low} is above the threshold {high}; hysteresis needs low <= threshold"
        )
    return Thresholds(low, high)


def extract_network(
    source: RoadSource,
    options: VectorizeOptions = VectorizeOptions(),
    *,
    temp_dir: str | os.PathLike[str] | None = None,
    stats: dict[str, Any] | None = None,
    client: Any = None,
    retries: int = DEFAULT_RETRIES,
) -> RoadNetwork:
    """Run the vector flow on a road source and return the network in memory.

    With a Dask ``client``, the chunk steps run as tasks on its cluster: reading,
    thresholding and labelling each chunk for the cleaning (pass 1, which returns
    per-label statistics and the labels along the chunk's borders), applying the
    decisions (pass 2, which writes the chunk's cleaned mask to its own 1-bit file
    in a hidden folder ``.roadseg-*`` in ``temp_dir``, removed at the end, also on
    error) and thinning each window (which reads the chunk files it overlaps and
    returns its core's graph structure: node pixels, chain pieces in walking order
    with their half-widths and probabilities, and where they leave the core). The
    client numbers and joins the labels, decides, grows the halo, stitches the
    chunks' graphs and cleans the graph with the same code as the in-process run,
    so the network is the same, bit for bit.

    What the client holds (in-process and on Dask alike): never the sorted
    skeleton with its neighbour tables and link matrices, only the chunks' graph
    structures (the node pixels, about 24 bytes each, the chain pixels in walking
    order, 20 bytes each, and 24 bytes per chain piece; while stitching, a copy or
    two of the chain pixels in the order of the graph's edges) and the graph; the
    :class:`PixelGraph` keeps every chain pixel in its edges' paths (32 bytes
    each), which the graph cleaning needs. So the client's memory grows with the
    network's pixel length, not with the raster's area.

    Workers open the raster by its absolute path, so they must see it, and
    ``temp_dir``, under the same paths (a shared file system).

    Why the cleaned mask goes through files rather than being recomputed by the
    thinning tasks: a window (chunk plus halo) overlaps up to nine chunks, whose
    labels and decisions it would have to compute again; a 1-bit file per chunk
    costs an eighth of a byte per pixel of disk and is read once per window.

    Args:
        source: an :class:`ArraySource` or :class:`RasterSource` (on Dask: a
            :class:`RasterSource` of a file the workers can open).
        options: see :class:`VectorizeOptions` (``overwrite`` is not used here).
        temp_dir: folder for the 1-bit temporary mask of chunked runs (on Dask it
            must be shared with the workers; default: the system's temporary
            folder, which only a LocalCluster's workers share).
        stats: if given, filled with timings and counts (for benchmarks).
        client: a ``distributed.Client`` to run the chunk steps on; None: here.
        retries: retries of a Dask task that raised an unexpected exception.

    Returns:
        The :class:`RoadNetwork` (possibly empty).

    Raises:
        RoadsegError: invalid options; a Dask task that failed after its retries;
            a ``client`` with a source that is not a raster file.
        UnsupportedRasterError: values that are neither a mask nor probabilities.
    """
    options.validate()
    if client is not None and not isinstance(source, RasterSource):
        raise RoadsegError(
            "running on Dask needs a raster file the workers can open (a RasterSource); "
            f"got {type(source).__name__}"
        )
    t0 = time.perf_counter()
    th = _resolve_thresholds(source, options)
    height, width = source.height, source.width
    scale = GroundScale(source.transform, source.crs, height, width)
    chunks = chunk_grid(height, width, options.chunk_size)
    single = len(chunks) == 1
    row_area = scale.row_area_units()
    cleaner = Cleaner(
        source,
        chunks,
        th,
        options.min_area_m2 / AREA_UNIT_M2,
        options.hole_area_m2 / AREA_UNIT_M2,
        row_area,
        KEEP_EXTENT_M,
        scale.center,
    )
    bar = _progress(options.progress, 3 * len(chunks))
    try:
        bar.set_description("cleaning")

        def restart(halo: int) -> None:
            log.info("a window needs a wider halo; thinning again with %d px", halo)
            bar.total += len(chunks)
            bar.refresh()

        if client is None:
            cleaner.analyse(lambda: bar.update(1))
            store = MaskStore(height, width, single, Path(temp_dir) if temp_dir else None)
            try:
                for chunk in chunks:
                    store.write(chunk.r0, chunk.c0, cleaner.apply(chunk))
                    bar.update(1)
                t1 = time.perf_counter()
                bar.set_description("thinning")
                skel = skeletonize_chunks(
                    store, chunks, options.halo, scale, lambda: bar.update(1), restart,
                    probs=source if source.kind == "probability" else None,
                )  # fmt: skip
            finally:
                store.close()
        else:
            assert isinstance(source, RasterSource)  # checked above
            mapper = DaskMap(client, retries)
            spec = source.spec()
            cleaner.analyse(
                lambda: bar.update(1), mapper(analyse_chunk, chunks, spec, cleaner.params)
            )
            folder = tempfile.mkdtemp(prefix=".roadseg-", dir=temp_dir)
            try:
                files = ChunkFiles(os.path.abspath(folder), height, width, options.chunk_size)
                items = [(chunk, *cleaner.decisions(chunk)) for chunk in chunks]
                for _ in mapper(clean_chunk, items, spec, cleaner.params, files):
                    bar.update(1)
                t1 = time.perf_counter()
                bar.set_description("thinning")
                skel = skeletonize_chunks(
                    files, chunks, options.halo, scale, lambda: bar.update(1), restart,
                    mapper, spec if source.kind == "probability" else None,
                )  # fmt: skip
            finally:
                shutil.rmtree(folder, ignore_errors=True)
        t2 = time.perf_counter()
        bar.set_description("graph")
        with_prob = source.kind == "probability" and skel.pixels > 0
        graph = merge_chunk_graphs(skel.parts, (height, width), scale, with_prob)
        t3 = time.perf_counter()
        clean_graph(graph, options, source)
        network = build_network(graph, options, source.transform, source.crs)
    finally:
        bar.close()
    if stats is not None:
        stats.update(
            clean_s=t1 - t0,
            skeleton_s=t2 - t1,
            graph_s=time.perf_counter() - t2,
            stitch_s=t3 - t2,
            skeleton_pixels=skel.pixels,
            halo=skel.halo,
            chunks=len(chunks),
        )
    return network


class _NoBar:
    total = 0

    def update(self, n: int = 1) -> None:
        pass

    def set_description(self, text: str) -> None:
        pass

    def refresh(self) -> None:
        pass

    def close(self) -> None:
        pass


def _progress(enabled: bool, total: int) -> Any:
    if not enabled:
        return _NoBar()
    from tqdm import tqdm

    return tqdm(total=total, unit="chunk", leave=False)


def vectorize_array(
    values: np.ndarray,
    transform: Affine | None = None,
    crs: Any = None,
    options: VectorizeOptions = VectorizeOptions(),
    *,
    nodata: float | None = None,
    kind: RasterKind | None = None,
) -> RoadNetwork:
    """The road network of an in-memory mask (bool/int) or probability (float) array.

    Raises:
        RoadsegError: invalid options or values (see :func:`extract_network`).
    """
    source = ArraySource(values, transform, crs, nodata=nodata, kind=kind)
    return extract_network(source, options)


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
    from roadseg import __version__
    from roadseg.raster_io import check_output, gdal_env, open_raster
    from roadseg.vector_io import output_format, write_lines

    started = time.perf_counter()
    input_path = Path(input_path)
    output_path = Path(output_path)
    options.validate()
    where = "in-process"
    if workers is not None or scheduler is not None:
        from roadseg.distributed import import_distributed

        if workers is not None and scheduler is not None:
            raise RoadsegError("give either a number of workers or a scheduler address, not both")
        if workers is not None and workers < 1:
            raise RoadsegError(f"the number of workers must be at least 1, got {workers}")
        import_distributed()  # fail before any file is looked at
        where = f"Dask scheduler {scheduler}" if scheduler else f"{workers} local worker processes"
    fmt = output_format(output_path)
    check_output(output_path, overwrite=options.overwrite, inputs=(input_path,), what="output")
    notes: list[str] = []
    with gdal_env(), open_raster(input_path) as ds:
        source = RasterSource(ds, input_path.name)
        if source.crs is None:
            if fmt == "geojson":
                raise VectorError(
                    f"{input_path.name} has no CRS, so its coordinates cannot be sent to "
                    "longitude/latitude for GeoJSON (RFC 7946); write a GeoPackage (.gpkg) "
                    "instead, or set the CRS (gdal_edit.py -a_srs EPSG:...)"
                )
            notes.append(
                f"{input_path.name} has no CRS; lines are in its map units (pixel space if "
                "it has no transform either) and lengths assume metres"
            )
            log.warning(notes[-1])
        if source.kind == "mask" and (options.threshold is not None or options.low is not None):
            notes.append(f"{input_path.name} is a mask; --threshold and --low are not used")
            log.warning(notes[-1])
        th = _resolve_thresholds(source, options)
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
        tags = {
            "ROADSEG_VERSION": __version__,
            "ROADSEG_INPUT": input_path.name,
            "ROADSEG_INPUT_KIND": source.kind,
            "ROADSEG_THRESHOLD": f"{th.high:g}" if source.kind == "probability" else "",
            "ROADSEG_LOW": f"{th.low:g}" if th.low < th.high else "",
            "ROADSEG_MIN_AREA_M2": f"{options.min_area_m2:g}",
            "ROADSEG_HOLE_AREA_M2": f"{options.hole_area_m2:g}",
            "ROADSEG_SPUR_M": f"{options.spur_m:g}",
            "ROADSEG_MERGE_M": f"{options.merge_m:g}",
            "ROADSEG_GAP_M": f"{options.gap_m:g}",
            "ROADSEG_GAP_ANGLE_DEG": f"{options.gap_angle_deg:g}",
            "ROADSEG_SIMPLIFY_M": f"{options.simplify_m:g}",
        }
        tags = {k: v for k, v in tags.items() if v}
        for key in ("ROADSEG_MODEL", "ROADSEG_MODEL_SHA256", "ROADSEG_TILE_SIZE"):
            if key in source.tags:
                tags[key] = source.tags[key]
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
