"""Tests for the onnxruntime engine: network_fn(..., "onnxruntime", ...) agrees with Keras."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from roadseg.engines import network_fn
from roadseg.export.check import random_tiles
from roadseg.model import LoadedModel, ModelInfo, load_model

pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")


def keras_run(model: Any, tiles: np.ndarray) -> np.ndarray:
    return np.asarray(model(tiles, training=False))[..., 0]


@pytest.mark.parametrize("precision", ["auto", "float32"])
def test_tiny_model_agrees_with_keras(tiny_resunet: Any, precision: str) -> None:
    loaded = LoadedModel(tiny_resunet, ModelInfo(bands=3), Path("tiny"), "")
    fn = network_fn(loaded, "onnxruntime", precision, threads=2)
    assert (fn.engine, fn.precision, fn.threads, fn.bands) == ("onnxruntime", "float32", 2, 3)
    # Any batch and tile shape, through one session.
    for shape in ((3, 64, 128, 3), (1, 32, 32, 3)):
        tiles = np.random.default_rng(sum(shape)).random(shape, np.float32)
        got = fn(tiles)
        assert got.shape == shape[:3] and got.dtype == np.float32
        assert np.abs(got - keras_run(tiny_resunet, tiles)).max() < 1e-4


def test_bundled_model_agrees_with_keras() -> None:
    loaded = load_model()
    tiles = random_tiles(2, 224, 3, seed=2)
    got = network_fn(loaded, "onnxruntime", "float32")(tiles)
    diff = np.abs(got - keras_run(loaded.model, tiles))
    assert diff.max() < 1e-4 and diff.mean() < 1e-5
