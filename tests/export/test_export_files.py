"""Tests for roadseg.export.files: export_model, the call behind roadseg export."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest

from roadseg.errors import ExportError, MissingDependencyError, ModelError, OutputError
from roadseg.export import files
from roadseg.export.files import export_model
from roadseg.export.metadata import read_metadata, read_model_info
from roadseg.model import read_model_info as read_keras_info


@pytest.fixture
def onnx() -> Any:
    """The onnx module; skips the test without onnx and onnxruntime (the tests
    of bad outputs and missing packages run without them)."""
    pytest.importorskip("onnxruntime")
    return pytest.importorskip("onnx")


def test_onnx_export_of_a_model_file(onnx: Any, tiny_model_file: Path, tmp_path: Path) -> None:
    out = tmp_path / "tiny.onnx"
    result = export_model(tiny_model_file, out)
    assert result.path == out and result.files == (out,) and result.format == "onnx"
    assert result.input_shape == ("batch", 3, 64, 64)  # the model's tile size
    assert (result.batch_norms_folded, result.batch_norms_kept) == (7, 6)
    assert result.check.runtime == "onnxruntime" and result.check.max_abs < 1e-4
    assert result.check.tiles == files.CHECK_TILES

    proto = onnx.load(str(out))
    assert read_metadata(proto) == result.metadata
    assert read_model_info(proto) == read_keras_info(tiny_model_file)
    assert json.loads(result.metadata["resolution"]) == pytest.approx(50.0)
    assert "tiny.keras" in proto.doc_string
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tiny.onnx"]  # no temporaries


def test_dynamic_and_fixed_sizes(onnx: Any, tiny_model_file: Path, tmp_path: Path) -> None:
    dynamic = export_model(tiny_model_file, tmp_path / "d.onnx", dynamic=True)
    assert dynamic.input_shape == ("batch", 3, "height", "width")
    fixed = export_model(tiny_model_file, tmp_path / "f.onnx", tile_size=128)
    assert fixed.input_shape == ("batch", 3, 128, 128)
    assert fixed.check.tile_size == 128
    with pytest.raises(ExportError, match="not both"):
        export_model(tiny_model_file, tmp_path / "x.onnx", tile_size=128, dynamic=True)


def test_openvino_export(onnx: Any, tiny_model_file: Path, tmp_path: Path) -> None:
    pytest.importorskip("openvino")
    from roadseg.export.openvino_ir import read_rt_metadata

    out = tmp_path / "tiny.xml"
    result = export_model(tiny_model_file, out, fmt="openvino")
    assert result.files == (out, tmp_path / "tiny.bin")
    assert result.check.runtime == "openvino" and result.check.max_abs < 1e-4
    assert read_rt_metadata(out) == result.metadata
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tiny.bin", "tiny.xml"]


def test_existing_output_needs_overwrite(onnx: Any, tiny_model_file: Path, tmp_path: Path) -> None:
    out = tmp_path / "m.onnx"
    out.write_bytes(b"old")
    with pytest.raises(OutputError, match="already exists; use --overwrite"):
        export_model(tiny_model_file, out)
    assert out.read_bytes() == b"old"
    export_model(tiny_model_file, out, overwrite=True)
    assert onnx.load(str(out)).graph.node


def test_existing_bin_of_an_ir_needs_overwrite(tiny_model_file: Path, tmp_path: Path) -> None:
    (tmp_path / "m.bin").write_bytes(b"old")
    with pytest.raises(OutputError, match=r"m\.bin already exists"):
        export_model(tiny_model_file, tmp_path / "m.xml", fmt="openvino")


@pytest.mark.parametrize(
    ("name", "fmt", "words"),
    [
        ("m.xml", "onnx", "use -o NAME.onnx"),
        ("m.onnx", "openvino", "use -o NAME.xml"),
        ("missing/m.onnx", "onnx", "does not exist"),
    ],
)
def test_bad_outputs(tiny_model_file: Path, tmp_path: Path, name, fmt, words) -> None:
    with pytest.raises(OutputError, match=words):
        export_model(tiny_model_file, tmp_path / name, fmt=fmt)


def test_unknown_format(tmp_path: Path) -> None:
    with pytest.raises(ExportError, match="unknown export format"):
        export_model(None, tmp_path / "m.onnx", fmt="tflite")


def test_missing_model_file(onnx: Any, tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="does not exist"):
        export_model(tmp_path / "none.keras", tmp_path / "m.onnx")


def test_disagreeing_export_writes_nothing(
    onnx: Any, tiny_model_file: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(files, "TOLERANCE", -1.0)  # any difference is too much
    with pytest.raises(ExportError, match="nothing was written"):
        export_model(tiny_model_file, tmp_path / "m.onnx")
    assert list(tmp_path.iterdir()) == []


def test_missing_onnx_says_how_to_install(
    tiny_model_file: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "onnx", None)  # import onnx raises ImportError
    with pytest.raises(MissingDependencyError) as info:
        export_model(tiny_model_file, tmp_path / "m.onnx")
    assert str(info.value) == 'roadseg export needs the onnx package: pip install "roadseg[onnx]"'
    assert list(tmp_path.iterdir()) == []


def test_missing_openvino_says_how_to_install(
    tiny_model_file: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "openvino", None)
    with pytest.raises(MissingDependencyError, match=r'pip install "roadseg\[openvino\]"'):
        export_model(tiny_model_file, tmp_path / "m.xml", fmt="openvino")


def test_bundled_model_export(onnx: Any, tmp_path: Path) -> None:
    result = export_model(None, tmp_path / "roads.onnx")
    assert result.input_shape == ("batch", 3, 224, 224)
    assert result.check.max_abs < 1e-4
    assert json.loads(result.metadata["resolution"]) == pytest.approx(60.0)


def test_deepness_reads_the_export(onnx: Any, tiny_model_file: Path, tmp_path: Path) -> None:
    """What Deepness's ModelBase and Segmentor read from the file through
    onnxruntime (qgis-plugin-deepness, deepness/processing/models/)."""
    import numpy as np
    import onnxruntime as ort

    out = tmp_path / "tiny.onnx"
    export_model(tiny_model_file, out)
    session = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    (model_input,) = session.get_inputs()
    (model_output,) = session.get_outputs()
    # One input [BATCH_SIZE, CHANNELS, SIZE_PX, SIZE_PX], square, batch dynamic (a str).
    assert isinstance(model_input.shape[0], str)
    assert model_input.shape[1:] == [3, 64, 64]
    # One [BATCH_SIZE, 1, SIZE_PX, SIZE_PX] output: Deepness treats it as a sigmoid class.
    assert model_output.shape[1:] == [1, 64, 64]
    meta = {k: json.loads(v) for k, v in session.get_modelmeta().custom_metadata_map.items()}
    assert str(meta["model_type"]).capitalize() == "Segmentor"
    assert meta["class_names"] == {"0": "road"}
    assert int(meta["tile_size"]) == int(meta["tiles_size"]) == model_input.shape[-1]
    assert float(meta["resolution"]) == pytest.approx(50.0)
    assert 0 < int(meta["tiles_overlap"]) < 100
    assert 0 < float(meta["seg_thresh"]) < 1
    # Deepness's preprocessing: uint8 RGB / 255, NHWC -> NCHW, any batch size.
    pixels = np.random.default_rng(0).integers(0, 256, (3, 64, 64, 3), dtype=np.uint8)
    batch = np.transpose(np.float32(pixels * (1.0 / 255.0)), (0, 3, 1, 2))
    (probs,) = session.run(None, {model_input.name: batch})
    assert probs.shape == (3, 1, 64, 64) and 0.0 <= probs.min() and probs.max() <= 1.0
