"""OpenVINO IR files (``.xml`` graph + ``.bin`` weights) from the ONNX graph.

The ONNX model is read by OpenVINO's ONNX frontend in memory
(:func:`roadseg.engines.openvino_engine.read_onnx`; ``openvino.convert_model``
would start OpenVINO's network telemetry) and saved with float32 weights:
``openvino.save_model`` would otherwise compress them to float16, which
changes the probabilities. The exported metadata goes into the model's
``rt_info`` under ``roadseg``, the same JSON texts as the ONNX file's
``metadata_props``.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from roadseg.optional import require

if TYPE_CHECKING:
    import onnx
    import openvino

#: The ``rt_info`` section holding the exported metadata.
RT_INFO_SECTION = "roadseg"
PURPOSE = "roadseg export --format openvino"


def to_openvino(proto: onnx.ModelProto, metadata: Mapping[str, str]) -> openvino.Model:
    """``proto`` as an ``openvino.Model`` with ``metadata`` in its ``rt_info``.

    Raises:
        MissingDependencyError: OpenVINO is not installed.
    """
    require("openvino", PURPOSE)
    from roadseg.engines.openvino_engine import read_onnx

    model = read_onnx(proto)
    for key, value in metadata.items():
        model.set_rt_info(value, [RT_INFO_SECTION, key])
    return model


def save_ir(model: openvino.Model, xml_path: Path) -> Path:
    """Write ``model`` as ``xml_path`` and its ``.bin`` beside it, weights in float32.

    Returns:
        The path of the ``.bin`` file.
    """
    ov = require("openvino", PURPOSE)
    ov.save_model(model, str(xml_path), compress_to_fp16=False)
    return xml_path.with_suffix(".bin")


def read_rt_metadata(xml_path: Path) -> dict[str, str]:
    """The exported metadata of an IR file, as JSON texts by key."""
    ov = require("openvino", PURPOSE)
    model = ov.Core().read_model(str(xml_path))
    if not model.has_rt_info([RT_INFO_SECTION]):
        return {}
    section = model.get_rt_info()[RT_INFO_SECTION]
    return {key: model.get_rt_info([RT_INFO_SECTION, key]).astype(str) for key in section.keys()}
