"""The streaming inference pipeline.

``predict_raster`` reads a GeoTIFF one strip of tiles at a time, normalises
it with whole-raster statistics, runs the network on batches of overlapping
tiles, blends the tiles with a smooth weight window and writes finished rows
as soon as no later tile can touch them. Memory depends on the raster's
width, the tile size and the batch size, never on its area.

Three threads overlap the work: a reader fills a bounded queue with batches,
the calling thread runs the model (TensorFlow releases the GIL), and a writer
drains a bounded queue of finished rows to disk.

Each part has a module of its own; this one plans a run and drives them, and
re-exports their public names:

* :mod:`roadseg.tile_plan`: the tile grid of a raster (:class:`Plan`);
* :mod:`roadseg.reader`: batches of normalised tiles, read ahead in a thread;
* :mod:`roadseg.inference`: the compiled model call, test-time augmentation,
  batch halving on out-of-memory errors and the starting GPU batch size;
* :mod:`roadseg.blending`: weighted tiles summed into finished rows;
* :mod:`roadseg.writer`: finished rows encoded into blocks and written;
* :mod:`roadseg.preview`: the PNG preview.
"""

from __future__ import annotations

import logging
import os
import queue
import shutil
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import rasterio

from roadseg import __version__, interrupt
from roadseg import encoding as enc
from roadseg.blending import PIECE_ROWS, WEIGHT_CHUNK_PX, RowBlender
from roadseg.errors import RoadsegError, UnsupportedRasterError
from roadseg.fused import inference_network
from roadseg.inference import (
    ACTIVATIONS_PER_LEVEL,
    DEFAULT_MAX_MEMORY,
    GPU_HEADROOM,
    MAX_AUTO_BATCH,
    TTA_MODES,
    HalvingInfer,
    batch_for_free_memory,
    configure_devices,
    gpu_free_bytes,
    make_infer_fn,
    starting_batch_size,
    tile_activation_bytes,
    tiles_within_memory,
    tta_transforms,
    with_tta,
)
from roadseg.journal import RunJournal, journal_dir, run_identity
from roadseg.model import LoadedModel
from roadseg.precision import PRECISIONS, resolve_precision
from roadseg.preprocess import Normalizer, compute_normalizer, select_bands
from roadseg.preview import PREVIEW_SIDE, write_preview
from roadseg.raster_io import (
    atomic_output,
    check_dtype,
    check_output,
    gdal_env,
    maybe_atomic_output,
    open_raster,
)
from roadseg.reader import READ_CHUNK_PX, iter_batches, prefetch
from roadseg.tile_plan import Plan, tile_rows_for
from roadseg.tiling import axis_spans, validate_tiling
from roadseg.writer import (
    DONE,
    JOURNAL_BLOCK,
    MASK_COLORMAP,
    BlockSink,
    BlockWriter,
    RowSink,
    encode_rows,
    raw_outputs,
    writer_thread,
)

__all__ = [
    "ACTIVATIONS_PER_LEVEL",
    "DEFAULT_MAX_MEMORY",
    "DEFAULT_BATCH",
    "DEFAULT_OVERLAP",
    "GPU_HEADROOM",
    "JOURNAL_BLOCK",
    "MASK_COLORMAP",
    "MAX_AUTO_BATCH",
    "PIECE_ROWS",
    "PREVIEW_SIDE",
    "READ_CHUNK_PX",
    "TTA_MODES",
    "WEIGHT_CHUNK_PX",
    "BlockSink",
    "BlockWriter",
    "HalvingInfer",
    "Plan",
    "PredictOptions",
    "PredictResult",
    "PreparedRun",
    "RowBlender",
    "RowSink",
    "batch_for_free_memory",
    "batch_within_memory",
    "configure_devices",
    "encode_rows",
    "gpu_free_bytes",
    "inference_for",
    "iter_batches",
    "journal_identity",
    "make_infer_fn",
    "predict_raster",
    "predict_rows",
    "prepare_run",
    "raw_outputs",
    "starting_batch_size",
    "tile_activation_bytes",
    "tiles_within_memory",
    "tile_rows_for",
    "tta_transforms",
    "with_tta",
    "write_preview",
]

log = logging.getLogger(__name__)

DEFAULT_OVERLAP = 32
DEFAULT_BATCH = 8


@dataclass(frozen=True)
class PredictOptions:
    """Options of :func:`predict_raster` (None means: the model's own value).

    ``batch_size=None`` starts with :data:`DEFAULT_BATCH` tiles per model call
    on a CPU, and on a GPU with as many as its free memory holds
    (:func:`starting_batch_size`); a batch that still runs out of memory is
    halved (:class:`HalvingInfer`). Whatever was asked, a model call holds
    at most the tiles whose activations fit in ``max_memory`` bytes
    (:func:`tiles_within_memory`); test-time augmentation runs its copies one
    call after another, so it costs time, not memory. The defaults are the CLI's:
    ``precision="auto"`` runs bfloat16 on a CPU with AVX-512-BF16 or AMX and
    float16 on a GPU (see :func:`roadseg.precision.resolve_precision`); pass
    ``"float32"`` for full precision everywhere.
    """

    tile_size: int | None = None
    overlap: int = DEFAULT_OVERLAP
    batch_size: int | None = None
    bands: tuple[int, ...] | None = None
    threshold: float | None = None
    mask_path: Path | None = None
    preview_path: Path | None = None
    as_float: bool = False
    precision: str = "auto"
    tta: str = "none"
    overwrite: bool = False
    progress: bool = False
    resume: bool = False
    max_memory: int = DEFAULT_MAX_MEMORY
    engine: str = "tensorflow"
    #: The input's normalisation, instead of the statistics of the input itself
    #: (evaluate predicts a window of a raster with the whole raster's).
    normalizer: Normalizer | None = None


@dataclass(frozen=True)
class PredictResult:
    """What :func:`predict_raster` wrote, and how long it took."""

    output: Path
    mask: Path | None
    preview: Path | None
    tiles: int
    seconds: float
    model_seconds: float
    threshold: float
    tags: dict[str, str] = field(default_factory=dict)


def predict_raster(
    input_path: str | os.PathLike[str],
    output_path: str | os.PathLike[str],
    model: LoadedModel,
    options: PredictOptions = PredictOptions(),
    *,
    infer_fn: Callable[[np.ndarray], np.ndarray] | None = None,
) -> PredictResult:
    """Write a road probability GeoTIFF for ``input_path``.

    Args:
        input_path: any GDAL raster (GeoTIFF, COG, VRT, ...).
        output_path: the probability GeoTIFF to write (cloud-optimized).
        model: a loaded model (:func:`roadseg.model.load_model`).
        options: see :class:`PredictOptions`.
        infer_fn: replaces the network (tests use an identity function).

    Returns:
        A :class:`PredictResult`.

    Raises:
        InvalidRasterError, UnsupportedRasterError: bad input raster.
        OutputError: an output cannot be written.
    """
    started = time.perf_counter()
    input_path = Path(input_path)
    output_path = Path(output_path)
    info = model.info
    tile = options.tile_size or info.tile_size
    threshold = info.threshold if options.threshold is None else options.threshold
    _check_options(options, tile, threshold)
    outputs = [(output_path, "output")]
    if options.mask_path is not None:
        outputs.append((Path(options.mask_path), "mask"))
    if options.preview_path is not None:
        outputs.append((Path(options.preview_path), "preview"))
    if len({p.resolve() for p, _ in outputs}) != len(outputs):
        raise RoadsegError("the output, mask and preview paths must differ")
    for path, what in outputs:
        check_output(path, overwrite=options.overwrite, inputs=(input_path,), what=what)
    fixed = _fixed_tile(model)
    if fixed is not None and fixed != tile:
        raise UnsupportedRasterError(
            f"the model only takes {fixed}x{fixed} tiles; use --tile-size {fixed}"
        )
    stale = None if options.resume else _stale_journal(output_path)

    with gdal_env(), open_raster(input_path, expand_palette=True) as src:
        run = prepare_run(src, input_path, model, options, infer_fn=infer_fn)
        if src.crs is None and not src.gcps[1]:
            log.warning(
                "%s has no CRS; the output is written on the same pixel grid without one",
                input_path.name,
            )
        plan, tags = run.plan, run.tags
        with (
            atomic_output(output_path, overwrite=options.overwrite) as tmp_out,
            maybe_atomic_output(options.mask_path, options.overwrite) as tmp_mask,
            maybe_atomic_output(options.preview_path, options.overwrite) as tmp_preview,
        ):
            journal = None
            if options.resume:
                identity = journal_identity(input_path, model, run.tags, options)
                journal = RunJournal(output_path, identity, block=JOURNAL_BLOCK)
            tiles, model_seconds = _run(src, run, tmp_out, tmp_mask, options, journal)
            if tmp_preview is not None:
                write_preview(src, plan.bands, plan.normalizer, tmp_out, tmp_preview)
    if journal is not None:
        journal.finish()  # the outputs are in place
    elif stale is not None:
        shutil.rmtree(stale, ignore_errors=True)  # nothing left to continue
    return PredictResult(
        output=output_path,
        mask=options.mask_path,
        preview=options.preview_path,
        tiles=tiles,
        seconds=time.perf_counter() - started,
        model_seconds=model_seconds,
        threshold=threshold,
        tags=tags,
    )


@dataclass
class PreparedRun:
    """What every part of one raster's prediction shares: the tiling plan,
    the inference function and the tags of the outputs."""

    plan: Plan
    infer_fn: Callable[[np.ndarray], np.ndarray]
    tags: dict[str, str]
    threshold: float
    precision: str
    batch_size: int = DEFAULT_BATCH


def prepare_run(
    src: rasterio.io.DatasetReader,
    input_path: Path,
    model: LoadedModel,
    options: PredictOptions,
    *,
    infer_fn: Callable[[np.ndarray], np.ndarray] | None = None,
) -> PreparedRun:
    """Check ``src`` against the model and options; plan the tiles, resolve the
    precision and build the inference function (not traced yet).

    Raises:
        InvalidRasterError, UnsupportedRasterError: bad input raster.
        RoadsegError: bad options.
    """
    info = model.info
    tile = options.tile_size or info.tile_size
    threshold = info.threshold if options.threshold is None else options.threshold
    _check_options(options, tile, threshold)
    check_dtype(src, input_path)
    bands = select_bands(src, options.bands, info.bands, input_path)
    normalizer = options.normalizer or compute_normalizer(src, bands, info.normalization)
    plan = Plan(
        height=src.height,
        width=src.width,
        tile=tile,
        overlap=options.overlap,
        rows=axis_spans(src.height, tile, options.overlap),
        cols=axis_spans(src.width, tile, options.overlap),
        bands=bands,
        normalizer=normalizer,
    )
    precision = "identity"
    batch = options.batch_size or DEFAULT_BATCH
    engine = "tensorflow"
    if infer_fn is None:
        infer_fn, engine, precision = inference_for(model, tile, options)
        dtype_bytes = 2 if precision in ("float16", "bfloat16") else 4
        if options.batch_size is None:
            batch = starting_batch_size(DEFAULT_BATCH, tile, info.filters, dtype_bytes)
            if batch != DEFAULT_BATCH:
                log.info("starting with %d tiles per batch (free GPU memory)", batch)
        batch = batch_within_memory(batch, options, tile, info.filters, dtype_bytes)
    tags = {
        enc.TAG_VERSION: __version__,
        enc.TAG_MODEL: model.path.name,
        enc.TAG_MODEL_SHA256: model.sha256,
        enc.TAG_TILE_SIZE: str(tile),
        enc.TAG_OVERLAP: str(options.overlap),
        enc.TAG_BANDS: ",".join(str(b) for b in bands),
        enc.TAG_NORMALIZATION: normalizer.method,
        enc.TAG_THRESHOLD: f"{threshold:g}",
        enc.TAG_PRECISION: precision,
        enc.TAG_TTA: options.tta,
        enc.TAG_VALUE: enc.probability_value(options.as_float),
    }
    if engine != "tensorflow":
        tags[enc.TAG_ENGINE] = engine
    # Never more tiles a call than the raster has: calls are padded to the batch
    # size (HalvingInfer), which must not make a small raster pay for blanks.
    batch = max(1, min(batch, len(plan.rows) * len(plan.cols)))
    return PreparedRun(plan, infer_fn, tags, threshold, precision, batch)


def inference_for(
    model: LoadedModel, tile: int, options: PredictOptions
) -> tuple[Callable[[np.ndarray], np.ndarray], str, str]:
    """The inference function of ``options.engine`` (with ``options.tta``), the
    engine and the precision it runs (one home for predict and evaluate).

    Raises:
        EngineError: an engine that cannot run the precision asked for.
        MissingDependencyError: the engine's packages are not installed.
    """
    from roadseg.engines import network_fn, resolve_engine

    info = model.info
    engine = resolve_engine(options.engine)
    if engine == "tensorflow":
        configure_devices()
        precision = resolve_precision(options.precision)
        network = inference_network(model.model, info.filters, info.bands, precision)
        return make_infer_fn(network, tile, info.bands, options.tta), engine, precision
    call = network_fn(model, engine, options.precision)
    transforms = tta_transforms(options.tta)
    infer = call if len(transforms) == 1 else with_tta(call, transforms)
    return infer, engine, call.precision


def batch_within_memory(
    batch: int, options: PredictOptions, tile: int, filters: tuple[int, ...], dtype_bytes: int
) -> int:
    """``batch`` cut to the tiles whose activations fit in ``options.max_memory``
    (with a warning when the user asked for more with ``batch_size``)."""
    most = tiles_within_memory(options.max_memory, tile, filters, dtype_bytes)
    if most is None or batch <= most:
        return batch
    if options.batch_size is not None:
        log.warning(
            "%d tiles of %d px per model call need about %.1f GB; using %d within the memory "
            "budget of %.1f GB (raise it with --max-memory)",
            batch,
            tile,
            batch * tile_activation_bytes(tile, filters, dtype_bytes) / 1e9,
            most,
            options.max_memory / 1e9,
        )
    return most


def journal_identity(
    input_path: Path, model: LoadedModel, tags: dict[str, str], options: PredictOptions
) -> dict[str, Any]:
    """What a resume journal of this run records: two runs with the same
    identity write the same pixels."""
    settings = {**tags, "as_float": options.as_float, "mask": options.mask_path is not None}
    if options.normalizer is not None:
        settings["normalizer"] = options.normalizer
    return run_identity(Path(input_path), model.sha256, settings)


def _check_options(options: PredictOptions, tile: int, threshold: float) -> None:
    try:
        validate_tiling(tile, options.overlap)
    except ValueError as exc:
        raise RoadsegError(str(exc)) from None
    if options.batch_size is not None and options.batch_size < 1:
        raise RoadsegError(f"batch size must be at least 1, got {options.batch_size}")
    if options.max_memory <= 0:
        raise RoadsegError(f"the memory budget must be positive, got {options.max_memory} bytes")
    if options.tta not in TTA_MODES:
        raise RoadsegError(f"tta must be one of {', '.join(TTA_MODES)}, got {options.tta!r}")
    if options.precision not in PRECISIONS:
        raise RoadsegError(
            f"precision must be one of {', '.join(PRECISIONS)}, got {options.precision!r}"
        )
    if not 0.0 < threshold < 1.0:
        raise RoadsegError(f"threshold must lie between 0 and 1, got {threshold}")


def _stale_journal(output_path: Path) -> Path | None:
    """The journal a killed ``--resume`` run left for ``output_path``, with a
    warning that this run (without ``--resume``) does not continue it."""
    folder = journal_dir(output_path)
    if not folder.is_dir():
        return None
    log.warning(
        "%s holds an unfinished --resume run of %s; add --resume to continue it "
        "(this run starts over and removes it when done)",
        folder.name,
        output_path.name,
    )
    return folder


def _fixed_tile(model: LoadedModel) -> int | None:
    shape = model.model.input_shape
    return int(shape[1]) if isinstance(shape[1], int) else None


def _run(
    src: rasterio.io.DatasetReader,
    run: PreparedRun,
    tmp_out: Path,
    tmp_mask: Path | None,
    options: PredictOptions,
    journal: Any = None,
) -> tuple[int, float]:
    with raw_outputs(
        src,
        tmp_out,
        tmp_mask,
        threshold=run.threshold,
        as_float=options.as_float,
        tags=run.tags,
        block=JOURNAL_BLOCK,
    ) as writer:
        start = writer.resume(journal, journal.start()) if journal is not None else 0
        return predict_rows(src, run, writer, options, start, run.plan.height)


def predict_rows(
    src: rasterio.io.DatasetReader,
    run: PreparedRun,
    sink: RowSink,
    options: PredictOptions,
    start: int,
    stop: int,
) -> tuple[int, float]:
    """Predict image rows ``start`` to ``stop`` (exclusive) and send them to ``sink``.

    Only the tile rows that touch those rows are computed (a halo of up to
    one tile above and below), and each row gets the contributions of the
    same tiles, added in the same order, as in a run over the whole raster,
    so its values are identical to that run's. ``sink`` may receive rows
    outside the range first and last (it is told where they start with
    ``skip_from``); it must drop those. ``sink.close()`` is called when all
    rows are in, from the writer thread.

    Returns:
        (tiles predicted, seconds spent in the model).
    """
    from tqdm import tqdm

    plan = run.plan
    model_seconds = 0.0
    if start >= stop:
        sink.close()
        return 0, 0.0
    first, last = tile_rows_for(plan, start, stop)
    sink.skip_from(max(plan.rows[first].start, 0))
    n_tiles = (last + 1 - first) * len(plan.cols)
    valid_rows: dict[int, np.ndarray] = {}
    blender = RowBlender(plan, first)
    wq: queue.Queue[Any] = queue.Queue(maxsize=4)
    errors: list[BaseException] = []
    wthread = threading.Thread(
        target=writer_thread, args=(wq, sink, errors), name="roadseg-writer", daemon=True
    )
    wthread.start()
    bar = tqdm(
        total=n_tiles,
        unit="tile",
        disable=not options.progress,
        desc=Path(src.name).name,
        dynamic_ncols=True,
        leave=True,
    )
    # A stand-in network (tests) gets its batches as they come.
    safe_infer = HalvingInfer(
        run.infer_fn, pad_to=None if run.precision == "identity" else run.batch_size
    )
    batches = prefetch(iter_batches(src, plan, run.batch_size, valid_rows, first, last), depth=3)
    try:
        for batch, where in batches:
            interrupt.check()  # a Ctrl-C/SIGTERM whose exception Python swallowed
            t0 = time.perf_counter()
            probs = safe_infer(batch)
            model_seconds += time.perf_counter() - t0
            for (i, j), prob in zip(where, probs, strict=True):
                done = blender.add(i, j, prob)
                if done is not None:
                    # A tile row finishes fewer rows than it covers.
                    for piece in blender.pieces(done, valid_rows.pop(i)):
                        wq.put(piece)
            bar.update(len(where))
            if errors:
                raise errors[0]
    finally:
        batches.close()  # stops and joins the reader thread, also on errors
        bar.close()
        wq.put(DONE)
        wthread.join()
    if errors:
        raise errors[0]
    return n_tiles, model_seconds
