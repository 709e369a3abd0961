"""Tests for roadseg.export.metadata: roadseg's metadata and Deepness's keys."""

from __future__ import annotations

import ast
import json
from pathlib import Path
from typing import Any

import pytest

from roadseg.export.metadata import (
    ROADSEG_KEY,
    add_metadata,
    model_metadata,
    overlap_percent,
    read_metadata,
    read_model_info,
)
from roadseg.model import ModelInfo

onnx = pytest.importorskip("onnx")

INFO = ModelInfo(
    bands=3,
    normalization="percentile",
    tile_size=224,
    gsd=0.6,
    threshold=0.5195,
    filters=(16, 32, 64, 128),
    provenance={"trained_by": "roadseg train", "epochs": 18},
)


def deepness_class_names(text: str) -> list[list[str]]:
    """The class names as Deepness's ModelBase.get_outputs_channel_names parses them."""
    try:
        names = json.loads(text)
    except json.JSONDecodeError:
        names = ast.literal_eval(text)
    if isinstance(names, dict):
        names = [names]
    out = []
    for per_output in names:
        ordered = sorted(per_output.items(), key=lambda kv: int(kv[0]))
        assert [int(k) for k, _ in ordered] == list(range(len(ordered)))  # consecutive
        out.append([v for _, v in ordered])
    return out


def test_deepness_keys_and_values() -> None:
    meta = model_metadata(INFO, overlap=32)
    # Deepness reads every value with json.loads.
    values = {key: json.loads(text) for key, text in meta.items()}
    assert values["model_type"] == "Segmentor"
    assert deepness_class_names(meta["class_names"]) == [["road"]]
    assert values["resolution"] == pytest.approx(60.0)  # cm per pixel
    assert values["tiles_size"] == values["tile_size"] == 224
    assert values["tiles_overlap"] == 14  # 32 of 224 px
    assert values["seg_thresh"] == pytest.approx(0.5195)
    assert "standardization_mean" not in meta and "standardization_std" not in meta


def test_roadseg_info_round_trips() -> None:
    meta = model_metadata(INFO)
    assert ModelInfo.from_json(meta[ROADSEG_KEY]) == INFO


def test_default_overlap_is_predicts() -> None:
    from roadseg.predict import DEFAULT_OVERLAP

    meta = model_metadata(INFO)
    assert json.loads(meta["tiles_overlap"]) == overlap_percent(DEFAULT_OVERLAP, 224)


def test_unknown_gsd_writes_no_resolution() -> None:
    info = ModelInfo(bands=3, tile_size=256, gsd=None)
    assert "resolution" not in model_metadata(info)


@pytest.mark.parametrize(
    ("overlap", "tile", "percent"), [(32, 224, 14), (0, 256, 0), (64, 256, 25)]
)
def test_overlap_percent(overlap: int, tile: int, percent: int) -> None:
    assert overlap_percent(overlap, tile) == percent


def _model() -> Any:
    node = onnx.helper.make_node("Identity", ["x"], ["y"])
    graph = onnx.helper.make_graph(
        [node],
        "g",
        [onnx.helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [1])],
        [onnx.helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [1])],
    )
    return onnx.helper.make_model(graph)


def test_metadata_survives_a_file(tmp_path: Path) -> None:
    proto = _model()
    meta = model_metadata(INFO)
    add_metadata(proto, meta)
    path = tmp_path / "m.onnx"
    onnx.save_model(proto, str(path))
    loaded = onnx.load(str(path))
    assert read_metadata(loaded) == meta
    assert read_model_info(loaded) == INFO


def test_metadata_as_onnxruntime_shows_it(tmp_path: Path) -> None:
    """Deepness reads the keys through onnxruntime's custom_metadata_map."""
    ort = pytest.importorskip("onnxruntime")
    proto = _model()
    add_metadata(proto, model_metadata(INFO))
    session = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
    custom = session.get_modelmeta().custom_metadata_map
    assert json.loads(custom["model_type"]) == "Segmentor"
    assert float(json.loads(custom["resolution"])) == pytest.approx(60.0)


def test_add_metadata_replaces_keys_and_keeps_others() -> None:
    proto = _model()
    add_metadata(proto, {"a": "1", "b": "2"})
    add_metadata(proto, {"b": "3"})
    assert read_metadata(proto) == {"a": "1", "b": "3"}
    assert read_model_info(proto) is None
