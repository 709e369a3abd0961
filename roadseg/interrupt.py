"""Stop requests that survive a swallowed exception.

The CLI turns SIGINT and SIGTERM into exceptions raised in the main thread, so
temporary files are removed on the way out. Python drops an exception raised
while it runs a weakref callback or a ``__del__`` method ("Exception ignored
in ..."), and a signal can land there (seen in an import lock's callback).
The handler therefore also records the request here, and long loops (predict
batches, training batches) call :func:`check`, which raises it again.
"""

from __future__ import annotations

import signal

_requested: int | None = None


def request(signum: int) -> None:
    """Record that the process was asked to stop by ``signum``."""
    global _requested
    _requested = signum


def check() -> None:
    """Raise the recorded stop request, if any (KeyboardInterrupt for SIGINT)."""
    if _requested is None:
        return
    if _requested == signal.SIGINT:
        raise KeyboardInterrupt
    raise SystemExit(128 + _requested)
