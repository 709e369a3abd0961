"""The reader of a prediction run: batches of normalised tiles, read a strip
of tile rows and a few tile columns at a time (:func:`iter_batches`), and the
thread that reads them ahead of the model (:func:`prefetch`)."""

from __future__ import annotations

import queue
import threading
from collections.abc import Generator, Iterator
from typing import Any

import numpy as np
import rasterio

from roadseg.raster_io import read_rows
from roadseg.tile_plan import Plan
from roadseg.tiling import Span, reflect_index

_DONE = object()


#: Widest read of one strip, in pixels: a strip is read a few tile columns at a
#: time so the reader's buffers do not grow with the raster's width.
READ_CHUNK_PX = 2048


def column_chunks(cols: list[Span], overlap: int, chunk_px: int) -> list[range]:
    """Consecutive runs of tile columns, each spanning at most about ``chunk_px`` pixels."""
    stride = max(1, cols[0].size - overlap)
    per = max(1, (chunk_px - overlap) // stride)
    return [range(j, min(j + per, len(cols))) for j in range(0, len(cols), per)]


def iter_batches(
    src: rasterio.io.DatasetReader,
    plan: Plan,
    batch_size: int,
    valid_rows: dict[int, np.ndarray],
    first: int = 0,
    last: int | None = None,
    chunk_px: int = READ_CHUNK_PX,
) -> Iterator[tuple[np.ndarray, list[tuple[int, int]]]]:
    """Batches of normalised tiles of tile rows ``first`` to ``last`` (default:
    the last), with their (tile row, tile column) indices.

    Batches run across tile rows, so only the very last batch can be short.
    For each tile row, the validity mask of its image rows is stored in
    ``valid_rows`` before its first tile is yielded, and is complete before
    its last tile is.

    Each strip of tiles is read ``chunk_px`` pixels wide at a time (a few tile
    columns), so the reader holds a few MB whatever the raster's width (a
    whole 16384 px strip with its masks and copies was about 60 MB).
    """
    bands = len(plan.bands)
    batch = np.empty((batch_size, plan.tile, plan.tile, bands), dtype=np.float32)
    where: list[tuple[int, int]] = []
    chunks = column_chunks(plan.cols, plan.overlap, chunk_px)
    for i, rspan in enumerate(plan.rows):
        if i < first:  # a resumed run or a region: these tile rows only touch finished rows
            continue
        if last is not None and i > last:
            break
        row_idx = reflect_index(np.arange(rspan.start, rspan.stop), plan.height)
        # The image rows of this strip, unreflected, for the writer's nodata.
        top, bottom = max(rspan.start, 0), min(rspan.stop, plan.height)
        strip_valid = np.empty((bottom - top, plan.width), dtype=bool)
        valid_rows[i] = strip_valid  # filled chunk by chunk below
        for chunk in chunks:
            a, b = plan.cols[chunk[0]].start, plan.cols[chunk[-1]].stop
            col_idx = reflect_index(np.arange(a, b), plan.width)
            data, valid = read_rows(src, row_idx, col_idx, plan.bands)
            if data.dtype.kind == "f":
                valid &= np.all(np.isfinite(data), axis=-1)
            lo, hi = max(a, 0), min(b, plan.width)
            strip_valid[:, lo:hi] = valid[top - rspan.start : bottom - rspan.start, lo - a : hi - a]
            for j in chunk:
                cspan = plan.cols[j]
                cols = slice(cspan.start - a, cspan.stop - a)
                # Normalised tile by tile: the chunk stays in the input's dtype.
                plan.normalizer(data[:, cols], valid[:, cols], out=batch[len(where)])
                where.append((i, j))
                if len(where) == batch_size:
                    yield batch, where  # handed over whole: a new one is filled next
                    batch = np.empty_like(batch)
                    where = []
    if where:
        yield batch[: len(where)], where


def prefetch(iterator: Iterator[Any], depth: int) -> Generator[Any, None, None]:
    """Run ``iterator`` in a thread, ``depth`` items ahead of the consumer."""
    q: queue.Queue[Any] = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def put(item: Any) -> bool:
        """Queue ``item`` unless the consumer has gone; False if it has."""
        while not stop.is_set():
            try:
                q.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def work() -> None:
        try:
            for item in iterator:
                if not put(item):
                    return
            put(_DONE)
        except BaseException as exc:  # hand the error to the consumer
            put(exc)

    thread = threading.Thread(target=work, name="roadseg-reader", daemon=True)
    thread.start()
    try:
        while True:
            item = q.get()
            if item is _DONE:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        # Wait for the reader: it must not touch the dataset after the caller
        # closes it (GDAL would crash). It stops within one read and 0.1 s.
        stop.set()
        thread.join()
