"""The chunk steps as tasks, here or on Dask: a :data:`Mapper` runs a function over
items and yields the results as they complete; :func:`map_here` runs them one after
the other in this process, :class:`DaskMap` as Dask tasks on a cluster."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Generator
from dataclasses import dataclass
from typing import Any

from roadseg.errors import RoadsegError

#: Runs ``fn(item, *shared)`` for every item and yields ``(index, result)`` pairs as
#: they complete (in any order). Closing the iterator early cancels what is left.
Mapper = Callable[..., Generator[tuple[int, Any], None, None]]


def map_here(
    fn: Callable[..., Any], items: list[Any], *shared: Any
) -> Generator[tuple[int, Any], None, None]:
    """The in-process :data:`Mapper`: one item after the other, in order."""
    for k, item in enumerate(items):
        yield k, fn(item, *shared)


@dataclass(frozen=True)
class _TaskError:
    """A :class:`RoadsegError` raised in a task, returned so that Dask does not retry
    it (a bad raster fails the same way again) and re-raised on the client."""

    error: RoadsegError


def _run_task(fn: Callable[..., Any], item: Any, shared: tuple[Any, ...]) -> Any:
    try:
        return fn(item, *shared)
    except RoadsegError as exc:
        return _TaskError(exc)


class DaskMap:
    """The Dask :data:`Mapper`: one task per item on ``client``'s cluster.

    The shared arguments go to every worker once (scattered), not with each task.
    Tasks that raise an unexpected exception are retried ``retries`` times (a worker
    that dies is rescheduled by Dask itself); then the run stops with a one-line
    :class:`RoadsegError`.
    """

    def __init__(self, client: Any, retries: int) -> None:
        self.client = client
        self.retries = retries
        self.token = f"{os.getpid():x}-{time.time_ns():x}"
        self.calls = 0

    def __call__(
        self, fn: Callable[..., Any], items: list[Any], *shared: Any
    ) -> Generator[tuple[int, Any], None, None]:
        from roadseg.distributed import import_distributed

        distributed = import_distributed()
        stage = fn.__name__.strip("_").replace("_", "-")
        # A key per call: a thinning pass run again with a wider halo must not meet
        # the tasks of the pass it replaces, which are being cancelled.
        self.calls += 1
        token = f"{self.token}-{self.calls}"
        [packed] = self.client.scatter([shared], broadcast=True, hash=False)
        futures = {
            self.client.submit(
                _run_task,
                fn,
                item,
                packed,
                key=f"roadseg-vectorize-{stage}-{k}-{token}",
                retries=self.retries,
                pure=False,
            ): k
            for k, item in enumerate(items)
        }
        try:
            for future in distributed.as_completed(futures):
                k = futures[future]
                try:
                    out = future.result()
                except Exception as exc:  # retries used up, or the worker died too often
                    raise RoadsegError(
                        f"{stage} of chunk {k + 1} of {len(items)} failed on Dask "
                        f"({_task_failure(exc)})"
                    ) from None
                if isinstance(out, _TaskError):
                    raise out.error
                yield k, out
        finally:
            self.client.cancel([*futures, packed])


def _task_failure(exc: BaseException) -> str:
    if type(exc).__name__ == "KilledWorker":
        return "the worker running it died several times (out of memory?)"
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
