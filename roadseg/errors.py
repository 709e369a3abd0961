"""The roadseg error tree.

Every foreseeable failure raises a subclass of :class:`RoadsegError`. Each
subclass also inherits the built-in exception it resembles, so library users
can catch either. The CLI turns these into a one-line message and a non-zero
exit; nothing else in the library prints or exits.
"""

from __future__ import annotations


class RoadsegError(Exception):
    """Root of all roadseg errors."""


class InvalidRasterError(RoadsegError, ValueError):
    """The input is not a raster roadseg can read, or it is empty or corrupt."""


class UnsupportedRasterError(RoadsegError, ValueError):
    """The raster is readable but has a band count or dtype roadseg cannot use."""


class OutputError(RoadsegError, OSError):
    """The output cannot be written: folder missing, file exists, disk full."""


class ModelError(RoadsegError, ValueError):
    """The model file is missing or is not a usable road model."""


class DatasetError(RoadsegError, ValueError):
    """A training or evaluation dataset is empty, incomplete or unreadable."""


class VectorError(RoadsegError, ValueError):
    """A vector input or output is invalid."""


class MissingDependencyError(RoadsegError, ImportError):
    """An optional package (Dask, onnx, onnxruntime, OpenVINO) is not installed."""


class ExportError(RoadsegError, ValueError):
    """The model cannot be exported: a layer the converter does not know, or an
    export that does not agree with the Keras model."""


class EngineError(RoadsegError, ValueError):
    """An inference engine cannot run as asked (unknown engine, precision or input)."""
