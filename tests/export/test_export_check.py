"""Tests for roadseg.export.check: an export compared with its Keras model."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from roadseg.errors import ExportError
from roadseg.export.check import check_export, random_tiles
from roadseg.export.onnx_graph import keras_to_onnx

onnx = pytest.importorskip("onnx")


@pytest.fixture(scope="module")
def proto(tiny_resunet: Any) -> Any:
    return keras_to_onnx(tiny_resunet)


def test_random_tiles_are_seeded_normalised_float32() -> None:
    tiles = random_tiles(3, 32, 4, seed=7)
    assert tiles.shape == (3, 32, 32, 4) and tiles.dtype == np.float32
    assert 0.0 <= tiles.min() and tiles.max() < 1.0
    assert np.array_equal(tiles, random_tiles(3, 32, 4, seed=7))
    assert not np.array_equal(tiles, random_tiles(3, 32, 4, seed=8))


@pytest.mark.parametrize("runtime", ["onnxruntime", "openvino"])
def test_a_faithful_export_agrees(tiny_resunet: Any, proto: Any, runtime: str) -> None:
    pytest.importorskip(runtime)
    check = check_export(tiny_resunet, proto, random_tiles(2, 64, 3), runtime=runtime)
    assert check.runtime == runtime
    assert (check.tiles, check.tile_size) == (2, 64)
    assert check.max_abs < 1e-4
    assert 0.0 <= check.mean_abs <= check.max_abs


def test_a_wrong_export_is_seen(tiny_resunet: Any, proto: Any) -> None:
    pytest.importorskip("onnxruntime")
    broken = onnx.ModelProto()
    broken.CopyFrom(proto)
    head = next(t for t in broken.graph.initializer if t.name == "head_conv/bias")
    head.CopyFrom(onnx.numpy_helper.from_array(np.array([2.0], np.float32), head.name))
    check = check_export(tiny_resunet, broken, random_tiles(2, 64, 3))
    assert check.max_abs > 0.1


def test_openvino_model_is_checked_with_openvino(tiny_resunet: Any, proto: Any) -> None:
    pytest.importorskip("openvino")
    from roadseg.engines.openvino_engine import read_onnx

    check = check_export(tiny_resunet, read_onnx(proto), random_tiles(1, 64, 3))
    assert check.runtime == "openvino" and check.max_abs < 1e-4


def test_unknown_runtime(tiny_resunet: Any, proto: Any) -> None:
    with pytest.raises(ExportError, match="unknown runtime"):
        check_export(tiny_resunet, proto, random_tiles(1, 64, 3), runtime="tvm")
