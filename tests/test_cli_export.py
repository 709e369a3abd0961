"""Tests for the ``roadseg export`` command."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from roadseg.cli import cli


@pytest.fixture
def onnx() -> Any:
    """The onnx module; skips the test without onnx and onnxruntime (the help,
    usage errors and the missing-package message need neither)."""
    pytest.importorskip("onnxruntime")
    return pytest.importorskip("onnx")


def run(*args: object):
    return CliRunner().invoke(cli, ["export", *map(str, args)], catch_exceptions=False)


def one_line_error(output: str) -> str:
    lines = [line for line in output.splitlines() if line.strip()]
    assert "Traceback" not in output
    return lines[-1]


def test_help_teaches_qgis_and_formats() -> None:
    result = run("--help")
    assert result.exit_code == 0
    text = " ".join(result.output.split())
    for words in (
        "Deepness",
        "Load default parameters",
        "255",
        "percentile",
        "--format",
        "openvino",
        "roadseg[onnx]",
        "Examples",
        "default",
    ):
        assert words in text


def test_bundled_model_to_onnx(onnx: Any, tmp_path: Path) -> None:
    out = tmp_path / "roads.onnx"
    result = run("-o", out)
    assert result.exit_code == 0, result.output
    assert "max abs difference" in result.output
    assert "[batch, 3, 224, 224]" in result.output
    proto = onnx.load(str(out))
    keys = {p.key for p in proto.metadata_props}
    assert {"roadseg", "model_type", "class_names", "resolution", "tiles_size"} <= keys


def test_model_file_to_openvino(onnx: Any, tiny_model_file: Path, tmp_path: Path) -> None:
    pytest.importorskip("openvino")
    result = run(tiny_model_file, "-o", tmp_path / "tiny.xml", "--format", "openvino", "-q")
    assert result.exit_code == 0, result.output
    assert result.output == ""
    assert (tmp_path / "tiny.xml").is_file() and (tmp_path / "tiny.bin").is_file()


def test_default_names_the_bundled_model(onnx: Any, tmp_path: Path) -> None:
    result = run("default", "-o", tmp_path / "d.onnx", "--dynamic", "-q")
    assert result.exit_code == 0, result.output
    dims = onnx.load(str(tmp_path / "d.onnx")).graph.input[0].type.tensor_type.shape.dim
    assert [d.dim_param or d.dim_value for d in dims] == ["batch", 3, "height", "width"]


@pytest.mark.parametrize(
    ("case", "code", "words"),
    [
        ("exists", 1, "already exists; use --overwrite"),
        ("missing model", 2, "is not a file"),
        ("not a model", 1, "is not a Keras model file"),
        ("suffix", 1, "use -o NAME.onnx"),
        ("tile size", 2, "not a multiple of 8"),
        ("both sizes", 2, "not both"),
        ("format", 2, "'tflite' is not one of"),
        ("no output", 2, "Missing option '--output'"),
    ],
)
def test_bad_input_is_one_line(tiny_model_file: Path, tmp_path: Path, case, code, words) -> None:
    if case == "not a model":  # the packages are checked before the model is read
        pytest.importorskip("onnx")
        pytest.importorskip("onnxruntime")
    out = tmp_path / "m.onnx"
    args: list[object] = [tiny_model_file, "-o", out]
    if case == "exists":
        out.write_bytes(b"old")
    elif case == "missing model":
        args[0] = tmp_path / "none.keras"
    elif case == "not a model":
        args[0] = tmp_path / "notes.keras"
        (tmp_path / "notes.keras").write_text("not a zip")
    elif case == "suffix":
        args[2] = tmp_path / "m.txt"
    elif case == "tile size":
        args += ["--tile-size", "100"]
    elif case == "both sizes":
        args += ["--tile-size", "128", "--dynamic"]
    elif case == "format":
        args += ["--format", "tflite"]
    elif case == "no output":
        args = [tiny_model_file]
    result = run(*args)
    assert result.exit_code == code, result.output
    assert words in one_line_error(result.output)
    if case == "exists":
        assert out.read_bytes() == b"old"
    else:
        assert not out.exists()
    assert not [p for p in tmp_path.iterdir() if ".tmp" in p.name]


def test_missing_package_is_one_line(
    tiny_model_file: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "onnx", None)
    result = run(tiny_model_file, "-o", tmp_path / "m.onnx")
    assert result.exit_code == 1
    assert one_line_error(result.output) == (
        'Error: roadseg export needs the onnx package: pip install "roadseg[onnx]"'
    )
    assert list(tmp_path.iterdir()) == []
