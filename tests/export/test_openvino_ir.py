"""Tests for roadseg.export.openvino_ir: OpenVINO IR files with their metadata."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from roadseg.export.check import random_tiles
from roadseg.export.onnx_graph import keras_to_onnx, parameter_count
from roadseg.export.openvino_ir import read_rt_metadata, save_ir, to_openvino

pytest.importorskip("onnx")
ov = pytest.importorskip("openvino")


def test_ir_keeps_float32_weights_and_metadata(tiny_resunet: Any, tmp_path: Path) -> None:
    proto = keras_to_onnx(tiny_resunet, tile_size=64)
    meta = {"model_type": '"Segmentor"', "roadseg": '{"bands": 3}'}
    xml = tmp_path / "m.xml"
    bin_path = save_ir(to_openvino(proto, meta), xml)
    assert bin_path == tmp_path / "m.bin" and bin_path.is_file()
    # float32 weights: about 4 bytes per number (OpenVINO folds the kept batch
    # norms' four statistics into two); float16, save_model's default, about 2.
    assert bin_path.stat().st_size > 3.5 * parameter_count(proto)
    assert read_rt_metadata(xml) == meta

    model = ov.Core().read_model(str(xml))
    assert [str(d) for d in model.inputs[0].get_partial_shape()] == ["?", "3", "64", "64"]
    compiled = ov.Core().compile_model(model, "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
    tiles = random_tiles(1, 64, 3)
    got = compiled(np.ascontiguousarray(tiles.transpose(0, 3, 1, 2)))[0][:, 0]
    expected = np.asarray(tiny_resunet(tiles, training=False))[..., 0]
    assert np.abs(got - expected).max() < 1e-4


def test_ir_without_metadata_reads_empty(tiny_resunet: Any, tmp_path: Path) -> None:
    xml = tmp_path / "plain.xml"
    save_ir(to_openvino(keras_to_onnx(tiny_resunet), {}), xml)
    assert read_rt_metadata(xml) == {}
