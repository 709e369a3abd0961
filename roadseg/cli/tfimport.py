"""Import TensorFlow without its start-up chatter on the terminal.

TensorFlow 2.21 logs through Abseil before Abseil is initialised, so lines such
as "oneDNN custom operations are on", "Could not find cuda drivers" and a
failed ``cuInit`` reach stderr whatever ``TF_CPP_MIN_LOG_LEVEL`` says (an
Abseil bug: abseil/abseil-cpp#1718, #1957). A command-line user should see
roadseg's own messages, so the CLI imports TensorFlow once, up front, with
file descriptor 2 pointed at /dev/null, and restores it before anything else
runs. Python exceptions are unaffected: they are raised after the restore.

Set ``TF_CPP_MIN_LOG_LEVEL`` to 0 or 1 to see TensorFlow's messages again.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator


@contextlib.contextmanager
def _stderr_fd_silenced() -> Iterator[None]:
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError):  # no usable fd 2 (embedded interpreters)
        yield
        return
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


def import_tensorflow_quietly() -> None:
    """Import TensorFlow and look for devices, hiding native start-up logs.

    Does nothing when TensorFlow is already imported or when the user asked
    for TensorFlow's logs (``TF_CPP_MIN_LOG_LEVEL`` below 2).
    """
    if "tensorflow" in sys.modules:
        return
    try:
        level = int(os.environ.get("TF_CPP_MIN_LOG_LEVEL", "0"))
    except ValueError:
        level = 0
    if level < 2:
        return
    with _stderr_fd_silenced():
        import tensorflow as tf

        tf.config.list_physical_devices()
