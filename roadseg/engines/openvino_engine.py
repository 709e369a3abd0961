"""Running an exported ResUNet with OpenVINO on the CPU.

The ONNX graph is read by OpenVINO's ONNX frontend from bytes in memory
(``Core.read_model``), then compiled for the CPU device with
``INFERENCE_NUM_THREADS`` threads. Precision: ``float32`` sets the inference
precision hint to f32; otherwise the CPU plugin's default applies, which is
bfloat16 on a CPU with AVX-512-BF16 or AMX and float32 elsewhere. The compiled
model says which it chose (:func:`inference_precision`).

``openvino.convert_model`` would read the same graph, but it starts
OpenVINO's usage telemetry, which sends data over the network unless the user
opted out; ``Core.read_model`` does not.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from roadseg.optional import require

if TYPE_CHECKING:
    import onnx
    import openvino

PURPOSE = "the openvino engine"

#: OpenVINO element types as roadseg's precision names.
_PRECISIONS = {"f32": "float32", "bf16": "bfloat16", "f16": "float16"}


def read_onnx(proto: onnx.ModelProto) -> openvino.Model:
    """``proto`` as an ``openvino.Model`` (read in memory; nothing is written).

    Raises:
        MissingDependencyError: OpenVINO is not installed.
    """
    ov = require("openvino", PURPOSE)
    return ov.Core().read_model(proto.SerializeToString())


def compile_model(model: openvino.Model, *, float32: bool, threads: int) -> openvino.CompiledModel:
    """``model`` (an ``openvino.Model``) compiled for the CPU.

    Args:
        model: the model.
        float32: hint f32 inference; False leaves the CPU plugin's default
            (bfloat16 where the CPU has it).
        threads: inference threads.
    """
    ov = require("openvino", PURPOSE)
    config: dict[str, Any] = {"INFERENCE_NUM_THREADS": threads}
    if float32:
        config["INFERENCE_PRECISION_HINT"] = "f32"
    return ov.Core().compile_model(model, "CPU", config)


def inference_precision(compiled: openvino.CompiledModel) -> str:
    """The precision the compiled model computes in: float32, bfloat16 or float16."""
    element = compiled.get_property("INFERENCE_PRECISION_HINT")
    name = element.to_string() if hasattr(element, "to_string") else str(element)
    return _PRECISIONS.get(name, name)


def run_compiled(compiled: openvino.CompiledModel, batch_nchw: np.ndarray) -> np.ndarray:
    """The compiled model's first output for an ``(N, C, H, W)`` float32 batch.

    A new infer request per call: safe from several threads, and negligible
    next to a batch's inference.
    """
    request = compiled.create_infer_request()
    request.infer({0: batch_nchw})
    # The tensor's buffer belongs to the request: copy it out.
    return np.array(request.get_output_tensor(0).data, copy=True)


def version() -> str:
    """The installed OpenVINO's version."""
    return str(require("openvino", PURPOSE).get_version())
