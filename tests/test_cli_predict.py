"""``roadseg predict`` from the command line: exit codes, messages, files."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import rasterio
from click.testing import CliRunner

from roadseg.cli import cli


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory) -> Path:
    from roadseg.model import ModelInfo, build_resunet, save_model

    model = build_resunet((None, None, 3), filters=(4, 8, 8, 16))
    path = tmp_path_factory.mktemp("model") / "tiny.keras"
    return save_model(model, path, ModelInfo(filters=(4, 8, 8, 16), tile_size=64))


def invoke(*args: str):
    return CliRunner().invoke(cli, [str(a) for a in args])


def assert_clean_failure(result, *words: str, code: int = 1) -> None:
    assert result.exit_code == code, result.output
    assert "Traceback" not in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    lines = [line for line in result.output.strip().splitlines() if line.strip()]
    for word in words:
        assert word in result.output, result.output
    if code == 1:
        assert len(lines) == 1, result.output


def test_predict_writes_default_output_mask_and_preview(make_geotiff, rgb_array, tiny_model):
    src = make_geotiff(rgb_array(100, 150), name="scene.tif")
    mask, preview = src.with_name("m.tif"), src.with_name("p.png")
    result = invoke(
        "predict",
        src,
        "--model",
        tiny_model,
        "--mask",
        mask,
        "--preview",
        preview,
        "--threshold",
        "0.3",
    )
    assert result.exit_code == 0, result.output
    out = src.with_name("scene_roads.tif")
    assert out.exists() and mask.exists() and preview.exists()
    assert str(out) in result.output
    with rasterio.open(out) as ds:
        assert (ds.width, ds.height) == (150, 100)
        assert ds.tags()["ROADSEG_TILE_SIZE"] == "64"
    with rasterio.open(mask) as ds:
        assert ds.tags()["ROADSEG_THRESHOLD"] == "0.3"


def test_quiet_prints_nothing(make_geotiff, rgb_array, tiny_model, tmp_path):
    src = make_geotiff(rgb_array(40, 40))
    result = invoke("predict", src, "-o", tmp_path / "o.tif", "--model", tiny_model, "-q")
    assert result.exit_code == 0
    assert result.output == ""


@pytest.mark.parametrize(
    ("case", "words", "code"),
    [
        ("missing", ["does not exist"], 1),
        ("not-raster", ["not a raster"], 1),
        ("truncated", ["corrupt or truncated"], 1),
        ("zero-size", ["not a raster"], 1),
        ("one-band", ["--bands 1,1,1"], 1),
        ("two-bands", ["2 band(s)", "expects 3"], 1),
        ("complex", ["complex64"], 1),
        ("no-folder", ["does not exist"], 1),
        ("exists", ["--overwrite"], 1),
        ("model-missing", ["model file", "does not exist"], 1),
        ("model-bad", ["not a Keras model file"], 1),
        ("bad-bands", ["--bands"], 2),
        ("bad-tile", ["--tile-size"], 2),
        ("bad-threshold", ["--threshold"], 2),
    ],
)
def test_bad_input_one_line_no_output(
    case, words, code, make_geotiff, rgb_array, tiny_model, tmp_path
):
    src = make_geotiff(rgb_array(300, 300))
    out = tmp_path / "out.tif"
    extra: list[str] = []
    model = str(tiny_model)
    if case == "missing":
        src = tmp_path / "nope.tif"
    elif case == "not-raster":
        src = tmp_path / "notes.tif"
        src.write_text("hello, I am not a GeoTIFF\n" * 50)
    elif case == "truncated":
        blob = src.read_bytes()
        src = tmp_path / "cut.tif"
        src.write_bytes(blob[: len(blob) // 2])
    elif case == "zero-size":
        src = tmp_path / "empty.tif"
        src.write_bytes(b"")
    elif case == "one-band":
        src = make_geotiff(np.zeros((1, 50, 50), dtype=np.uint16))
    elif case == "two-bands":
        src = make_geotiff(np.zeros((2, 50, 50), dtype=np.uint8))
    elif case == "complex":
        src = make_geotiff(np.zeros((3, 50, 50), dtype=np.complex64))
    elif case == "no-folder":
        out = tmp_path / "no" / "such" / "out.tif"
    elif case == "exists":
        out.write_bytes(b"precious")
    elif case == "model-missing":
        model = str(tmp_path / "none.keras")
    elif case == "model-bad":
        model = str(tmp_path / "bad.keras")
        Path(model).write_text("junk")
    elif case == "bad-bands":
        extra = ["--bands", "1,x,3"]
    elif case == "bad-tile":
        extra = ["--tile-size", "100"]
    elif case == "bad-threshold":
        extra = ["--threshold", "1.5"]
    result = invoke("predict", src, "-o", out, "--model", model, *extra)
    assert_clean_failure(result, *words, code=code)
    if case == "exists":
        assert out.read_bytes() == b"precious"
    else:
        assert not out.exists()
    leftovers = [p.name for p in out.parent.glob(".*")] if out.parent.exists() else []
    assert leftovers == []


def test_no_crs_warns_and_keeps_grid(make_geotiff, rgb_array, tiny_model, tmp_path):
    src = make_geotiff(rgb_array(60, 60), crs=None)
    out = tmp_path / "o.tif"
    result = invoke("predict", src, "-o", out, "--model", tiny_model)
    assert result.exit_code == 0, result.output
    assert "no CRS" in result.output
    with rasterio.open(out) as ds:
        assert ds.crs is None and (ds.width, ds.height) == (60, 60)


def test_help_teaches():
    result = invoke("predict", "--help")
    assert result.exit_code == 0
    for word in ("--bands", "--overlap", "--mask", "Examples"):
        assert word in result.output


def test_python_dash_m_runs():
    proc = subprocess.run(
        [sys.executable, "-m", "roadseg", "--help"], capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0
    assert "predict" in proc.stdout


SAMPLE = Path(__file__).resolve().parents[1] / "sample_data" / "sample.tif"


def _count_lines(gpkg: Path) -> int:
    import sqlite3

    with sqlite3.connect(gpkg) as db:
        return db.execute("SELECT COUNT(*) FROM roads").fetchone()[0]


def test_predict_vectorize_writes_the_network_vectorize_would(tmp_path):
    src = tmp_path / "scene.tif"
    src.write_bytes(SAMPLE.read_bytes())
    result = invoke("predict", src, "--vectorize")
    assert result.exit_code == 0, result.output
    same_run = tmp_path / "scene_roads.gpkg"
    assert same_run.exists() and str(same_run) in result.output
    separate = tmp_path / "separate.gpkg"
    again = invoke("vectorize", tmp_path / "scene_roads.tif", "-o", separate)
    assert again.exit_code == 0, again.output
    assert _count_lines(same_run) == _count_lines(separate) > 0


@pytest.mark.parametrize(
    ("vector", "exists", "words"),
    [("roads.shp", False, ["'.shp'", ".gpkg"]), ("roads.gpkg", True, ["already exists"])],
)
def test_predict_vectorize_checks_its_path_before_predicting(
    vector, exists, words, make_geotiff, rgb_array, tiny_model, tmp_path
):
    src = make_geotiff(rgb_array(40, 40))
    out = tmp_path / "o.tif"
    target = tmp_path / vector
    if exists:
        target.write_bytes(b"keep me")
    result = invoke("predict", src, "-o", out, "--model", tiny_model, "--vectorize", target)
    assert_clean_failure(result, *words, code=result.exit_code)
    assert result.exit_code != 0
    assert not out.exists()
    assert target.exists() == exists
    if exists:
        assert target.read_bytes() == b"keep me"


def test_several_inputs_each_get_an_output(make_geotiff, rgb_array, tiny_model, tmp_path):
    a = make_geotiff(rgb_array(40, 50), name="a.tif")
    b = make_geotiff(rgb_array(30, 30), name="b.tif")
    out = tmp_path / "out"
    out.mkdir()
    result = invoke("predict", a, b, "--output-dir", out, "--model", tiny_model, "-q")
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in out.iterdir()) == ["a_roads.tif", "b_roads.tif"]
    with rasterio.open(out / "b_roads.tif") as ds:
        assert (ds.width, ds.height) == (30, 30)
    again = invoke("predict", a, b, "--output-dir", out, "--model", tiny_model, "--gsd", "1")
    assert_clean_failure(again, "--gsd", code=2)
