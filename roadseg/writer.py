"""The writer of a prediction run: finished rows encoded as the outputs store
them (:func:`encode_rows`), gathered into whole blocks (:class:`BlockSink`),
written to GeoTIFFs that become COGs (:class:`BlockWriter`,
:func:`raw_outputs`), from a thread of its own (:func:`writer_thread`).
The encoding itself lives in :mod:`roadseg.encoding`."""

from __future__ import annotations

import contextlib
import queue
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import rasterio

from roadseg import encoding as enc
from roadseg.raster_io import output_profile, to_cog

#: Rows of one output block, and of one resume journal block.
JOURNAL_BLOCK = 256

#: Put on a writer thread's queue after the last rows: the thread closes its
#: sink and ends.
DONE = object()


def encode_rows(
    prob: np.ndarray, valid: np.ndarray, threshold: float, as_float: bool, mask: bool
) -> list[np.ndarray]:
    """Finished probability rows as the outputs store them: the probability
    band (uint8 ``round(p * 254)`` or float32, nodata where not ``valid``),
    and the 0/1 mask band when ``mask``."""
    bands = [enc.encode_probability(prob, valid, as_float)]
    if mask:
        bands.append(enc.encode_mask(prob, valid, threshold))
    return bands


class _EncodedRows:
    """Finished rows, encoded as the outputs store them (:func:`encode_rows`),
    waiting to make whole blocks.

    Rows are encoded as they arrive, a piece at a time, so what waits is
    uint8 (or the float32 of ``--float``), never float32 probabilities with
    a mask beside them, and the encoding's temporaries are a piece high.
    """

    def __init__(self, threshold: float, as_float: bool, mask: bool) -> None:
        self.threshold, self.as_float, self.mask = threshold, as_float, mask
        self.parts: list[list[np.ndarray]] = []
        self.rows = 0

    def push(self, prob: np.ndarray, valid: np.ndarray) -> None:
        if prob.shape[0]:
            self.parts.append(encode_rows(prob, valid, self.threshold, self.as_float, self.mask))
            self.rows += prob.shape[0]

    def take(self, n: int) -> list[np.ndarray]:
        """The first ``n`` rows of each band; the rest stays."""
        bands = [
            parts[0] if len(self.parts) == 1 else np.concatenate(parts)
            for parts in zip(*self.parts, strict=True)
        ]
        rest = [b[n:] for b in bands]
        self.parts = [rest] if rest[0].shape[0] else []
        self.rows -= n
        return [b[:n] for b in bands]


class BlockSink:
    """A :class:`RowSink` that keeps image rows ``start`` to ``stop`` of what
    it is given, encodes them (:func:`encode_rows`) and hands them to
    :meth:`_write` one block at a time; the last block, ending at ``stop``,
    may be shorter. ``start`` lies on a block edge. Subclasses say where
    blocks go.
    """

    def __init__(
        self,
        threshold: float,
        as_float: bool,
        mask: bool,
        *,
        stop: int,
        block: int = JOURNAL_BLOCK,
        start: int = 0,
    ) -> None:
        self.buf = _EncodedRows(threshold, as_float, mask)
        self.block = block
        self.start, self.stop = start, stop
        self.row = start  # image row of the first buffered row
        self.incoming = 0  # image row of the next row given to add()

    def skip_from(self, first_row: int) -> None:
        """The rows given to :meth:`add` start at image row ``first_row``."""
        self.incoming = first_row

    def add(self, prob: np.ndarray, valid: np.ndarray) -> None:
        n = prob.shape[0]
        lo = min(n, max(0, self.start - self.incoming))
        hi = max(lo, min(n, self.stop - self.incoming))
        self.incoming += n
        self.buf.push(prob[lo:hi], valid[lo:hi])
        while self.buf.rows >= self.block:
            self._emit(self.block)

    def close(self) -> None:
        """Hand over the last, shorter block if every row up to ``stop`` came.

        A run that stopped early (an error, Ctrl-C) also closes its sink; its
        rows short of a block are dropped, never stored as a finished block.
        """
        if self.buf.rows and self.row + self.buf.rows == self.stop:
            self._emit(self.buf.rows)

    def _emit(self, rows: int) -> None:
        self._write(self.buf.take(rows))
        self.row += rows

    def _write(self, bands: list[np.ndarray]) -> None:
        """Store one block's encoded bands, which start at image row ``self.row``."""
        raise NotImplementedError


class BlockWriter(BlockSink):
    """Writes finished rows in whole block rows (256), so GDAL never has to
    re-read or re-compress a block, and journals them for ``--resume``."""

    def __init__(
        self,
        dst: rasterio.io.DatasetWriter,
        mask_dst: rasterio.io.DatasetWriter | None,
        threshold: float,
        as_float: bool,
        block: int = 256,
    ) -> None:
        super().__init__(threshold, as_float, mask_dst is not None, stop=dst.height, block=block)
        self.dst, self.mask_dst = dst, mask_dst
        self.journal: Any = None

    def resume(self, journal: Any, done_blocks: int) -> int:
        """Copy ``done_blocks`` finished blocks from ``journal``; return the
        number of rows they hold, from which on rows are kept."""
        from rasterio.windows import Window

        self.journal = journal
        for index in range(done_blocks):
            try:
                bands = journal.load(index)
            except rasterio.errors.RasterioError:
                break  # damaged (a crash of the machine): computed again from here
            window = Window(0, self.row, bands[0].shape[1], bands[0].shape[0])
            self.dst.write(bands[0], 1, window=window)
            if self.mask_dst is not None:
                self.mask_dst.write(bands[1], 1, window=window)
            self.row += bands[0].shape[0]
        self.start = self.row  # rows a resumed run already has are dropped
        return self.row

    def _write(self, bands: list[np.ndarray]) -> None:
        from rasterio.windows import Window

        window = Window(0, self.row, bands[0].shape[1], bands[0].shape[0])
        self.dst.write(bands[0], 1, window=window)
        if self.mask_dst is not None:
            self.mask_dst.write(bands[1], 1, window=window)
        if self.journal is not None:  # every block is whole, or the raster's last
            self.journal.save(self.row // self.block, bands)


def writer_thread(q: queue.Queue[Any], writer: RowSink, errors: list[BaseException]) -> None:
    """Hand the rows queued on ``q`` to ``writer`` until :data:`DONE`, then
    close it. The first error is appended to ``errors`` and the queue is
    drained, so the producer never blocks."""
    try:
        while True:
            item = q.get()
            if item is DONE:
                writer.close()
                return
            if errors:
                continue  # drain after a failure so the producer never blocks
            writer.add(*item)
    except BaseException as exc:
        errors.append(exc)
        while q.get() is not DONE:
            pass


MASK_COLORMAP = {0: (0, 0, 0, 0), 1: (255, 40, 40, 255), 255: (0, 0, 0, 0)}


@contextlib.contextmanager
def raw_outputs(
    src: rasterio.io.DatasetReader,
    tmp_out: Path,
    tmp_mask: Path | None,
    *,
    threshold: float,
    as_float: bool,
    tags: dict[str, str],
    block: int = 256,
) -> Iterator[BlockWriter]:
    """The block writer of a probability (and mask) output on ``src``'s grid.

    Opens intermediate GeoTIFFs beside ``tmp_out``/``tmp_mask``, yields a
    :class:`BlockWriter` over them (the caller closes the writer when every
    row is in), and when the block ends without an error converts them into
    the COGs ``tmp_out`` and ``tmp_mask``. The intermediates are always removed.
    """
    prob_profile = output_profile(
        src,
        dtype="float32" if as_float else "uint8",
        nodata=enc.FLOAT_NODATA if as_float else enc.PROB_NODATA,
        intermediate=True,
    )
    raw_out = tmp_out.with_name(tmp_out.name + ".raw.tif")
    raw_mask = tmp_mask.with_name(tmp_mask.name + ".raw.tif") if tmp_mask is not None else None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", rasterio.errors.NotGeoreferencedWarning)
            dst = rasterio.open(raw_out, "w", **prob_profile)
            mask_dst = None
            if raw_mask is not None:
                mask_profile = output_profile(
                    src, dtype="uint8", nodata=enc.MASK_NODATA, intermediate=True
                )
                mask_dst = rasterio.open(raw_mask, "w", **mask_profile)
        try:
            _describe(dst, mask_dst, tags, threshold, as_float)
            yield BlockWriter(dst, mask_dst, threshold, as_float, block)
        finally:
            dst.close()
            if mask_dst is not None:
                mask_dst.close()
        to_cog(raw_out, tmp_out)
        if raw_mask is not None and tmp_mask is not None:
            to_cog(raw_mask, tmp_mask, resampling="nearest")
    finally:
        for p in (raw_out, raw_mask):
            if p is not None and p.exists():
                p.unlink()


class RowSink(Protocol):
    """Where :func:`predict_rows` sends finished rows (in order, from the
    writer thread)."""

    def skip_from(self, first_row: int) -> None: ...

    def add(self, prob: np.ndarray, valid: np.ndarray) -> None: ...

    def close(self) -> None: ...


def _describe(
    dst: rasterio.io.DatasetWriter,
    mask_dst: rasterio.io.DatasetWriter | None,
    tags: dict[str, str],
    threshold: float,
    as_float: bool,
) -> None:
    dst.update_tags(**tags)
    dst.set_band_description(1, "road probability")
    if not as_float:
        # GDAL's scale lets QGIS and gdalinfo show true probabilities.
        dst.scales = (1.0 / enc.PROB_SCALE,)
        dst.offsets = (0.0,)
    if mask_dst is not None:
        mask_dst.update_tags(**tags)
        mask_dst.update_tags(**{enc.TAG_VALUE: enc.mask_value(threshold)})
        mask_dst.set_band_description(1, "road mask")
        mask_dst.write_colormap(1, MASK_COLORMAP)
