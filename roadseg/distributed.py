"""Predict many rasters: in this process, on local worker processes, or on a Dask cluster.

The unit of work is one raster (a :class:`roadseg.batch.Job`). The same task
function runs everywhere:

* in-process (the default): the jobs run one after the other, as a loop of
  ``roadseg predict`` would;
* ``workers=N``: a Dask ``LocalCluster`` of N worker processes on this machine,
  one task thread each, with TensorFlow (and OpenMP/BLAS) limited to
  ``cores // N`` threads per process so the processes do not oversubscribe
  the cores;
* ``scheduler=ADDRESS``: an existing Dask cluster (``dask scheduler`` /
  ``dask worker``, dask-jobqueue, dask-kubernetes, Coiled...). Workers need
  roadseg installed and must see the model, the inputs and the output folder
  under the same paths (a shared file system).

Each worker process loads the model once and keeps it (keyed by the model's
path and SHA-256), each task writes its outputs atomically
(:func:`roadseg.predict.predict_raster` does), and an output that already holds
the result of the same model and options is not computed again: a rerun after
a failure, or a retried task whose first attempt had finished writing, only
does what is left. Tasks that raise an unexpected exception are retried
(``retries``); a :class:`~roadseg.errors.RoadsegError` (a bad input raster)
is not, since it would fail the same way again, and is reported with the job.

Dask is optional (``pip install "roadseg[dask]"``); the in-process path does
not need it.
"""

from __future__ import annotations

import contextlib
import functools
import glob
import logging
import os
import socket
import threading
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

from roadseg import __version__
from roadseg import encoding as enc
from roadseg.batch import Job
from roadseg.dask_setup import (
    INSTALL_HINT,
    THREAD_ENV,
    WORKERS_OR_SCHEDULER,
    MissingDependencyError,
    available_cores,
    check_workers_or_scheduler,
    configure_threads,
    dask_client,
    import_distributed,
    one_line,
    thread_env,
    threads_per_process,
)
from roadseg.errors import ModelError, OutputError, RoadsegError

__all__ = [
    "DEFAULT_RETRIES",
    "INSTALL_HINT",
    "MODEL_CACHE_SIZE",
    "THREAD_ENV",
    "WORKERS_OR_SCHEDULER",
    "BatchResult",
    "JobResult",
    "MissingDependencyError",
    "ModelRef",
    "Status",
    "Task",
    "assemble_job",
    "available_cores",
    "cached_model",
    "check_workers_or_scheduler",
    "configure_threads",
    "dask_client",
    "expected_tags",
    "import_distributed",
    "is_done",
    "predict_job",
    "predict_region_job",
    "remove_stale_temporaries",
    "run_jobs",
    "split_regions",
    "start_split_job",
    "thread_env",
    "threads_per_process",
]

log = logging.getLogger(__name__)

#: Retries of a task that raised an unexpected exception (a worker that died
#: is rescheduled by Dask itself, up to ``distributed.scheduler.allowed-failures``).
DEFAULT_RETRIES = 2

Status = Literal["predicted", "skipped", "failed"]


@dataclass(frozen=True)
class ModelRef:
    """A model file as workers find it: its path and the SHA-256 it must have."""

    path: Path
    sha256: str

    @classmethod
    def of(cls, path: str | os.PathLike[str] | None) -> ModelRef:
        """The model at ``path`` (the bundled model when None), hashed now.

        Raises:
            ModelError: the file is missing or not a Keras model archive.
        """
        from roadseg.model import bundled_model_path, file_sha256, read_model_info

        resolved = bundled_model_path() if path is None else Path(path)
        read_model_info(resolved)  # a missing or non-.keras file fails here, not on a worker
        return cls(path=resolved.resolve(), sha256=file_sha256(resolved))


@dataclass(frozen=True)
class JobResult:
    """What happened to one job."""

    job: Job
    status: Status
    tiles: int = 0
    seconds: float = 0.0
    error: str | None = None
    worker: str = ""


@dataclass(frozen=True)
class BatchResult:
    """Every job's result, in the order of the jobs, and the wall-clock time."""

    results: list[JobResult]
    seconds: float
    where: str

    def count(self, status: Status) -> int:
        return sum(r.status == status for r in self.results)

    @property
    def failed(self) -> list[JobResult]:
        return [r for r in self.results if r.status == "failed"]

    @property
    def tiles(self) -> int:
        return sum(r.tiles for r in self.results)


@dataclass(frozen=True)
class _Expected:
    """Tags a finished output of this run carries (see :func:`expected_tags`)."""

    tags: dict[str, str] = field(default_factory=dict)
    mask_tags: dict[str, str] = field(default_factory=dict)


# --------------------------------------------------------------------------- done check


def expected_tags(model_info: Any, sha256: str, options: Any) -> dict[str, str]:
    """The output tags a finished run of ``options`` must carry.

    These are the tags of :func:`roadseg.predict.predict_raster` that can be
    known without reading the input: the roadseg version, the model's
    SHA-256, tile size, overlap, test-time augmentation and value encoding;
    the bands and precision when they are given explicitly (``auto`` and the
    model's default bands are resolved on the worker).
    """
    tile = options.tile_size or model_info.tile_size
    tags = {
        enc.TAG_VERSION: __version__,
        enc.TAG_MODEL_SHA256: sha256,
        enc.TAG_TILE_SIZE: str(tile),
        enc.TAG_OVERLAP: str(options.overlap),
        enc.TAG_TTA: options.tta,
        enc.TAG_VALUE: enc.probability_value(options.as_float),
    }
    if options.bands is not None:
        tags[enc.TAG_BANDS] = ",".join(str(b) for b in options.bands)
    if options.precision != "auto":
        tags[enc.TAG_PRECISION] = options.precision
    return tags


def _expected(ref: ModelRef, options: Any) -> _Expected:
    from roadseg.model import ModelInfo, read_model_info

    info = read_model_info(ref.path) or ModelInfo()
    tags = expected_tags(info, ref.sha256, options)
    threshold = info.threshold if options.threshold is None else options.threshold
    # The mask's ROADSEG_VALUE describes the mask; the threshold decides it.
    mask_tags = {k: v for k, v in tags.items() if k != enc.TAG_VALUE}
    mask_tags[enc.TAG_THRESHOLD] = f"{threshold:g}"
    return _Expected(tags=tags, mask_tags=mask_tags)


def _has_tags(path: Path, expected: dict[str, str]) -> bool:
    """Whether ``path`` is a raster whose tags include ``expected``."""
    import rasterio

    if not path.is_file():
        return False
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with rasterio.open(path) as ds:
                tags = ds.tags()
    except (rasterio.errors.RasterioError, OSError):
        return False
    return all(tags.get(k) == v for k, v in expected.items())


def is_done(job: Job, expected: _Expected) -> bool:
    """Whether every output of ``job`` exists and holds this run's result.

    roadseg's outputs are deterministic (same input, model and options give
    the same bytes) and written atomically, so an output carrying the same
    model hash and options is exactly what a new run would write.
    """
    if not _has_tags(job.output, expected.tags):
        return False
    if job.mask is not None and not _has_tags(job.mask, expected.mask_tags):
        return False
    return job.preview is None or job.preview.is_file()


def _check_conflicts(
    jobs: Sequence[Job], done: set[int], expected: _Expected, overwrite: bool
) -> None:
    """Refuse to start when an output exists that this run did not make.

    Raises:
        OutputError: a job's output exists (from another model or options)
            and ``overwrite`` is False, or an output folder is unusable.
    """
    from roadseg.raster_io import check_output

    clashes: list[Path] = []
    for i, job in enumerate(jobs):
        if i in done:
            continue
        for out in job.outputs:
            check_output(out, overwrite=True, inputs=(job.input,))
        # An output of this very run (same model and options) may be replaced:
        # it would be written again byte for byte.
        ours = {
            job.output: _has_tags(job.output, expected.tags),
            job.mask: job.mask is not None and _has_tags(job.mask, expected.mask_tags),
        }
        clashes.extend(
            out for out in job.outputs if out.exists() and not overwrite and not ours.get(out)
        )
    if clashes:
        more = f" and {len(clashes) - 1} more" if len(clashes) > 1 else ""
        raise OutputError(
            f"{clashes[0]}{more} already exist from another model or other options; "
            "use --overwrite to replace them"
        )


# --------------------------------------------------------------------------- worker side

#: Models kept loaded per worker process.
MODEL_CACHE_SIZE = 2

_MODELS: dict[tuple[str, str], Any] = {}
_MODELS_LOCK = threading.Lock()


class _NoRetracingWarning(logging.Filter):
    """Drop TensorFlow's warning that a tf.function was traced again.

    Every raster gets its own compiled inference function, so a worker that
    predicts many rasters traces one per raster, as intended.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        return "triggered tf.function retracing" not in record.getMessage()


def _quiet_retracing() -> None:
    logger = logging.getLogger("tensorflow")
    if not any(isinstance(f, _NoRetracingWarning) for f in logger.filters):
        logger.addFilter(_NoRetracingWarning())


def cached_model(ref: ModelRef) -> Any:
    """The model of ``ref``, loaded once per process.

    Raises:
        ModelError: the file cannot be loaded or no longer has ``ref.sha256``.
    """
    key = (str(ref.path), ref.sha256)
    with _MODELS_LOCK:
        model = _MODELS.get(key)
        if model is None:
            from roadseg.model import load_model

            model = load_model(ref.path)
            if model.sha256 != ref.sha256:
                raise ModelError(
                    f"{ref.path} changed while roadseg was running (its SHA-256 differs); "
                    "run again with the model file left as it is"
                )
            # A long-lived worker may serve runs of several models; keep the
            # latest few, not every model it ever saw.
            while len(_MODELS) >= MODEL_CACHE_SIZE:
                _MODELS.pop(next(iter(_MODELS)))
            _MODELS[key] = model
        return model


def remove_stale_temporaries(job: Job) -> int:
    """Remove temporary files an earlier, killed attempt of ``job`` left behind.

    :func:`roadseg.raster_io.atomic_output` removes its temporaries on any
    exception, but a process killed outright (out of memory, a preempted
    machine) cannot. A run owns its jobs' output paths (it refuses to start
    over files it did not make), so temporaries named after them are its own.

    Returns:
        The number of files removed.
    """
    removed = 0
    for out in job.outputs:
        pattern = f".{glob.escape(out.stem)}.{'[a-z0-9_]' * 8}.tmp{glob.escape(out.suffix)}*"
        for name in glob.glob(os.path.join(glob.escape(str(out.parent)), pattern)):
            with contextlib.suppress(OSError):
                os.unlink(name)
                removed += 1
    return removed


def _worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def predict_job(
    job: Job,
    ref: ModelRef,
    options: Any,
    expected: _Expected,
    threads: int | None,
    resample: bool = True,
) -> JobResult:
    """Predict one job (the task every executor runs).

    The input is read at the model's GSD when the model records one and the
    input's differs (``resample``; see :mod:`roadseg.resample`).

    Returns ``skipped`` if the job's outputs are already there (a rerun, or a
    retried task whose first attempt finished writing), ``failed`` with the
    message for a :class:`RoadsegError`, else ``predicted``. Any other
    exception propagates, so the executor can retry it.
    """
    from roadseg.resample import predict_at_model_gsd

    if is_done(job, expected):
        return JobResult(job, "skipped", worker=_worker_name())
    configure_threads(threads)
    _quiet_retracing()
    if remove_stale_temporaries(job):
        log.info("removed temporary files of an earlier attempt at %s", job.output)
    try:
        model = cached_model(ref)
        run = _job_options(job, options)
        result = predict_at_model_gsd(job.input, job.output, model, run, resample=resample)
    except RoadsegError as exc:
        return JobResult(job, "failed", error=one_line(exc), worker=_worker_name())
    return JobResult(
        job, "predicted", tiles=result.tiles, seconds=result.seconds, worker=_worker_name()
    )


def _job_options(job: Job, options: Any) -> Any:
    """``options`` for one job's files. Leftovers here come from an earlier
    attempt of this very job: the caller refused to start over files this
    run did not make."""
    return replace(
        options, mask_path=job.mask, preview_path=job.preview, overwrite=True, progress=False
    )


def start_split_job(job: Job, ref: ModelRef, options: Any, threads: int | None) -> Any:
    """Open the journal of a split job (:func:`roadseg.regions.start_split`).

    Returns:
        The options every region of the job runs with, or the one-line
        message of a :class:`RoadsegError` (a bad input).
    """
    from roadseg.regions import start_split

    configure_threads(threads)
    try:
        model = cached_model(ref)
        return start_split(job.input, job.output, model, _job_options(job, options))
    except RoadsegError as exc:
        return one_line(exc)


def predict_region_job(
    job: Job, ref: ModelRef, region: Any, prepared: Any, threads: int | None
) -> Any:
    """Predict one region of a split job (:func:`roadseg.regions.predict_region`).

    ``prepared`` is what :func:`start_split_job` returned. Returns a
    :class:`roadseg.regions.RegionResult`, with ``error`` set for a
    :class:`RoadsegError`; any other exception propagates, to be retried.
    """
    from roadseg.regions import RegionResult, predict_region

    if isinstance(prepared, str):
        return RegionResult(region, error=prepared)
    configure_threads(threads)
    _quiet_retracing()
    try:
        model = cached_model(ref)
        return predict_region(job.input, job.output, model, prepared, region)
    except RoadsegError as exc:
        return RegionResult(region, error=one_line(exc))


def assemble_job(
    job: Job,
    ref: ModelRef,
    prepared: Any,
    expected: _Expected,
    threads: int | None,
    *regions: Any,
) -> JobResult:
    """Write a split job's outputs from its regions (:func:`roadseg.regions.assemble`)."""
    from roadseg.regions import assemble

    tiles = sum(r.tiles for r in regions)
    seconds = sum(r.seconds for r in regions)
    errors = [prepared] if isinstance(prepared, str) else [r.error for r in regions if r.error]
    if errors:
        return JobResult(job, "failed", tiles=tiles, error=errors[0], worker=_worker_name())
    if is_done(job, expected):  # a retry whose first attempt finished writing
        status: Status = "predicted" if tiles else "skipped"
        return JobResult(job, status, tiles=tiles, seconds=seconds, worker=_worker_name())
    configure_threads(threads)
    if remove_stale_temporaries(job):
        log.info("removed temporary files of an earlier attempt at %s", job.output)
    try:
        result = assemble(job.input, job.output, cached_model(ref), prepared)
    except RoadsegError as exc:
        return JobResult(job, "failed", tiles=tiles, error=one_line(exc), worker=_worker_name())
    tiles += result.tiles
    status = "predicted" if tiles or not all(r.skipped for r in regions) else "skipped"
    return JobResult(
        job, status, tiles=tiles, seconds=seconds + result.seconds, worker=_worker_name()
    )


def split_regions(
    job: Job,
    ref: ModelRef,
    split_above: int | None,
    region_rows: int,
    resample: bool = True,
) -> list[Any] | None:
    """The regions of ``job`` when its raster has more than ``split_above``
    pixels, else None (also when its header cannot be read: the task that
    predicts it whole reports why, and when it is read resampled to the
    model's GSD, which is done whole).
    """
    import rasterio

    from roadseg.model import read_model_info
    from roadseg.regions import plan_regions
    from roadseg.resample import input_pixel_size, plan_gsd

    if split_above is None:
        return None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with rasterio.open(job.input) as src:
                if src.width * src.height <= split_above:
                    return None
                height = src.height
                info = read_model_info(ref.path)
                model_gsd = info.gsd if info is not None else None
                if resample and model_gsd is not None:
                    measured = input_pixel_size(src)
                    if plan_gsd(measured, model_gsd, name=job.input.name).resample:
                        log.info("%s is read resampled, so it is not split", job.input.name)
                        return None
    except (rasterio.errors.RasterioError, OSError, RoadsegError):
        return None
    return plan_regions(height, region_rows)


# --------------------------------------------------------------------------- client side

#: The function run per job: ``(job, model, options, expected, threads) -> JobResult``.
Task = Callable[..., JobResult]


def run_jobs(
    jobs: Sequence[Job],
    model: str | os.PathLike[str] | None,
    options: Any = None,
    *,
    workers: int | None = None,
    scheduler: str | None = None,
    threads: int | None = None,
    retries: int = DEFAULT_RETRIES,
    progress: bool = False,
    resample: bool = True,
    split_above: int | None = None,
    region_rows: int | None = None,
    task: Task = predict_job,
    region_task: Callable[..., Any] = predict_region_job,
) -> BatchResult:
    """Predict every job: in-process, on ``workers`` local processes, or on ``scheduler``.

    Jobs whose outputs already hold this model's and these options' result
    are skipped without being sent anywhere. A job that fails is reported in
    the result (status ``failed``) and the others go on; run again to do only
    what is left.

    On Dask, a raster with more than ``split_above`` pixels is split into
    regions of ``region_rows`` rows, predicted as separate tasks and
    assembled into one output identical to the in-process one (see
    :mod:`roadseg.regions`); a rerun continues from the finished blocks.

    Args:
        jobs: from :func:`roadseg.batch.plan_jobs`.
        model: model file; None for the bundled model.
        options: :class:`roadseg.predict.PredictOptions` (their mask, preview
            and progress fields are set per job).
        workers: start a LocalCluster of this many worker processes.
        scheduler: address of a running Dask scheduler (``tcp://host:8786``).
        threads: TensorFlow threads per worker process. Default: all cores
            in-process, ``cores // workers`` on a LocalCluster, and the
            workers' own settings on an existing cluster.
        retries: retries of a task that raised an unexpected exception.
        progress: show a tqdm bar that advances as tasks complete.
        resample: read inputs at the model's GSD when it records one
            (:func:`roadseg.resample.predict_at_model_gsd`).
        split_above: split rasters with more pixels than this on Dask
            (default :data:`roadseg.regions.DEFAULT_SPLIT_ABOVE`; 0 splits
            every raster taller than one region). Ignored in-process.
        region_rows: rows of one region (a multiple of 256; default
            :data:`roadseg.regions.DEFAULT_REGION_ROWS`).
        task, region_task: the functions run per job and per region (tests
            replace them).

    Raises:
        MissingDependencyError: ``workers`` or ``scheduler`` without Dask.
        ModelError: the model file is missing or unusable.
        OutputError: an output exists from another model or options and
            ``options.overwrite`` is False.
        RoadsegError: both ``workers`` and ``scheduler`` given; bad
            ``region_rows``.
    """
    from roadseg.predict import PredictOptions
    from roadseg.regions import DEFAULT_REGION_ROWS, DEFAULT_SPLIT_ABOVE, plan_regions

    started = time.perf_counter()
    options = PredictOptions() if options is None else options
    split_above = DEFAULT_SPLIT_ABOVE if split_above is None else split_above
    region_rows = DEFAULT_REGION_ROWS if region_rows is None else region_rows
    plan_regions(1, region_rows)  # a bad region height fails here, before any work
    check_workers_or_scheduler(workers, scheduler)
    if workers is not None or scheduler is not None:
        import_distributed()  # fail before any file is looked at
    ref = ModelRef.of(model)
    expected = _expected(ref, options)
    results: dict[int, JobResult] = {}
    for i, job in enumerate(jobs):
        if is_done(job, expected):
            results[i] = JobResult(job, "skipped")
    _check_conflicts(jobs, set(results), expected, options.overwrite)
    todo = [i for i in range(len(jobs)) if i not in results]
    run = _Run(ref, options, expected, threads, retries, resample, task, region_task)
    where = "in-process"
    if todo:
        if workers is None and scheduler is None:
            units = len(todo)
            runner = _run_here(jobs, todo, run)
        else:
            where = (
                f"Dask scheduler {scheduler}"
                if scheduler is not None
                else f"{workers} local worker processes"
            )
            splits = {
                i: r
                for i in todo
                if (r := split_regions(jobs[i], ref, split_above, region_rows, resample))
                and len(r) > 1
            }
            units = sum(len(splits.get(i, [None])) for i in todo)
            if splits:
                regions = sum(len(r) for r in splits.values())
                where += f", {len(splits)} raster(s) split into {regions} regions"
            runner = _run_dask(
                jobs,
                todo,
                splits,
                run,
                workers,
                scheduler,
            )
        for i, result in _progress(runner, units, progress):
            results[i] = result
    return BatchResult(
        results=[results[i] for i in range(len(jobs))],
        seconds=time.perf_counter() - started,
        where=where,
    )


@dataclass(frozen=True)
class _Run:
    """What every task of one run gets."""

    ref: ModelRef
    options: Any
    expected: _Expected
    threads: int | None
    retries: int
    resample: bool
    task: Task
    region_task: Callable[..., Any]


#: What a runner yields: a finished job's index and result (or None and a
#: finished region's result), and how many tasks of the progress bar it ends.
_Event = tuple[int | None, Any, int]


def _progress(runner: Iterator[_Event], total: int, show: bool) -> Iterator[tuple[int, JobResult]]:
    """Pass job results through, advancing a bar as each task (a raster
    predicted whole, or a region of a split one) completes."""
    from tqdm import tqdm

    tiles = 0
    with tqdm(
        total=total, unit="task", disable=not show, dynamic_ncols=True, desc="predict"
    ) as bar:
        for i, result, units in runner:
            if units:
                tiles += getattr(result, "tiles", 0)
                elapsed = bar.format_dict.get("elapsed") or 0.0
                bar.set_postfix(tiles_s=f"{tiles / elapsed:.1f}" if elapsed else "-", refresh=False)
                bar.update(units)
            if i is not None:
                yield i, result


def _run_here(jobs: Sequence[Job], todo: list[int], run: _Run) -> Iterator[_Event]:
    for i in todo:
        for attempt in range(run.retries + 1):
            try:
                result = run.task(
                    jobs[i], run.ref, run.options, run.expected, run.threads, run.resample
                )
                break
            except (KeyboardInterrupt, SystemExit, MemoryError):
                raise
            except Exception as exc:
                if attempt == run.retries:
                    result = JobResult(jobs[i], "failed", error=one_line(exc))
                else:
                    log.warning("%s failed (%s); retrying", jobs[i].input, one_line(exc))
        yield i, result, 1


def _run_dask(
    jobs: Sequence[Job],
    todo: list[int],
    splits: dict[int, list[Any]],
    run: _Run,
    workers: int | None,
    scheduler: str | None,
) -> Iterator[_Event]:
    distributed = import_distributed()
    threads = run.threads
    if workers is not None:
        threads = threads or threads_per_process(workers)
    with dask_client(workers=workers, scheduler=scheduler, threads=threads) as client:
        token = f"{time.time_ns():x}"
        submit = functools.partial(client.submit, retries=run.retries, pure=False)
        jobs_of: dict[Any, int] = {}  # future -> job index, for futures that end a job
        regions_of: set[Any] = set()
        keep: list[Any] = []
        for i in todo:
            job = jobs[i]
            name = f"{job.input.stem}-{i}-{token}"
            if i not in splits:
                future = submit(
                    run.task, job, run.ref, run.options, run.expected, threads, run.resample,
                    key=f"roadseg-predict-{name}",
                )  # fmt: skip
                jobs_of[future] = i
                continue
            prepared = submit(
                start_split_job, job, run.ref, run.options, threads, key=f"roadseg-split-{name}"
            )
            parts = [
                submit(
                    run.region_task,
                    job,
                    run.ref,
                    region,
                    prepared,
                    threads,
                    key=f"roadseg-region-{name}-{region.index}",
                )  # fmt: skip
                for region in splits[i]
            ]
            done = submit(
                assemble_job, job, run.ref, prepared, run.expected, threads, *parts,
                key=f"roadseg-assemble-{name}",
            )  # fmt: skip
            keep.append(prepared)
            regions_of.update(parts)
            jobs_of[done] = i
        try:
            for future in distributed.as_completed([*jobs_of, *regions_of]):
                if future in regions_of:
                    try:
                        yield None, future.result(), 1
                    except Exception:  # reported by the job's assemble task
                        yield None, None, 1
                    continue
                i = jobs_of[future]
                try:
                    result = future.result()
                except Exception as exc:  # retries used up, or the worker died too often
                    result = JobResult(jobs[i], "failed", error=_failure(exc))
                yield i, result, 0 if i in splits else 1
        finally:
            client.cancel([*jobs_of, *regions_of, *keep])


def _failure(exc: BaseException) -> str:
    """A one-line reason for a task that failed on Dask."""
    if type(exc).__name__ == "KilledWorker":
        return "the worker running it died several times (out of memory?)"
    return one_line(exc)
