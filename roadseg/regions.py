"""One raster too big for one worker: row regions predicted in parallel.

A raster is cut into regions of whole rows (:data:`DEFAULT_REGION_ROWS`, a
multiple of the 256-row output block). Each region is predicted on its own,
by any process that sees the input and the output folder:

* the tiles it computes are every tile row that touches its rows, so it
  reaches up to one tile (the *halo*) above and below its rows; each of its
  rows gets the contributions of the same tiles, added in the same order,
  as in a run over the whole raster (:func:`roadseg.predict.predict_rows`),
  and every tile's output depends only on its own pixels, so the rows are
  identical to that run's, bit for bit;
* it writes its finished rows, block by block, into the resume journal of
  the output (:mod:`roadseg.journal`): each block file is written under a
  temporary name and renamed when whole, so a killed worker leaves only
  whole blocks, and a region started again skips the blocks it finished.

When every region is done, :func:`assemble` runs the ordinary resumed
prediction: it finds every block finished, copies them into one output
and converts it to a cloud-optimized GeoTIFF with the same code, tags and
overviews as an in-process run, so the file is identical to that run's.
The journal is removed then.

The precision is resolved once (:func:`start_split`), where the journal is
opened, and forced on every region, so that ``auto`` cannot resolve
differently on different machines of a cluster.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from roadseg.errors import RoadsegError
from roadseg.journal import RunJournal
from roadseg.model import LoadedModel
from roadseg.predict import (
    PredictOptions,
    PredictResult,
    journal_identity,
    predict_raster,
    predict_rows,
    prepare_run,
)
from roadseg.raster_io import gdal_env, open_raster
from roadseg.writer import JOURNAL_BLOCK, BlockSink

log = logging.getLogger(__name__)

#: Rows of one region (16 output blocks).
DEFAULT_REGION_ROWS = 4096
#: Rasters with more pixels than this are split (when running on Dask): an
#: 8192 x 8192 raster is, in two regions.
DEFAULT_SPLIT_ABOVE = 50_000_000


@dataclass(frozen=True)
class Region:
    """Image rows ``start`` to ``stop`` (exclusive) of a raster."""

    index: int
    start: int
    stop: int


@dataclass(frozen=True)
class RegionResult:
    """What the prediction of one region did."""

    region: Region
    tiles: int = 0
    seconds: float = 0.0
    skipped: bool = False
    error: str | None = None


def plan_regions(height: int, rows: int = DEFAULT_REGION_ROWS) -> list[Region]:
    """Regions of ``rows`` rows covering a raster ``height`` rows high.

    Raises:
        RoadsegError: ``rows`` is not a positive multiple of the 256-row block.
    """
    if rows < JOURNAL_BLOCK or rows % JOURNAL_BLOCK:
        raise RoadsegError(
            f"region rows must be a positive multiple of {JOURNAL_BLOCK}, got {rows}"
        )
    count = max(1, math.ceil(height / rows))
    return [Region(k, k * rows, min(height, (k + 1) * rows)) for k in range(count)]


def start_split(
    input_path: str | os.PathLike[str],
    output_path: str | os.PathLike[str],
    model: LoadedModel,
    options: PredictOptions,
) -> PredictOptions:
    """Open (or continue) the journal of a split run; return the options
    every region must use (the precision resolved here).

    A journal of another run (input, model or options) is discarded.

    Raises:
        InvalidRasterError, UnsupportedRasterError, RoadsegError: as
            :func:`roadseg.predict.predict_raster` would for this input.
    """
    input_path = Path(input_path)
    with gdal_env(), open_raster(input_path, expand_palette=True) as src:
        run = prepare_run(src, input_path, model, options)
    fixed = dataclasses.replace(options, precision=run.precision, resume=True)
    identity = journal_identity(input_path, model, run.tags, fixed)
    done = RunJournal(Path(output_path), identity, JOURNAL_BLOCK).start()
    if done:
        log.info("%s: %d block(s) already finished", input_path.name, done)
    return fixed


class JournalSink(BlockSink):
    """Saves rows ``start`` to ``stop`` as journal blocks (``start`` on a block edge)."""

    def __init__(
        self, journal: RunJournal, start: int, stop: int, threshold: float, options: Any
    ) -> None:
        mask = options.mask_path is not None
        super().__init__(threshold, options.as_float, mask, start=start, stop=stop)
        self.journal = journal

    def _write(self, bands: list[np.ndarray]) -> None:
        self.journal.save(self.row // self.block, bands)


def predict_region(
    input_path: str | os.PathLike[str],
    output_path: str | os.PathLike[str],
    model: LoadedModel,
    options: PredictOptions,
    region: Region,
) -> RegionResult:
    """Predict one region into the journal that :func:`start_split` opened.

    Blocks of the region already in the journal (from an earlier attempt)
    are not computed again.

    Raises:
        RoadsegError: the journal is not there (see :meth:`RunJournal.attach`),
            and what :func:`roadseg.predict.predict_raster` raises for the input.
    """
    started = time.perf_counter()
    input_path = Path(input_path)
    with gdal_env(), open_raster(input_path, expand_palette=True) as src:
        run = prepare_run(src, input_path, model, options)
        journal = RunJournal(
            Path(output_path),
            journal_identity(input_path, model, run.tags, options),
            JOURNAL_BLOCK,
        )
        journal.attach()
        first = region.start // JOURNAL_BLOCK
        blocks = math.ceil((region.stop - region.start) / JOURNAL_BLOCK)
        done = next((k for k in range(blocks) if not journal.is_done(first + k)), blocks)
        start = region.start + done * JOURNAL_BLOCK
        if start >= region.stop:
            return RegionResult(region, skipped=True, seconds=time.perf_counter() - started)
        if done:
            log.info("region %d: %d block(s) already finished", region.index, done)
        sink = JournalSink(journal, start, region.stop, run.threshold, options)
        tiles, _ = predict_rows(src, run, sink, options, start, region.stop)
    return RegionResult(region, tiles=tiles, seconds=time.perf_counter() - started)


def assemble(
    input_path: str | os.PathLike[str],
    output_path: str | os.PathLike[str],
    model: LoadedModel,
    options: PredictOptions,
) -> PredictResult:
    """Write the outputs from the finished regions' blocks and remove the journal.

    This is :func:`roadseg.predict.predict_raster` resuming a run whose
    blocks are all finished; a block that is missing or damaged is computed
    here (with a log line), so the result is complete either way.
    """
    return predict_raster(input_path, output_path, model, dataclasses.replace(options, resume=True))
