"""The ``roadseg`` command line: a click group over the library.

This package is the only place that knows about exit codes and terminals.
Each command lives in its own module, parses and checks its options, makes one
library call and reports. Library errors (:class:`roadseg.errors.RoadsegError`)
become a one-line message and exit code 1; usage errors exit 2.
TensorFlow is imported inside command bodies only, so ``roadseg --help``
starts fast.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading

import click

from roadseg import __version__
from roadseg.cli.errors import RoadsegGroup


@click.group(
    cls=RoadsegGroup,
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
)
@click.version_option(__version__, prog_name="roadseg")
def cli() -> None:
    """Extract roads from aerial and satellite GeoTIFFs with a Deep Residual U-Net.

    \b
    Typical use:
      roadseg predict ortho.tif --mask roads_mask.tif --preview roads.png
      roadseg vectorize ortho_roads.tif -o roads.gpkg
      roadseg evaluate ortho_roads.tif truth_mask.tif
      roadseg train --data my_dataset/ -o my_model.keras
      roadseg export my_model.keras -o my_model.onnx   # for QGIS Deepness

    Run 'roadseg COMMAND --help' for each command's options.
    """
    # TensorFlow's C++ logging is noise for a CLI user; keep real errors.
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    logger = logging.getLogger("roadseg")
    logger.handlers = [h for h in logger.handlers if not isinstance(h, _ClickHandler)]
    logger.addHandler(_ClickHandler())
    logger.setLevel(logging.INFO)
    logger.propagate = False
    # SIGTERM unwinds like Ctrl-C, so temporary outputs are removed on the way out.
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _terminate)
        if signal.getsignal(signal.SIGINT) is signal.default_int_handler:
            signal.signal(signal.SIGINT, _terminate)


def _terminate(signum: int, frame: object) -> None:
    from roadseg import interrupt

    interrupt.request(signum)  # raised again by long loops if this one is swallowed
    interrupt.check()


class _ClickHandler(logging.Handler):
    """Library warnings reach the user as one line on stderr."""

    def __init__(self) -> None:
        super().__init__(level=logging.WARNING)

    def emit(self, record: logging.LogRecord) -> None:
        click.echo(f"Warning: {record.getMessage()}", err=True)


def _register() -> None:
    from roadseg.cli import predict as _predict

    cli.add_command(_predict.predict)
    for name in ("vectorize", "evaluate", "train", "export"):
        try:
            module = __import__(f"roadseg.cli.{name}", fromlist=[name])
        except ModuleNotFoundError as exc:  # command not built yet in this checkout
            if exc.name != f"roadseg.cli.{name}":
                raise
            continue
        cli.add_command(getattr(module, name))


_register()


def main() -> None:
    """Console-script entry point."""
    cli(prog_name="roadseg")


if __name__ == "__main__":  # pragma: no cover
    main()
    sys.exit(0)
