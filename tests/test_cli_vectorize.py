"""Tests for the ``roadseg vectorize`` command."""

from __future__ import annotations

import json
import re
import warnings
from pathlib import Path

import numpy as np
import pytest
import rasterio
from affine import Affine
from click.testing import CliRunner
from conftest import shared

from roadseg.cli import cli
from roadseg.vector_io import read_lines
from roadseg.vectorize import VectorizeOptions


def _road(height: int = 200, width: int = 300, value: int = 1) -> np.ndarray:
    mask = np.zeros((height, width), np.uint8)
    mask[90:106, :] = value
    mask[:, 140:152] = value
    return mask


def run(*args: str):
    return CliRunner().invoke(cli, ["vectorize", *args], catch_exceptions=False)


def test_help_teaches_units_and_defaults() -> None:
    result = run("--help")
    assert result.exit_code == 0
    text = " ".join(result.output.split())
    for word in ("M2", "metres", "--threshold", "--low", "--gap", "--spur", "Examples", ".geojson"):
        assert word in text
    # The defaults quoted in the help are VectorizeOptions' defaults.
    options_text = text.split("Options:")[1]
    defaults = VectorizeOptions()
    quoted = {
        "--min-area": defaults.min_area_m2,
        "--holes": defaults.hole_area_m2,
        "--spur": defaults.spur_m,
        "--merge": defaults.merge_m,
        "--gap": defaults.gap_m,
        "--simplify": defaults.simplify_m,
        "--chunk-size": defaults.chunk_size,
    }
    for option, value in quoted.items():
        match = re.search(re.escape(option) + r" [^\[]*\[default: ([\d.]+)\]", options_text)
        assert match, option
        assert float(match.group(1)) == pytest.approx(value), option


def test_writes_a_geopackage_beside_the_input(make_geotiff, tmp_path: Path) -> None:
    tif = make_geotiff(_road(value=255), name="ortho_mask.tif")
    result = run(str(tif))
    assert result.exit_code == 0, result.output
    out = tmp_path / "ortho_mask_roads.gpkg"
    assert out.exists()
    assert re.search(r"Wrote .*ortho_mask_roads\.gpkg: 4 lines, .* 1 junctions", result.output)
    lines = read_lines(out)
    assert len(lines.lines) == 4 and lines.crs.to_epsg() == 32633
    # roadseg predict's outputs end in _roads already: no doubled suffix.
    tif2 = make_geotiff(_road(), name="ortho_roads.tif")
    assert run(str(tif2), "-q").exit_code == 0
    assert (tmp_path / "ortho_roads.gpkg").exists()


def test_geojson_output_is_lon_lat(make_geotiff, tmp_path: Path) -> None:
    tif = make_geotiff(_road())
    out = tmp_path / "roads.geojson"
    result = run(str(tif), "-o", str(out), "--simplify", "1")
    assert result.exit_code == 0, result.output
    doc = json.loads(out.read_text())
    assert len(doc["features"]) == 4
    lon, lat = doc["features"][0]["geometry"]["coordinates"][0]
    assert 14.9 < lon < 15.1 and 49.6 < lat < 49.7  # UTM 33N near its central meridian
    assert doc["roadseg"]["ROADSEG_SIMPLIFY_M"] == "1"


def test_probabilities_from_predict_with_hysteresis(make_geotiff, tmp_path: Path) -> None:
    # uint8 probabilities as roadseg predict writes them: p * 254, 255 = nodata.
    prob = np.zeros((200, 300), np.uint8)
    prob[90:106, :150] = 230  # 0.91
    prob[90:106, 150:] = 90  # 0.35: the same road, faint
    prob[:20, :] = 255  # nodata
    tif = make_geotiff(prob, nodata=255)
    with rasterio.open(tif, "r+") as ds:
        ds.update_tags(ROADSEG_VALUE="probability * 254", ROADSEG_THRESHOLD="0.5")
        ds.scales = (1 / 254,)
    out = tmp_path / "plain.gpkg"
    result = run(str(tif), "-o", str(out))
    assert result.exit_code == 0, result.output
    assert "probabilities >= 0.5" in result.output
    assert len(read_lines(out).lines) == 1
    out2 = tmp_path / "hyst.gpkg"
    assert run(str(tif), "-o", str(out2), "--low", "0.3").exit_code == 0
    assert read_lines(out2).lines[0].length > read_lines(out).lines[0].length * 1.8
    out3 = tmp_path / "low.gpkg"
    assert run(str(tif), "-o", str(out3), "-t", "0.3").exit_code == 0
    assert read_lines(out3).lines[0].length == pytest.approx(read_lines(out2).lines[0].length)


def test_empty_mask_is_an_empty_layer(make_geotiff, tmp_path: Path) -> None:
    tif = make_geotiff(np.zeros((100, 100), np.uint8))
    out = tmp_path / "empty.gpkg"
    result = run(str(tif), "-o", str(out))
    assert result.exit_code == 0, result.output
    assert "0 lines" in result.output
    assert read_lines(out).lines == ()


@pytest.mark.parametrize(
    ("setup", "message"),
    [
        ("not_raster", "is not a raster GDAL can read"),
        ("missing", "does not exist"),
        ("multiband", "has 3 bands"),
        ("image", "neither a road mask"),
        ("bad_extension", "cannot tell the vector format"),
    ],
)
def test_bad_input_gives_one_line_and_no_file(setup, message, make_geotiff, tmp_path) -> None:
    out = tmp_path / "out.gpkg"
    if setup == "not_raster":
        src = tmp_path / "notes.tif"
        src.write_text("not a raster")
    elif setup == "missing":
        src = tmp_path / "missing.tif"
    elif setup == "multiband":
        src = make_geotiff(np.zeros((3, 50, 50), np.uint8))
    elif setup == "image":
        src = make_geotiff(np.random.default_rng(0).integers(0, 2000, (50, 50)).astype(np.uint16))
    else:
        src = make_geotiff(_road())
        out = tmp_path / "out.shp"
    result = run(str(src), "-o", str(out))
    assert result.exit_code == 1
    assert message in result.output
    assert len(result.output.strip().splitlines()) == 1
    assert not out.exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_existing_output_needs_overwrite(make_geotiff, tmp_path: Path) -> None:
    tif = make_geotiff(_road())
    out = tmp_path / "roads.gpkg"
    out.write_text("precious")
    result = run(str(tif), "-o", str(out))
    assert result.exit_code == 1 and "already exists; use --overwrite" in result.output
    assert out.read_text() == "precious"
    assert run(str(tif), "-o", str(out), "--overwrite").exit_code == 0
    assert len(read_lines(out).lines) == 4
    result = run(str(tif), "-o", str(tif), "--overwrite")
    assert result.exit_code == 1


def test_no_crs_warns_and_refuses_geojson(tmp_path: Path) -> None:
    tif = tmp_path / "nocrs.tif"
    mask = _road()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", rasterio.errors.NotGeoreferencedWarning)
        with rasterio.open(
            tif, "w", driver="GTiff", width=300, height=200, count=1, dtype="uint8"
        ) as ds:
            ds.write(mask, 1)
    out = tmp_path / "nocrs.geojson"
    result = run(str(tif), "-o", str(out))
    assert result.exit_code == 1 and "no CRS" in result.output and "GeoPackage" in result.output
    assert not out.exists()
    gpkg = tmp_path / "nocrs.gpkg"
    result = run(str(tif), "-o", str(gpkg))
    assert result.exit_code == 0
    assert "no CRS" in result.output  # the warning
    back = read_lines(gpkg)
    assert back.crs is None and len(back.lines) == 4


@pytest.mark.parametrize(
    "args",
    [
        ["--threshold", "1.5"],
        ["--low", "0"],
        ["--threshold", "0.3", "--low", "0.6"],
        ["--gap", "-1"],
        ["--chunk-size", "100"],
    ],
)
def test_bad_options_are_usage_errors(args, make_geotiff) -> None:
    tif = make_geotiff(_road())
    result = run(str(tif), *args)
    assert result.exit_code == 2


def test_chunk_size_does_not_change_the_result(make_geotiff, tmp_path: Path) -> None:
    tif = make_geotiff(_road(), transform=Affine(0.5, 0, 500000, 0, -0.5, 5500000))
    a, b = tmp_path / "a.geojson", tmp_path / "b.geojson"
    assert run(str(tif), "-o", str(a), "-q").exit_code == 0
    assert run(str(tif), "-o", str(b), "-q", "--chunk-size", "64").exit_code == 0
    fa, fb = json.loads(a.read_text()), json.loads(b.read_text())
    assert fa["features"] == fb["features"]


def test_spacenet_chip_from_the_command_line(tmp_path: Path) -> None:
    mask = shared("spacenet", "sample_road_raster_mask.tif")
    out = tmp_path / "spacenet.gpkg"
    result = run(str(mask), "-o", str(out))
    assert result.exit_code == 0, result.output
    back = read_lines(out)
    assert back.crs.to_epsg() == 4326 and len(back.lines) == 11
