"""The skeleton of the whole cleaned mask, thinned in windows of a chunk plus a
halo (:func:`skeletonize_chunks`): each window returns its core's graph structure
(:func:`~roadseg.vectorize.stitching.chunk_graph`) with the road half-widths and
probabilities of its skeleton pixels, and the halo grows until every window
converged within it, so the result is exactly the skeleton of the whole raster."""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy.spatial import cKDTree

from roadseg.geo import GroundScale
from roadseg.vectorize.chunks import Chunk, MaskReader
from roadseg.vectorize.sources import RoadSource, SourceSpec
from roadseg.vectorize.stitching import ChunkGraph, chunk_graph
from roadseg.vectorize.tasks import Mapper, map_here
from roadseg.vectorize.thinning import neighbour_code, thin_framed


@dataclass
class Skeleton:
    """The skeleton of the whole raster as the graph structures of its chunks."""

    parts: list[ChunkGraph]
    halo: int

    @property
    def pixels(self) -> int:
        return sum(p.pixels for p in self.parts)


class _HaloTooSmall(Exception):
    def __init__(self, needed: int) -> None:
        self.needed = needed


def _skeleton_window(
    store: MaskReader,
    chunk: Chunk,
    halo: int,
    scale: GroundScale,
    metric: np.ndarray,
    probs: RoadSource | None = None,
) -> tuple[ChunkGraph, int]:
    """The graph structure of one chunk's core (:func:`chunk_graph`: its skeleton
    pixels with their half-widths and, from ``probs``, probabilities) and the
    thinning steps the window needed.

    The window is the core plus ``halo`` pixels (clipped to the raster) and a
    one-pixel frame: beyond the raster's edge the frame repeats the edge pixels
    (roads that leave the raster are cut there, not rounded off); at a cut inside
    the raster the frame is road, which is never background for the widths and
    cannot matter to the thinning within the halo.
    """
    H, W = store.height, store.width
    wr0, wr1 = max(0, chunk.r0 - halo), min(H, chunk.r1 + halo)
    wc0, wc1 = max(0, chunk.c0 - halo), min(W, chunk.c1 + halo)
    block = store.read(wr0, wr1, wc0, wc1)
    img = np.pad(block, 1, mode="edge").astype(np.uint8)
    if wr0 > 0:
        img[0] = 1
    if wr1 < H:
        img[-1] = 1
    if wc0 > 0:
        img[:, 0] = 1
    if wc1 < W:
        img[:, -1] = 1
    code = neighbour_code(img)
    # Background pixels next to road: the only candidates for the nearest background.
    edge_bg = (img == 0) & (code > 0)
    steps = thin_framed(img, code)
    del code
    # Distances in pixels to the nearest cut of the window (inf where none).
    cut_top = chunk.r0 - wr0 if wr0 > 0 else math.inf
    cut_bottom = wr1 - chunk.r1 if wr1 < H else math.inf
    cut_left = chunk.c0 - wc0 if wc0 > 0 else math.inf
    cut_right = wc1 - chunk.c1 if wc1 < W else math.inf
    margin = min(cut_top, cut_bottom, cut_left, cut_right)
    if steps > margin:
        raise _HaloTooSmall(steps)
    core = img[1 + chunk.r0 - wr0 : 1 + chunk.r1 - wr0, 1 + chunk.c0 - wc0 : 1 + chunk.c1 - wc0]
    rr, cc = np.nonzero(core)
    rows = rr.astype(np.int64) + chunk.r0
    cols = cc.astype(np.int64) + chunk.c0
    half = np.zeros(rows.size)
    if rows.size:
        # Nearest background pixel (those next to road are enough) in the metric of
        # the raster's centre, then scaled to the local ground scale.
        br, bc = np.nonzero(edge_bg)
        if br.size == 0:
            if np.isfinite(margin):
                raise _HaloTooSmall(2 * halo + 1)
            # The window is the whole raster and all of it is road: no halo can
            # find background, so the nearest is taken just outside the raster
            # (the padded frame), where the road is not seen to end.
            frame = np.zeros(img.shape, dtype=bool)
            frame[[0, -1], :] = True
            frame[:, [0, -1]] = True
            br, bc = np.nonzero(frame)
        # Global pixel indices, so that the search does not depend on the window.
        br = br.astype(np.int64) + wr0 - 1
        bc = bc.astype(np.int64) + wc0 - 1
        tree = cKDTree(np.stack([br, bc], axis=1).astype(float) @ metric.T)
        _, idx = tree.query(np.stack([rows, cols], axis=1).astype(float) @ metric.T)
        # The distance is a function of the integer offset only, rounded to
        # micrometres, so equally near background pixels give the same value.
        off = np.stack([br[idx] - rows, bc[idx] - cols], axis=1).astype(float)
        dist = np.round(np.hypot(*(off @ metric.T).T), 6)
        if np.isfinite(margin):
            # Any pixel beyond a cut lies at least `margin` + 1 pixels away.
            sigma = float(np.linalg.svd(metric, compute_uv=False)[-1])
            if (dist >= margin * sigma).any():
                raise _HaloTooSmall(int(np.ceil(dist.max() / sigma)) + 2)
        # The road's edge lies half a pixel before the background pixel's centre;
        # on roads an even number of pixels wide the skeleton sits half a pixel off
        # the middle and sees the nearer edge. A quarter pixel makes the width
        # estimate unbiased over even and odd widths.
        pixel = math.sqrt(abs(np.linalg.det(metric)))
        half = np.maximum(dist - 0.25 * pixel, 0.0) * scale.area_ratio(rows, cols)
    prob = None
    if probs is not None:
        prob = np.zeros(0, np.float32)
        if rows.size:
            block = probs.read(chunk.r0, chunk.r1, chunk.c0, chunk.c1)
            prob = block[rows - chunk.r0, cols - chunk.c0].astype(np.float32)
    # The skeleton two pixels beyond the core (within the raster) is exact too: a
    # pixel d steps outside the core agrees with the whole raster's thinning for
    # h - d sub-iterations, and both are final after steps - 2 <= h - 2.
    er0, er1 = max(0, chunk.r0 - 2), min(H, chunk.r1 + 2)
    ec0, ec1 = max(0, chunk.c0 - 2), min(W, chunk.c1 + 2)
    ext = img[1 + er0 - wr0 : 1 + er1 - wr0, 1 + ec0 - wc0 : 1 + ec1 - wc0]
    return chunk_graph(ext, er0, ec0, chunk, W, half, prob), steps


def _thin_chunk(
    chunk: Chunk,
    store: MaskReader,
    halo: int,
    scale: GroundScale,
    metric: np.ndarray,
    probs: RoadSource | SourceSpec | None,
) -> tuple[ChunkGraph, int] | int:
    """One thinning window (a task): its result, or the halo it needs when the given
    one is too small (returned, not raised, so that Dask does not retry it).

    ``probs``: where the probabilities of the skeleton pixels come from (a source,
    or on a worker the spec of the raster, opened here); None for a mask.
    """
    try:
        if isinstance(probs, SourceSpec):
            with probs.open() as source:
                return _skeleton_window(store, chunk, halo, scale, metric, source)
        return _skeleton_window(store, chunk, halo, scale, metric, probs)
    except _HaloTooSmall as exc:
        return exc.needed


def skeletonize_chunks(
    store: MaskReader,
    chunks: list[Chunk],
    halo: int,
    scale: GroundScale,
    tick: Callable[[], None],
    restart: Callable[[int], None],
    mapper: Mapper | None = None,
    probs: RoadSource | SourceSpec | None = None,
) -> Skeleton:
    """The skeleton of the whole cleaned mask, one chunk window at a time, as the
    graph structures of the chunks (:func:`chunk_graph`; ``probs`` as for
    :func:`_thin_chunk`).

    Why the result equals the skeleton of the whole raster: the thinning is a
    cellular automaton whose state after ``t`` sub-iterations depends on the input
    within ``t`` pixels only. Let window ``i`` converge after ``T_i`` sub-iterations
    (its last two deleting nothing) and let every window's halo be ``h``. For
    ``t <= h`` the whole-raster thinning agrees with window ``i`` on its core. If
    ``h >= max_i T_i``, the whole-raster state therefore stops changing on every
    core at ``max_i T_i - 2``: it is converged, and equals the union of the cores.
    When a window needs more than its halo, the halo grows and the pass restarts.
    The nearest background pixel of a core pixel lies in the window when it is
    closer than the halo, so the widths are exact under the same test.

    ``mapper`` runs the windows (:func:`map_here`: one after the other, here;
    :class:`~roadseg.vectorize.tasks.DaskMap`: as Dask tasks); the halo grows
    exactly as it does here.
    """
    mapper = mapper or map_here
    metric = scale.center
    while True:
        parts: list[Any] = [None] * len(chunks)
        failed: dict[int, int] = {}
        with contextlib.closing(
            mapper(_thin_chunk, chunks, store, halo, scale, metric, probs)
        ) as done:
            for k, out in done:
                if isinstance(out, int):
                    failed[k] = out
                else:
                    parts[k] = out
                    tick()
                # The first window in chunk order that needs more decides the new
                # halo (as in one process, where the pass stops there), once every
                # window before it is known to have converged.
                if failed and all(p is not None for p in parts[: min(failed)]):
                    break
        if not failed:
            break
        halo = max(2 * halo, failed[min(failed)] + 16)
        restart(halo)
    return Skeleton([p[0] for p in parts], halo)
