"""Exporting roadseg models for other runtimes and tools: ONNX (onnxruntime,
the QGIS Deepness plugin) and OpenVINO IR.

``onnx_graph`` converts the Keras ResUNet to an ONNX graph (batch norms folded
into convolutions). Every module imports its optional package (onnx,
onnxruntime, openvino) only when it runs.
"""

from __future__ import annotations

from roadseg.export.onnx_graph import keras_to_onnx

__all__ = ["keras_to_onnx"]
