"""The vector flow composed: :func:`extract_network` (a road source to a
:class:`~roadseg.vectorize.options.RoadNetwork` in memory, in-process or on Dask),
:func:`clean_graph` (the order of the graph cleaning steps) and
:func:`vectorize_array` (an in-memory array to a network). Files in, files out:
:mod:`roadseg.vectorize.files`."""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from affine import Affine

from roadseg.distributed import DEFAULT_RETRIES
from roadseg.errors import RoadsegError
from roadseg.geo import AREA_UNIT_M2, GroundScale
from roadseg.vectorize.bridging import Bridger
from roadseg.vectorize.chunks import Chunk, ChunkFiles, MaskStore, chunk_grid
from roadseg.vectorize.cleaning import (
    KEEP_EXTENT_M,
    Cleaner,
    analyse_chunk,
    clean_chunk,
    resolve_thresholds,
)
from roadseg.vectorize.graph import PixelGraph
from roadseg.vectorize.lines import build_network
from roadseg.vectorize.options import RoadNetwork, VectorizeOptions
from roadseg.vectorize.pruning import (
    drop_fragments,
    drop_small_loops,
    extend_to_border,
    merge_junctions,
    prune_spurs,
    refine_junctions,
)
from roadseg.vectorize.skeleton import Skeleton, skeletonize_chunks
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
    th = resolve_thresholds(source, options)
    height, width = source.height, source.width
    scale = GroundScale(source.transform, source.crs, height, width)
    chunks = chunk_grid(height, width, options.chunk_size)
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
            skel, t1 = _skeleton_here(
                source, cleaner, chunks, scale, options, bar, restart, temp_dir
            )
        else:
            assert isinstance(source, RasterSource)  # checked above
            mapper = DaskMap(client, retries)
            skel, t1 = _skeleton_on_dask(
                source, cleaner, chunks, scale, options, bar, restart, temp_dir, mapper
            )
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


def _skeleton_here(
    source: RoadSource,
    cleaner: Cleaner,
    chunks: list[Chunk],
    scale: GroundScale,
    options: VectorizeOptions,
    bar: Any,
    restart: Callable[[int], None],
    temp_dir: str | os.PathLike[str] | None,
) -> tuple[Skeleton, float]:
    """Clean and thin in this process, the cleaned mask in memory (one chunk) or in
    a 1-bit temporary file in ``temp_dir``; returns the skeleton and the time the
    cleaning ended."""
    cleaner.analyse(lambda: bar.update(1))
    single = len(chunks) == 1
    store = MaskStore(source.height, source.width, single, Path(temp_dir) if temp_dir else None)
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
    return skel, t1


def _skeleton_on_dask(
    source: RasterSource,
    cleaner: Cleaner,
    chunks: list[Chunk],
    scale: GroundScale,
    options: VectorizeOptions,
    bar: Any,
    restart: Callable[[int], None],
    temp_dir: str | os.PathLike[str] | None,
    mapper: DaskMap,
) -> tuple[Skeleton, float]:
    """Clean and thin as Dask tasks, the cleaned mask in one 1-bit file per chunk
    in a hidden folder in ``temp_dir`` (removed at the end); returns the skeleton
    and the time the cleaning ended."""
    spec = source.spec()
    cleaner.analyse(lambda: bar.update(1), mapper(analyse_chunk, chunks, spec, cleaner.params))
    folder = tempfile.mkdtemp(prefix=".roadseg-", dir=temp_dir)
    try:
        files = ChunkFiles(os.path.abspath(folder), source.height, source.width, options.chunk_size)
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
    return skel, t1


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
