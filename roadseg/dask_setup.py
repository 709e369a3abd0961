"""Setting up Dask for roadseg: importing it (or saying how to install it),
sizing the numeric libraries' thread pools of each worker process, and the
client on a new local cluster or on a running scheduler.

:mod:`roadseg.distributed` (rasters) and :mod:`roadseg.vectorize` (vector
blocks) run their tasks through this client.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator
from typing import Any

# MissingDependencyError lives in roadseg.errors (the export engines raise it too);
# importing it here keeps roadseg.dask_setup.MissingDependencyError working.
from roadseg.errors import MissingDependencyError, RoadsegError

INSTALL_HINT = 'pip install "roadseg[dask]"'


#: Environment variables that size the thread pools of the numeric libraries
#: (and GDAL's decompression threads, which roadseg otherwise sets to all cores).
THREAD_ENV = (
    "OMP_NUM_THREADS",
    "MKL_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "TF_NUM_INTRAOP_THREADS",
    "GDAL_NUM_THREADS",
)


#: Why a run given both a number of workers and a scheduler address is refused.
WORKERS_OR_SCHEDULER = "give either a number of workers or a scheduler address, not both"


def check_workers_or_scheduler(workers: int | None, scheduler: str | None) -> None:
    """Refuse a run given both local ``workers`` and a ``scheduler`` address.

    Raises:
        RoadsegError: both were given.
    """
    if workers is not None and scheduler is not None:
        raise RoadsegError(WORKERS_OR_SCHEDULER)


#: Thread counts set in this process by :func:`configure_threads` (at most one).
_THREADS_SET: list[int] = []


def configure_threads(threads: int | None) -> None:
    """Limit this process's numeric thread pools to ``threads`` (None: leave them).

    Environment variables cover libraries not loaded yet; TensorFlow's pools
    are set directly, which works until TensorFlow runs its first operation
    in this process (later calls change nothing).
    """
    if threads is None or _THREADS_SET:
        return
    _THREADS_SET.append(threads)
    for name in THREAD_ENV:
        os.environ[name] = str(threads)
    os.environ["TF_NUM_INTEROP_THREADS"] = "1"
    import tensorflow as tf

    with contextlib.suppress(RuntimeError):  # TensorFlow already initialised
        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(1)


def one_line(exc: BaseException) -> str:
    """The message of ``exc`` on one line (its type's name when it has none)."""
    text = " ".join(str(exc).split())
    return text or type(exc).__name__


def import_distributed() -> Any:
    """The ``distributed`` module.

    Raises:
        MissingDependencyError: Dask is not installed.
    """
    try:
        import distributed
    except ImportError:
        raise MissingDependencyError(
            f"running on Dask needs dask and distributed; install them with {INSTALL_HINT}"
        ) from None
    return distributed


def available_cores() -> int:
    """CPU cores this process may use."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def threads_per_process(workers: int) -> int:
    """TensorFlow threads for each of ``workers`` processes sharing this machine."""
    return max(1, available_cores() // workers)


def thread_env(threads: int) -> dict[str, str]:
    """Environment that limits one worker process to ``threads`` threads."""
    env = {name: str(threads) for name in THREAD_ENV}
    env["TF_NUM_INTEROP_THREADS"] = "1"
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", os.environ.get("TF_CPP_MIN_LOG_LEVEL", "2"))
    return env


@contextlib.contextmanager
def dask_client(
    *, workers: int | None = None, scheduler: str | None = None, threads: int | None = None
) -> Iterator[Any]:
    """A Dask client on a new LocalCluster (``workers``) or a running scheduler.

    Raises:
        MissingDependencyError: Dask is not installed.
        RoadsegError: the scheduler cannot be reached, or ``workers`` < 1.
    """
    distributed = import_distributed()
    if scheduler is not None:
        try:
            client = distributed.Client(scheduler, timeout="30s")
        except (OSError, TimeoutError) as exc:
            raise RoadsegError(
                f"cannot reach the Dask scheduler at {scheduler} ({one_line(exc)}); "
                "check the address (tcp://host:8786) and that 'dask scheduler' is running"
            ) from None
        with client:
            yield client
        return
    if workers is None or workers < 1:
        raise RoadsegError(f"the number of workers must be at least 1, got {workers}")
    threads = threads or threads_per_process(workers)
    cluster = distributed.LocalCluster(
        n_workers=workers,
        processes=True,
        threads_per_worker=1,
        env=thread_env(threads),
        dashboard_address=":0",
        silence_logs=logging.ERROR,
    )
    with cluster, distributed.Client(cluster) as client:
        yield client
