"""Exporting roadseg models for other runtimes and tools: ONNX (onnxruntime,
the QGIS Deepness plugin) and OpenVINO IR.

``onnx_graph`` converts the Keras ResUNet to an ONNX graph (batch norms folded
into convolutions) and ``check`` compares an export with Keras. Every module
imports its optional package (onnx, onnxruntime, openvino) only when it runs.
"""

from __future__ import annotations

from roadseg.export.check import ExportCheck, check_export, random_tiles
from roadseg.export.onnx_graph import keras_to_onnx

__all__ = ["ExportCheck", "check_export", "keras_to_onnx", "random_tiles"]
