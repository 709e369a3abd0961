"""Tests for roadseg.export.onnx_graph: the Keras ResUNet as an ONNX graph."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from roadseg.errors import ExportError
from roadseg.export.onnx_graph import (
    IR_VERSION,
    OPSET,
    keras_to_onnx,
    node_counts,
    parameter_count,
    same_pads,
)

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

#: Each residual block has one BN between its two convolutions (folded) and
#: one pre-activation BN (kept): 7 blocks with a mid BN, 6 with a pre-activation.
FOLDED, KEPT = 7, 6


def random_tiles(count: int, size: int, bands: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).random((count, size, size, bands), np.float32)


def run(proto: Any, tiles: np.ndarray) -> np.ndarray:
    """``proto`` on NHWC ``tiles`` with onnxruntime, as (N, H, W)."""
    session = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
    nchw = np.ascontiguousarray(tiles.transpose(0, 3, 1, 2))
    return session.run(None, {session.get_inputs()[0].name: nchw})[0][:, 0]


def keras_run(model: Any, tiles: np.ndarray) -> np.ndarray:
    return np.asarray(model(tiles, training=False))[..., 0]


@pytest.fixture(scope="module")
def tiny_proto(tiny_resunet: Any) -> Any:
    return keras_to_onnx(tiny_resunet)


@pytest.mark.parametrize(("height", "width"), [(64, 64), (64, 128)])
def test_agrees_with_keras(tiny_resunet: Any, tiny_proto: Any, height: int, width: int) -> None:
    tiles = np.random.default_rng(height + width).random((3, height, width, 3), np.float32)
    expected = keras_run(tiny_resunet, tiles)
    got = run(tiny_proto, tiles)
    assert got.shape == (3, height, width)
    assert np.abs(got - expected).max() < 1e-4
    # Not a trivially constant network: the comparison means something.
    assert expected.std() > 1e-3


def test_batch_norms_after_a_convolution_are_folded(tiny_resunet: Any, tiny_proto: Any) -> None:
    counts = node_counts(tiny_proto)
    assert counts["BatchNormalization"] == KEPT
    assert counts["Conv"] == sum(type(x).__name__ == "Conv2D" for x in tiny_resunet.layers)
    unfolded = keras_to_onnx(tiny_resunet, fold_batch_norm=False)
    assert node_counts(unfolded)["BatchNormalization"] == FOLDED + KEPT
    # Folding drops the four statistics of each folded BN (the conv bias stays).
    folded_bns = [
        layer for layer in tiny_resunet.layers if layer.name.endswith(("_mid_bn", "_pre2_bn"))
    ]
    assert len(folded_bns) == FOLDED
    dropped = sum(4 * layer.gamma.shape[0] for layer in folded_bns)
    assert parameter_count(unfolded) - parameter_count(tiny_proto) == dropped
    # The folded and the unfolded graph compute the same.
    tiles = random_tiles(2, 64, 3, seed=3)
    assert np.abs(run(unfolded, tiles) - run(tiny_proto, tiles)).max() < 1e-5


def test_layout_opset_and_names(tiny_proto: Any) -> None:
    assert tiny_proto.ir_version == IR_VERSION
    assert [o.version for o in tiny_proto.opset_import] == [OPSET]
    (graph_in,) = tiny_proto.graph.input
    (graph_out,) = tiny_proto.graph.output
    assert graph_in.name == "image"
    assert graph_out.name == "road_probability"
    dims = [d.dim_param or d.dim_value for d in graph_in.type.tensor_type.shape.dim]
    assert dims == ["batch", 3, "height", "width"]
    dims = [d.dim_param or d.dim_value for d in graph_out.type.tensor_type.shape.dim]
    assert dims == ["batch", 1, "height", "width"]
    assert graph_in.type.tensor_type.elem_type == onnx.TensorProto.FLOAT


def test_fixed_tile_size(tiny_resunet: Any) -> None:
    proto = keras_to_onnx(tiny_resunet, tile_size=64)
    dims = [d.dim_param or d.dim_value for d in proto.graph.input[0].type.tensor_type.shape.dim]
    assert dims == ["batch", 3, 64, 64]
    tiles = random_tiles(1, 64, 3)
    assert np.abs(run(proto, tiles) - keras_run(tiny_resunet, tiles)).max() < 1e-4


@pytest.mark.parametrize("size", [0, 60, -8])
def test_bad_tile_size(tiny_resunet: Any, size: int) -> None:
    with pytest.raises(ExportError, match="multiple of 8"):
        keras_to_onnx(tiny_resunet, tile_size=size)


@pytest.mark.parametrize(
    ("kernel", "strides", "pads"),
    [
        ((3, 3), (1, 1), [1, 1, 1, 1]),
        ((3, 3), (2, 2), [0, 0, 1, 1]),  # TensorFlow pads the bottom and right
        ((1, 1), (2, 2), [0, 0, 0, 0]),
        ((1, 1), (1, 1), [0, 0, 0, 0]),
        ((5, 5), (2, 2), [1, 1, 2, 2]),
    ],
)
def test_same_pads_match_tensorflow(kernel, strides, pads) -> None:
    assert same_pads(kernel, strides) == pads


def test_stride_two_padding_matches_keras() -> None:
    """A single 3x3 stride-2 conv and a 5x5 one: the pads TensorFlow uses."""
    import keras

    inputs = keras.Input((None, None, 2), name="image")
    a = keras.layers.Conv2D(3, 3, strides=2, padding="same", name="a")(inputs)
    b = keras.layers.Conv2D(3, 5, strides=2, padding="same", name="b")(inputs)
    joined = keras.layers.Concatenate(name="joined")([a, b])
    up = keras.layers.UpSampling2D(2, name="up")(joined)
    head = keras.layers.Conv2D(1, 1, activation="sigmoid", name="road_probability")(up)
    model = keras.Model(inputs, head)
    tiles = np.random.default_rng(0).random((2, 16, 24, 2), np.float32)
    assert np.abs(run(keras_to_onnx(model), tiles) - keras_run(model, tiles)).max() < 1e-5


def test_unknown_layer_is_refused_by_name() -> None:
    import keras

    inputs = keras.Input((None, None, 3), name="image")
    x = keras.layers.Conv2D(4, 3, padding="same", name="conv")(inputs)
    x = keras.layers.MaxPooling2D(name="pool")(x)
    x = keras.layers.UpSampling2D(name="up")(x)
    out = keras.layers.Conv2D(1, 1, activation="sigmoid", name="head")(x)
    with pytest.raises(ExportError, match=r"pool is a MaxPooling2D.*Conv2D"):
        keras_to_onnx(keras.Model(inputs, out))


def test_unknown_layer_setting_is_refused() -> None:
    import keras

    inputs = keras.Input((None, None, 3), name="image")
    x = keras.layers.Conv2D(4, 3, padding="same", dilation_rate=2, name="dilated")(inputs)
    out = keras.layers.Conv2D(1, 1, activation="sigmoid", name="head")(x)
    with pytest.raises(ExportError, match="dilated has dilation_rate"):
        keras_to_onnx(keras.Model(inputs, out))


def test_layers_shared_with_another_model_are_ignored() -> None:
    """A layer used in another model too has that model's node as well; the
    export follows only the nodes of the model it converts."""
    import keras

    from roadseg.model import build_resunet

    model = build_resunet((None, None, 3), filters=(4, 8, 8, 16))
    other = keras.Input((None, None, 3), name="other")
    keras.Model(other, model.get_layer("enc1_conv1")(other))
    assert len(model.get_layer("enc1_conv1")._inbound_nodes) == 2
    proto = keras_to_onnx(model)
    assert node_counts(proto)["Conv"] == 22
    tiles = random_tiles(1, 32, 3)
    assert np.abs(run(proto, tiles) - keras_run(model, tiles)).max() < 1e-4


def test_bundled_model_agrees_with_keras() -> None:
    from roadseg.model import load_model

    loaded = load_model()
    tiles = random_tiles(2, loaded.info.tile_size, loaded.info.bands, seed=1)
    proto = keras_to_onnx(loaded.model, tile_size=loaded.info.tile_size)
    diff = np.abs(run(proto, tiles) - keras_run(loaded.model, tiles))
    assert diff.max() < 1e-4
    assert diff.mean() < 1e-5
