"""roadseg: road extraction from aerial and satellite imagery with a Deep Residual U-Net.

The package imports quickly: TensorFlow is imported only by the modules that
need it (:mod:`roadseg.model`, :mod:`roadseg.predict`, :mod:`roadseg.train`).
"""

from __future__ import annotations

__version__ = "0.1.0"

from roadseg.errors import (  # noqa: E402
    DatasetError,
    InvalidRasterError,
    ModelError,
    OutputError,
    RoadsegError,
    UnsupportedRasterError,
    VectorError,
)

__all__ = [
    "__version__",
    "RoadsegError",
    "InvalidRasterError",
    "UnsupportedRasterError",
    "OutputError",
    "ModelError",
    "DatasetError",
    "VectorError",
]
