"""Tests for the OpenVINO engine: network_fn(..., "openvino", ...) agrees with Keras."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from roadseg.engines import network_fn
from roadseg.export.check import random_tiles
from roadseg.model import LoadedModel, ModelInfo, load_model
from roadseg.precision import cpu_has_bf16

pytest.importorskip("onnx")
pytest.importorskip("openvino")


def keras_run(model: Any, tiles: np.ndarray) -> np.ndarray:
    return np.asarray(model(tiles, training=False))[..., 0]


def test_float32_agrees_with_keras(tiny_resunet: Any) -> None:
    loaded = LoadedModel(tiny_resunet, ModelInfo(bands=3), Path("tiny"), "")
    fn = network_fn(loaded, "openvino", "float32", threads=1)
    assert (fn.engine, fn.precision, fn.threads) == ("openvino", "float32", 1)
    for shape in ((2, 64, 128, 3), (3, 32, 32, 3)):  # dynamic shapes, one compiled model
        tiles = np.random.default_rng(sum(shape)).random(shape, np.float32)
        got = fn(tiles)
        assert got.shape == shape[:3] and got.dtype == np.float32
        assert np.abs(got - keras_run(tiny_resunet, tiles)).max() < 1e-4


@pytest.fixture(scope="module")
def bundled() -> LoadedModel:
    return load_model()


def test_bundled_model_float32_agrees_with_keras(bundled: LoadedModel) -> None:
    tiles = random_tiles(2, 224, 3, seed=2)
    diff = np.abs(
        network_fn(bundled, "openvino", "float32")(tiles) - keras_run(bundled.model, tiles)
    )
    assert diff.max() < 1e-4 and diff.mean() < 1e-5


@pytest.mark.parametrize("precision", ["auto", "bfloat16"])
def test_default_precision_is_bfloat16_where_the_cpu_has_it(
    bundled: LoadedModel, precision: str
) -> None:
    fn = network_fn(bundled, "openvino", precision)
    assert fn.precision == ("bfloat16" if cpu_has_bf16() else "float32")
    tiles = random_tiles(2, 224, 3, seed=4)
    diff = np.abs(fn(tiles) - keras_run(bundled.model, tiles))
    # bfloat16 keeps 8 bits of mantissa: the agreement bound is a mean of 0.01.
    assert diff.mean() < 0.01
