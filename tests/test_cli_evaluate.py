"""Tests for ``roadseg evaluate`` through click's CliRunner."""

from __future__ import annotations

import csv
import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import rasterio
from affine import Affine
from click.testing import CliRunner, Result

from roadseg.cli import cli
from roadseg.metrics import evaluate_arrays

KEYS = {"iou", "f1", "precision", "recall", "relaxed_precision", "relaxed_recall", "breakeven"}


def roads(h: int = 64, w: int = 80) -> np.ndarray:
    m = np.zeros((h, w), np.uint8)
    m[20:23, :] = 1
    m[:, 50:53] = 1
    return m


def run(*args: str) -> Result:
    return CliRunner().invoke(cli, ["evaluate", *args])


def assert_one_line_error(result: Result, *fragments: str) -> None:
    assert result.exit_code != 0
    assert "Traceback" not in result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1, result.output
    for fragment in fragments:
        assert fragment in lines[0], result.output


@pytest.fixture
def pair(make_geotiff: Callable[..., Path]) -> tuple[Path, Path, np.ndarray, np.ndarray]:
    """A ``roadseg predict``-style probability raster (uint8, 1/254, nodata 255) and a mask."""
    truth = roads()
    rng = np.random.default_rng(0)
    prob = np.clip(np.roll(truth, 1, axis=0) * 180 + rng.integers(0, 140, truth.shape), 0, 254)
    prob = prob.astype(np.uint8)
    prob[:4, :10] = 255
    pred_path = make_geotiff(prob, name="pred.tif", nodata=255)
    with rasterio.open(pred_path, "r+") as dst:
        dst.scales = (1 / 254,)
    truth_path = make_geotiff(truth, name="truth.tif")
    return pred_path, truth_path, prob, truth


def test_table(pair: tuple[Path, Path, np.ndarray, np.ndarray]) -> None:
    pred, truth, _, _ = pair
    result = run(str(pred), str(truth))
    assert result.exit_code == 0, result.output
    for label in ("IoU", "F1", "precision", "recall", "relaxed precision", "relaxed recall"):
        assert label in result.output
    assert "breakeven" in result.output and "at threshold" in result.output
    assert "40 nodata" in result.output


def test_json(pair: tuple[Path, Path, np.ndarray, np.ndarray]) -> None:
    pred, truth, prob, mask = pair
    result = run(str(pred), str(truth), "--json", "--rho", "2", "--threshold", "0.6")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert KEYS <= data.keys()
    expected = evaluate_arrays(prob, mask, valid=prob != 255, scale=1 / 254, rho=2, threshold=0.6)
    for key in KEYS:
        assert data[key] == pytest.approx(getattr(expected, key)), key
    assert data["rho"] == 2 and data["threshold"] == 0.6
    assert data["nodata_pixels"] == 40


def test_curve_csv(pair: tuple[Path, Path, np.ndarray, np.ndarray], tmp_path: Path) -> None:
    pred, truth, _, _ = pair
    out = tmp_path / "curve.csv"
    result = run(str(pred), str(truth), "--curve", str(out), "--json")
    assert result.exit_code == 0, result.output
    json.loads(result.stdout)  # --json output stays pure JSON; the note goes to stderr
    assert "Wrote" in result.stderr
    with out.open() as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 255
    assert float(rows[0]["threshold"]) == 0.0 and float(rows[-1]["threshold"]) == 1.0
    assert float(rows[0]["relaxed_recall"]) == 1.0
    again = run(str(pred), str(truth), "--curve", str(out))
    assert_one_line_error(again, "already exists", "--overwrite")
    assert run(str(pred), str(truth), "--curve", str(out), "--overwrite").exit_code == 0


def test_self_is_perfect(make_geotiff: Callable[..., Path]) -> None:
    mask = make_geotiff(roads() * 255)
    data = json.loads(run(str(mask), str(mask), "--json").stdout)
    assert all(data[key] == 1.0 for key in KEYS)


def test_float_prediction_with_nodata(make_geotiff: Callable[..., Path]) -> None:
    truth = roads()
    prob = truth.astype(np.float32) * 0.9
    prob[:, :8] = -1  # roadseg predict --float nodata
    pred = make_geotiff(prob, nodata=-1)
    data = json.loads(run(str(pred), str(make_geotiff(truth)), "--json").stdout)
    assert data["nodata_pixels"] == 64 * 8
    assert data["iou"] == 1.0


@pytest.mark.filterwarnings("ignore::rasterio.errors.NotGeoreferencedWarning")
@pytest.mark.parametrize("driver", ["PNG", "JPEG"])
def test_png_and_jpeg_inputs(tmp_path: Path, driver: str) -> None:
    """Plain images work; JPEG's smeared edges around a 0/255 mask do not count as road."""
    paths = []
    for name in ("pred", "truth"):
        path = tmp_path / f"{name}.{driver.lower()}"
        with rasterio.open(
            path, "w", driver=driver, width=80, height=64, count=1, dtype="uint8"
        ) as dst:
            dst.write(roads()[None] * 255)
        paths.append(str(path))
    result = CliRunner().invoke(cli, ["evaluate", *paths, "--json"])
    assert result.exit_code == 0, result.output
    assert "Warning" not in result.output
    assert json.loads(result.stdout)["iou"] == 1.0


def test_missing_file(pair: tuple[Path, Path, np.ndarray, np.ndarray], tmp_path: Path) -> None:
    pred, _, _, _ = pair
    assert_one_line_error(run(str(pred), str(tmp_path / "nope.tif")), "nope.tif")


def test_not_a_raster(pair: tuple[Path, Path, np.ndarray, np.ndarray], tmp_path: Path) -> None:
    pred, _, _, _ = pair
    text = tmp_path / "notes.tif"
    text.write_text("not a raster")
    assert_one_line_error(run(str(pred), str(text)), "notes.tif")


def test_size_mismatch(make_geotiff: Callable[..., Path]) -> None:
    a = make_geotiff(roads(64, 80))
    b = make_geotiff(roads(60, 80))
    assert_one_line_error(run(str(a), str(b)), "80 x 64", "80 x 60")


def test_multiband_truth_that_is_an_image(make_geotiff: Callable[..., Path]) -> None:
    rgb = np.random.default_rng(1).integers(0, 256, (3, 64, 80)).astype(np.uint8)
    pred = make_geotiff(roads())
    assert_one_line_error(run(str(pred), str(make_geotiff(rgb))), "3 bands", "mask")


def test_grids_that_differ(make_geotiff: Callable[..., Path]) -> None:
    a = make_geotiff(roads())
    b = make_geotiff(roads(), transform=Affine(0.5, 0, 501000.0, 0, -0.5, 5500000.0))
    assert_one_line_error(run(str(a), str(b)), "georeferencing")


@pytest.mark.parametrize(
    "args", [["--threshold", "1.5"], ["--threshold", "0"], ["--rho", "-1"], ["--rho", "x"]]
)
def test_bad_options_are_usage_errors(
    pair: tuple[Path, Path, np.ndarray, np.ndarray], args: list[str]
) -> None:
    pred, truth, _, _ = pair
    result = run(str(pred), str(truth), *args)
    assert result.exit_code == 2
    assert "Traceback" not in result.output


def test_help_teaches() -> None:
    result = run("--help")
    assert result.exit_code == 0
    for fragment in ("relaxed precision", "rho", "pixels", "Examples", "--curve", "--json"):
        assert fragment in result.output


SAMPLE = Path(__file__).resolve().parents[1] / "sample_data"


def test_vector_truth_scores_the_network() -> None:
    mask, lines = SAMPLE / "sample_mask.tif", SAMPLE / "sample_centerlines.geojson"
    result = run(str(mask), str(lines), "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert report["centerlines"]["completeness"] >= 0.95
    assert report["centerlines"]["correctness"] >= 0.95
    assert report["pred_from_raster"] is True
    table = run(str(mask), str(lines), "--buffer", "3")
    assert table.exit_code == 0 and "completeness (buffer 3 m)" in table.output


def test_vector_truth_that_is_not_a_vector_file_fails_in_one_line(tmp_path: Path) -> None:
    bad = tmp_path / "truth.geojson"
    bad.write_text("not json")
    result = run(str(SAMPLE / "sample_mask.tif"), str(bad))
    assert_one_line_error(result, "truth.geojson")


def test_choose_mode_from_the_arguments(tmp_path: Path) -> None:
    import click

    from roadseg.cli.evaluate import Mode, choose_mode

    (tmp_path / "p").mkdir()
    (tmp_path / "t").mkdir()
    p, t = str(tmp_path / "p"), str(tmp_path / "t")
    assert choose_mode(None, None, "data", None, None, None) is Mode.DATASET
    assert choose_mode(p, t, None, None, None, None) is Mode.FOLDERS
    assert choose_mode("a.tif", "roads.GeoJSON", None, None, None, None) is Mode.NETWORK
    assert choose_mode("a.tif", "b.tif", None, None, None, None) is Mode.RASTERS
    for args in [
        ("a.tif", None, "data", None, None, None),
        (None, None, "data", None, (1, 2, 3), 4),
        ("a.tif", None, None, None, None, None),
        ("a.tif", "b.tif", None, "m.keras", None, None),
    ]:
        with pytest.raises(click.UsageError):
            choose_mode(*args)
