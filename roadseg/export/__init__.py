"""Exporting roadseg models for other runtimes and tools: ONNX (onnxruntime,
the QGIS Deepness plugin) and OpenVINO IR.

``onnx_graph`` converts the Keras ResUNet to an ONNX graph (batch norms folded
into convolutions), ``metadata`` says what the file carries for roadseg and
Deepness, ``openvino_ir`` writes the IR, ``check`` compares an export with
Keras, and ``files.export_model`` is the one call behind ``roadseg export``.
Every module imports its optional package (onnx, onnxruntime, openvino) only
when it runs.
"""

from __future__ import annotations

from roadseg.export.check import ExportCheck, check_export, random_tiles
from roadseg.export.files import FORMATS, ExportResult, export_model
from roadseg.export.metadata import add_metadata, model_metadata, read_metadata
from roadseg.export.onnx_graph import keras_to_onnx

__all__ = [
    "FORMATS",
    "ExportCheck",
    "ExportResult",
    "add_metadata",
    "check_export",
    "export_model",
    "keras_to_onnx",
    "model_metadata",
    "random_tiles",
    "read_metadata",
]
