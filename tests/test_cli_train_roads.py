"""``roadseg train --roads``: --check per raster, one-line bad input, a tiny run."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import rasterio
from click.testing import CliRunner

from roadseg.cli import cli
from roadseg.model import read_model_info
from roadseg.synthetic import write_scene


@pytest.fixture(scope="module")
def scene(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    out = tmp_path_factory.mktemp("scene")
    paths = write_scene(out, 256, 256, name="s")
    return paths.image, paths.centerlines


def run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, ["train", *args])
    if result.exception and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, result.stdout, result.stderr


SMALL = ("--tile-size", "32", "--val-block-m", "32")


def test_check_reports_each_raster(scene: tuple[Path, Path]) -> None:
    image, lines = scene
    code, out, _ = run(
        "--data", str(image), "--roads", str(lines), "--check", *SMALL, "--width-field", "width_m"
    )
    assert code == 0, out
    for text in (
        "crs:        EPSG:32633",
        "gsd:        0.5 m",
        "road length:",
        "road share:",
        "validation (32 px",
        "ready to train",
    ):
        assert text in out


def bad_layer(tmp_path: Path, kind: str, lines: Path) -> list[str]:
    line = {"type": "LineString", "coordinates": [[15, 49.6], [15.001, 49.6]]}
    feats: list[dict] = []
    if kind == "points":
        feats = [
            {
                "type": "Feature",
                "geometry": {"type": "Point", "coordinates": [15, 49]},
                "properties": {},
            }
        ]
    elif kind == "far":
        feats = [{"type": "Feature", "geometry": line, "properties": {}}]
    elif kind == "text":
        doc = json.loads(lines.read_text())
        for f in doc["features"]:
            f["properties"]["width_m"] = "wide"
        feats = doc["features"]
    path = tmp_path / f"{kind}.geojson"
    path.write_text(json.dumps({"type": "FeatureCollection", "features": feats}))
    return ["--roads", str(path)]


@pytest.mark.parametrize(
    ("kind", "extra", "message"),
    [
        ("points", [], "not points"),
        ("empty", [], "has no features"),
        ("far", [], "lie inside any raster"),
        ("text", ["--width-field", "width_m"], "not a positive number"),
        ("ok", ["--width-field", "lanes"], "no attribute 'lanes'"),
        ("nocrs", [], "has no CRS"),
        ("plain", [], "no georeferencing"),
    ],
)
def test_bad_input_is_one_line_and_no_model(
    scene: tuple[Path, Path], tmp_path: Path, kind: str, extra: list[str], message: str
) -> None:
    image, lines = scene
    roads = ["--roads", str(lines)]
    data = str(image)
    if kind in ("points", "empty", "far", "text"):
        roads = bad_layer(tmp_path, kind, lines)
    elif kind == "nocrs":
        from roadseg.vector_io import read_lines, write_lines

        gpkg = write_lines(tmp_path / "n.gpkg", [read_lines(lines).lines[0]], {}, None)
        roads = ["--roads", str(gpkg)]
    elif kind == "plain":
        data = str(tmp_path / "plain.tif")
        with rasterio.open(
            data, "w", driver="GTiff", width=64, height=64, count=3, dtype="uint8"
        ) as dst:
            dst.write(np.zeros((3, 64, 64), np.uint8))
    out = tmp_path / "m.keras"
    code, _, err = run("--data", data, *roads, *extra, *SMALL, "-o", str(out))
    assert code == 1
    lines_out = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines_out) == 1 and message in lines_out[0], err
    assert "Traceback" not in err
    assert not out.exists() and not (tmp_path / "m_run").exists()
    code, _, err = run("--data", data, *roads, *extra, *SMALL, "--check")
    assert code == 1 and message in err + _


def test_a_half_is_checked_and_needs_a_road_layer(scene: tuple[Path, Path], tmp_path: Path) -> None:
    image, lines = scene
    args = ["--data", str(image), "--roads", str(lines), "--check", *SMALL]
    code, whole, _ = run(*args, "--width-field", "width_m")
    assert code == 0, whole
    code, upper, _ = run(*args, "--width-field", "width_m", "--half", "upper")
    assert code == 0, upper

    def crops(report: str) -> int:
        line = next(ln for ln in report.splitlines() if "crops:" in ln)
        return int(line.split()[1]) + int(line.split()[3])

    assert 0 < crops(upper) < crops(whole)
    code, _, err = run("--data", str(tmp_path), "--half", "upper")
    assert code == 2 and "--half goes with --roads" in err


def test_missing_layer_file_is_a_usage_error(scene: tuple[Path, Path], tmp_path: Path) -> None:
    image, _ = scene
    code, _, err = run("--data", str(image), "--roads", str(tmp_path / "no.gpkg"))
    assert code == 2 and "does not exist" in err


def test_a_tiny_run_from_a_raster_and_its_centerlines(
    scene: tuple[Path, Path], tmp_path: Path
) -> None:
    image, lines = scene
    out = tmp_path / "m.keras"
    code, _, err = run(
        "--data",
        str(image),
        "--roads",
        str(lines),
        "--width-field",
        "width_m",
        *SMALL,
        "-o",
        str(out),
        "--filters",
        "16,16,16,16",
        "--epochs",
        "1",
        "--steps-per-epoch",
        "3",
        "--val-steps",
        "2",
        "--batch-size",
        "4",
        "--precision",
        "float32",
        "-q",
    )
    assert code == 0, err
    info = read_model_info(out)
    assert info is not None and info.provenance["layout"] == "roads"
    assert "spatial blocks" in info.provenance["data"]
