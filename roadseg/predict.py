"""The streaming inference pipeline.

``predict_raster`` reads a GeoTIFF one strip of tiles at a time, normalises
it with whole-raster statistics, runs the network on batches of overlapping
tiles, blends the tiles with a smooth weight window and writes finished rows
as soon as no later tile can touch them. Memory depends on the raster's
width, the tile size and the batch size, never on its area.

Three threads overlap the work: a reader fills a bounded queue with batches,
the calling thread runs the model (TensorFlow releases the GIL), and a writer
drains a bounded queue of finished rows to disk.
"""

from __future__ import annotations

import contextlib
import logging
import os
import queue
import shutil
import threading
import time
import warnings
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import rasterio

from roadseg import __version__, interrupt
from roadseg import encoding as enc
from roadseg.errors import RoadsegError, UnsupportedRasterError
from roadseg.journal import RunJournal, journal_dir, run_identity
from roadseg.model import LoadedModel
from roadseg.precision import PRECISIONS, gpu_available, resolve_precision, with_precision
from roadseg.preprocess import Normalizer, compute_normalizer, select_bands
from roadseg.raster_io import (
    atomic_output,
    check_dtype,
    check_output,
    gdal_env,
    maybe_atomic_output,
    open_raster,
    output_profile,
    read_rows,
    to_cog,
)
from roadseg.tiling import Span, axis_spans, reflect_index, validate_tiling, weight_window

log = logging.getLogger(__name__)

DEFAULT_OVERLAP = 32
DEFAULT_BATCH = 8
#: Rows of one output block, and of one resume journal block.
JOURNAL_BLOCK = 256
PREVIEW_SIDE = 1024


@dataclass(frozen=True)
class PredictOptions:
    """Options of :func:`predict_raster` (None means: the model's own value).

    ``batch_size=None`` starts with :data:`DEFAULT_BATCH` tiles per model call
    on a CPU, and on a GPU with as many as its free memory holds
    (:func:`starting_batch_size`); a batch that still runs out of memory is
    halved (:class:`HalvingInfer`). The defaults are the CLI's:
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


@dataclass
class _Plan:
    height: int
    width: int
    tile: int
    overlap: int
    rows: list[Span]
    cols: list[Span]
    bands: tuple[int, ...]
    normalizer: Normalizer

    @property
    def n_tiles(self) -> int:
        return len(self.rows) * len(self.cols)


def configure_devices() -> None:
    """Let TensorFlow grow GPU memory as needed instead of grabbing it all.

    Written by TensorFlow's guide; not measured here (no GPU on this machine).
    """
    import tensorflow as tf

    for gpu in tf.config.list_physical_devices("GPU"):
        try:
            tf.config.experimental.set_memory_growth(gpu, True)
        except RuntimeError:  # already initialised: nothing to change
            pass


TTA_MODES = ("none", "flip", "d4")


def _tta_transforms(tta: str) -> list[tuple[int, bool]]:
    """(quarter turns, horizontal flip) pairs for test-time augmentation."""
    if tta == "none":
        return [(0, False)]
    if tta == "flip":
        return [(0, False), (0, True)]
    if tta == "d4":
        return [(k, f) for k in range(4) for f in (False, True)]
    raise ValueError(f"tta must be one of {', '.join(TTA_MODES)}, got {tta!r}")


def make_infer_fn(
    model: Any, tile: int, bands: int, tta: str = "none"
) -> Callable[[np.ndarray], np.ndarray]:
    """A compiled ``batch -> probabilities`` function for one tile size.

    ``tf.function`` around ``model(x, training=False)`` instead of
    ``model.predict`` in a loop, which is slow and leaks memory. The batch
    dimension is left open so the last, smaller batch needs no padding and no
    retracing. With test-time augmentation every transformed copy of the
    batch goes through the model in one call and the inverse-transformed
    outputs are averaged.
    """
    import tensorflow as tf

    transforms = _tta_transforms(tta)
    spec = tf.TensorSpec([None, tile, tile, bands], tf.float32)

    def forward(x: Any, k: int, flip: bool) -> Any:
        if flip:
            x = tf.reverse(x, axis=[2])
        return tf.image.rot90(x, k) if k else x

    def inverse(y: Any, k: int, flip: bool) -> Any:
        y = tf.image.rot90(y, -k % 4) if k else y
        return tf.reverse(y, axis=[2]) if flip else y

    @tf.function(input_signature=[spec], reduce_retracing=True)
    def _infer(x: Any) -> Any:
        n = tf.shape(x)[0]
        stacked = tf.concat([forward(x, k, f) for k, f in transforms], axis=0)
        y = tf.cast(model(stacked, training=False), tf.float32)
        parts = [inverse(y[i * n : (i + 1) * n], k, f) for i, (k, f) in enumerate(transforms)]
        return tf.add_n(parts)[..., 0] / float(len(transforms))

    def infer(batch: np.ndarray) -> np.ndarray:
        return np.asarray(_infer(tf.constant(batch)))

    return infer


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

    plan: _Plan
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
    normalizer = compute_normalizer(src, bands, info.normalization)
    plan = _Plan(
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
    if infer_fn is None:
        configure_devices()
        precision = resolve_precision(options.precision)
        network = with_precision(model.model, precision)
        infer_fn = make_infer_fn(network, tile, info.bands, options.tta)
        if options.batch_size is None:
            half = precision in ("float16", "bfloat16")
            batch = starting_batch_size(DEFAULT_BATCH, tile, info.filters, 2 if half else 4)
            if batch != DEFAULT_BATCH:
                log.info("starting with %d tiles per batch (free GPU memory)", batch)
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
    return PreparedRun(plan, infer_fn, tags, threshold, precision, batch)


def journal_identity(
    input_path: Path, model: LoadedModel, tags: dict[str, str], options: PredictOptions
) -> dict[str, Any]:
    """What a resume journal of this run records: two runs with the same
    identity write the same pixels."""
    settings = {**tags, "as_float": options.as_float, "mask": options.mask_path is not None}
    return run_identity(Path(input_path), model.sha256, settings)


def _check_options(options: PredictOptions, tile: int, threshold: float) -> None:
    try:
        validate_tiling(tile, options.overlap)
    except ValueError as exc:
        raise RoadsegError(str(exc)) from None
    if options.batch_size is not None and options.batch_size < 1:
        raise RoadsegError(f"batch size must be at least 1, got {options.batch_size}")
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


# --------------------------------------------------------------------------- reader


_DONE = object()


#: Widest read of one strip, in pixels: a strip is read a few tile columns at a
#: time so the reader's buffers do not grow with the raster's width.
READ_CHUNK_PX = 2048


def _column_chunks(cols: list[Span], overlap: int, chunk_px: int) -> list[range]:
    """Consecutive runs of tile columns, each spanning at most about ``chunk_px`` pixels."""
    stride = max(1, cols[0].size - overlap)
    per = max(1, (chunk_px - overlap) // stride)
    return [range(j, min(j + per, len(cols))) for j in range(0, len(cols), per)]


def _iter_batches(
    src: rasterio.io.DatasetReader,
    plan: _Plan,
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
    chunks = _column_chunks(plan.cols, plan.overlap, chunk_px)
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


def _prefetch(iterator: Iterator[Any], depth: int) -> Generator[Any, None, None]:
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


# --------------------------------------------------------------------------- out of memory


def _is_out_of_memory(exc: BaseException) -> bool:
    """TensorFlow's out-of-memory error (without importing TensorFlow)."""
    return any(t.__name__ == "ResourceExhaustedError" for t in type(exc).__mro__)


class HalvingInfer:
    """An inference function that survives running out of (GPU) memory.

    When a batch does not fit, it is split in halves and retried, down to
    single tiles; the smaller size is kept for every later batch. Each tile's
    output does not depend on its batch neighbours, so the result is the same
    as with the original batch size. Written by TensorFlow's book for GPUs (a
    ``ResourceExhaustedError`` from the allocator); not measured on a GPU here.
    """

    def __init__(self, infer_fn: Callable[[np.ndarray], np.ndarray]) -> None:
        self.infer_fn = infer_fn
        self.cap: int | None = None

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        n = len(batch)
        cap = self.cap
        if cap is not None and n > cap:
            return np.concatenate([self(batch[i : i + cap]) for i in range(0, n, cap)])
        try:
            return self.infer_fn(batch)
        except Exception as exc:
            if not _is_out_of_memory(exc) or n == 1:
                raise
        self.cap = max(1, n // 2)
        log.warning(
            "out of memory with %d tiles per batch; continuing with %d (use --batch-size %d)",
            n,
            self.cap,
            self.cap,
        )
        return self(batch)


# --------------------------------------------------------------------------- GPU batch size


#: Activation tensors held per channel of each resolution level (encoder and
#: decoder together) in the batch-size estimate below. Deliberately generous:
#: the estimate only picks a starting size, and :class:`HalvingInfer` halves
#: a batch that still does not fit.
ACTIVATIONS_PER_LEVEL = 12
#: Share of the free GPU memory left unplanned (cuDNN workspaces, fragmentation).
GPU_HEADROOM = 0.25
#: Largest starting batch: beyond this a GPU is busy anyway.
MAX_AUTO_BATCH = 64


def tile_activation_bytes(tile: int, filters: tuple[int, ...], dtype_bytes: int) -> int:
    """Estimated activation memory of one ``tile`` x ``tile`` tile through the
    ResUNet with encoder ``filters`` (each level halves the side)."""
    per_pixel = sum(f / 4**level for level, f in enumerate(filters))
    return int(ACTIVATIONS_PER_LEVEL * per_pixel * tile * tile * dtype_bytes)


def batch_for_free_memory(
    free_bytes: int,
    per_tile_bytes: int,
    *,
    headroom: float = GPU_HEADROOM,
    most: int = MAX_AUTO_BATCH,
) -> int:
    """The largest batch whose tiles fit in ``free_bytes`` (at least 1, at most ``most``).

    Raises:
        ValueError: ``per_tile_bytes`` is not positive or ``headroom`` not in [0, 1).
    """
    if per_tile_bytes <= 0:
        raise ValueError(f"per-tile bytes must be positive, got {per_tile_bytes}")
    if not 0.0 <= headroom < 1.0:
        raise ValueError(f"headroom must lie in [0, 1), got {headroom}")
    usable = int(free_bytes * (1.0 - headroom))
    return max(1, min(most, usable // per_tile_bytes))


def gpu_free_bytes(run: Callable[..., Any] | None = None) -> int | None:
    """Free memory of the first visible NVIDIA GPU, from ``nvidia-smi``; None
    when it is missing or says nothing usable.

    TensorFlow does not report it: ``tf.config.experimental.get_memory_info``
    gives only the bytes TensorFlow itself uses, ``get_device_details`` only a
    name and compute capability.
    """
    import subprocess

    run = run or subprocess.run
    visible = os.environ.get("CUDA_VISIBLE_DEVICES", "").split(",")[0].strip()
    cmd = ["nvidia-smi", "--query-gpu=index,memory.free", "--format=csv,noheader,nounits"]
    try:
        out = run(cmd, capture_output=True, text=True, timeout=10, check=True).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    free: dict[str, int] = {}
    for line in out.splitlines():
        parts = [p.strip() for p in line.split(",")]
        if len(parts) == 2 and parts[1].isdigit():
            free[parts[0]] = int(parts[1]) << 20  # MiB
    if not free:
        return None
    return free.get(visible, next(iter(free.values())))


def starting_batch_size(
    requested: int,
    tile: int,
    filters: tuple[int, ...],
    dtype_bytes: int,
    *,
    has_gpu: Callable[[], bool] | None = None,
    free_bytes: Callable[[], int | None] = gpu_free_bytes,
) -> int:
    """The batch size to start with: ``requested`` on a CPU, else the largest
    batch the free GPU memory holds by :func:`tile_activation_bytes`.

    Falls back to ``requested`` when the free memory or the model's widths
    (``filters``, empty for a plain Keras file) are unknown.
    """
    if not filters or not (has_gpu or gpu_available)():
        return requested
    free = free_bytes()
    if free is None:
        return requested
    return batch_for_free_memory(free, tile_activation_bytes(tile, filters, dtype_bytes))


# --------------------------------------------------------------------------- blender


#: Rows per piece handed to the writer; divides its 256-row block.
PIECE_ROWS = 64

#: Columns of the weight sum computed at a time when rows are finished.
WEIGHT_CHUNK_PX = 1024


class _RowBlender:
    """Accumulates weighted tile outputs for the current tile row.

    The buffer is one tile high and spans the padded width. After tile row i
    is complete, the rows above the start of tile row i + 1 are final.

    The sum of the weights is not kept beside it (another buffer as large):
    it depends only on the tile grid, and :meth:`_weight_sum` computes it for
    the finished rows, a column chunk at a time, adding the same weights in
    the same order as a running sum would, so its bits are the same.
    """

    def __init__(self, plan: _Plan, first: int = 0) -> None:
        self.plan = plan
        self.c0 = plan.cols[0].start
        width = plan.cols[-1].stop - self.c0
        self.acc = np.zeros((plan.tile, width), dtype=np.float32)
        self.weights = weight_window(plan.tile, plan.overlap)
        self.first = first  # earlier tile rows are never added
        self.top = plan.rows[first].start  # image row of acc[0]
        self.done_row = 0  # image row of the first row _finish last returned
        self.pending = [len(plan.cols)] * len(plan.rows)
        self._col_starts = np.array([c.start - self.c0 for c in plan.cols])

    def add(self, i: int, j: int, prob: np.ndarray) -> np.ndarray | None:
        """Add one tile; return finished image rows when tile row ``i`` completes."""
        rspan, cspan = self.plan.rows[i], self.plan.cols[j]
        r = rspan.start - self.top
        c = cspan.start - self.c0
        t = self.plan.tile
        self.acc[r : r + t, c : c + t] += prob * self.weights
        self.pending[i] -= 1
        if self.pending[i]:
            return None
        end = self.plan.rows[i + 1].start if i + 1 < len(self.plan.rows) else rspan.stop
        return self._finish(i, end)

    def pieces(
        self, done: np.ndarray, valid: np.ndarray
    ) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """The rows :meth:`add` just returned, with their validity mask, cut
        at image rows that are multiples of :data:`PIECE_ROWS`.

        The writer buffers rows until it has a whole 256-row block, and keeps
        what lies beyond it; given 192-row blocks it held and copied up to 448
        rows of float32 (29 MB at 16384 px wide). Pieces that end on a
        multiple of 64 fill its blocks exactly, so it never holds more than
        one block, and a full queue holds a quarter as much.
        """
        row = self.done_row
        k = 0
        while k < done.shape[0]:
            step = PIECE_ROWS - (row + k) % PIECE_ROWS
            yield done[k : k + step], valid[k : min(k + step, done.shape[0])]
            k += step

    def _finish(self, i: int, end: int) -> np.ndarray:
        n = end - self.top
        lo = max(0, -self.top)  # skip reflected rows above the image
        self.done_row = self.top + lo
        hi = min(n, self.plan.height - self.top)
        done = np.empty((max(hi - lo, 0), self.plan.width), dtype=np.float32)
        for x0 in range(0, self.plan.width, WEIGHT_CHUNK_PX):
            x1 = min(x0 + WEIGHT_CHUNK_PX, self.plan.width)
            b0, b1 = x0 - self.c0, x1 - self.c0  # buffer columns
            wsum = self._weight_sum(i, self.top + lo, self.top + hi, b0, b1)
            np.divide(self.acc[lo:hi, b0:b1], wsum, out=done[:, x0:x1])
        # Slide the buffer up by n rows.
        self.acc[:-n] = self.acc[n:]
        self.acc[-n:] = 0.0
        self.top = end
        return done

    def _weight_sum(self, i: int, r0: int, r1: int, b0: int, b1: int) -> np.ndarray:
        """Sum of the weights of tile rows ``first..i`` over image rows
        ``[r0, r1)`` and buffer columns ``[b0, b1)``.

        Added tile row by tile row, then column by column, from 0: the order
        in which :meth:`add` adds the tiles, so every float32 value is what a
        running sum of whole weight windows would hold.
        """
        t = self.plan.tile
        out = np.zeros((max(r1 - r0, 0), b1 - b0), dtype=np.float32)
        ks = []
        k = i
        while k >= self.first and self.plan.rows[k].stop > r0:
            ks.append(k)
            k -= 1
        starts = self._col_starts
        j0 = int(np.searchsorted(starts + t, b0, side="right"))
        j1 = int(np.searchsorted(starts, b1, side="left"))
        for k in reversed(ks):
            rs = self.plan.rows[k]
            a, b = max(r0, rs.start), min(r1, rs.stop)
            if a >= b:
                continue
            for c in starts[j0:j1]:
                ca, cb = max(b0, c), min(b1, c + t)
                out[a - r0 : b - r0, ca - b0 : cb - b0] += self.weights[
                    a - rs.start : b - rs.start, ca - c : cb - c
                ]
        return out


# --------------------------------------------------------------------------- writer


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


class _BlockWriter(BlockSink):
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


def _writer_thread(q: queue.Queue[Any], writer: RowSink, errors: list[BaseException]) -> None:
    try:
        while True:
            item = q.get()
            if item is _DONE:
                writer.close()
                return
            if errors:
                continue  # drain after a failure so the producer never blocks
            writer.add(*item)
    except BaseException as exc:
        errors.append(exc)
        while q.get() is not _DONE:
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
) -> Iterator[_BlockWriter]:
    """The block writer of a probability (and mask) output on ``src``'s grid.

    Opens intermediate GeoTIFFs beside ``tmp_out``/``tmp_mask``, yields a
    :class:`_BlockWriter` over them (the caller closes the writer when every
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
            yield _BlockWriter(dst, mask_dst, threshold, as_float, block)
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


def tile_rows_for(plan: _Plan, start: int, stop: int) -> tuple[int, int]:
    """The first and last tile rows whose blended output covers image rows
    ``start`` to ``stop`` (exclusive) exactly as a run over the whole raster
    does: every tile row that touches them, from the first whose span ends
    below ``start`` to the one after which every row above ``stop`` is final."""
    rows = plan.rows
    first = next((i for i, r in enumerate(rows) if r.stop > start), len(rows))
    last = next(
        (i for i in range(first, len(rows) - 1) if rows[i + 1].start >= stop), len(rows) - 1
    )
    return first, last


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
    blender = _RowBlender(plan, first)
    wq: queue.Queue[Any] = queue.Queue(maxsize=4)
    errors: list[BaseException] = []
    wthread = threading.Thread(
        target=_writer_thread, args=(wq, sink, errors), name="roadseg-writer", daemon=True
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
    safe_infer = HalvingInfer(run.infer_fn)
    batches = _prefetch(_iter_batches(src, plan, run.batch_size, valid_rows, first, last), depth=3)
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
        wq.put(_DONE)
        wthread.join()
    if errors:
        raise errors[0]
    return n_tiles, model_seconds


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


# --------------------------------------------------------------------------- preview


def write_preview(
    src: rasterio.io.DatasetReader,
    bands: tuple[int, ...],
    normalizer: Normalizer,
    prob_path: Path,
    png_path: Path,
    side: int = PREVIEW_SIDE,
) -> None:
    """A downsampled PNG of the image with road probabilities drawn in red.

    Both reads are decimated by GDAL (overviews when present), so memory is
    bounded by the preview size.
    """
    from PIL import Image
    from rasterio.enums import Resampling

    scale = max(src.width, src.height) / side
    h = max(1, round(src.height / max(scale, 1.0)))
    w = max(1, round(src.width / max(scale, 1.0)))
    show = list(bands[:3]) if len(bands) >= 3 else [bands[0]] * 3
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        data = src.read(show, out_shape=(3, h, w), resampling=Resampling.average)
    norm = Normalizer(
        tuple(normalizer.low[bands.index(b)] for b in show),
        tuple(normalizer.high[bands.index(b)] for b in show),
        normalizer.method,
    )
    rgb = norm(np.moveaxis(data, 0, -1))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", rasterio.errors.NotGeoreferencedWarning)
        ds = rasterio.open(prob_path)
    with ds:
        prob = ds.read(1, out_shape=(h, w), resampling=Resampling.average, masked=True)
        scale_p = ds.scales[0] if ds.dtypes[0] == "uint8" else 1.0
    alpha = np.clip(prob.filled(0).astype(np.float32) * scale_p, 0, 1)[..., None] * 0.85
    red = np.array([1.0, 0.15, 0.1], dtype=np.float32)
    out = rgb * (1 - alpha) + red * alpha
    Image.fromarray(np.rint(out * 255).astype(np.uint8)).save(png_path, format="PNG")
