"""``roadseg evaluate --data RASTERS --roads LAYER``: a model scored against a road layer."""

from __future__ import annotations

import csv
import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
import rasterio
from click.testing import CliRunner, Result
from rasterio.windows import Window

from roadseg.cli import cli
from roadseg.data.masks import shapes_mask
from roadseg.data.road_data import RoadLabels, place_road_layer
from roadseg.data.roads import WidthRule
from roadseg.evaluate_roads import RoadEvaluation, evaluate_roads
from roadseg.model import LoadedModel, ModelInfo, build_resunet, load_model, save_model
from roadseg.synthetic import write_scene
from roadseg.vector_io import read_lines, write_lines

SIZE = 256
KEYS = ("iou", "f1", "precision", "recall", "relaxed_precision", "relaxed_recall")


@pytest.fixture(scope="module")
def scene(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    out = tmp_path_factory.mktemp("scene")
    paths = write_scene(out, SIZE, SIZE, name="s")
    return paths.image, paths.mask, paths.centerlines


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> LoadedModel:
    path = tmp_path_factory.mktemp("m") / "tiny.keras"
    import keras

    filters = (4, 8, 8, 16)
    keras.utils.set_random_seed(0)  # the same random model whatever ran before
    save_model(
        build_resunet((None, None, 3), filters=filters),
        path,
        ModelInfo(filters=filters, tile_size=64, threshold=0.5),
    )
    return load_model(path)


def red_is_road(batch: np.ndarray) -> np.ndarray:
    """A perfect 'model' of rasters that show their own road mask: the red band."""
    return batch[..., 0]


def mask_as_image(mask: np.ndarray, like: Path, out: Path, *, nodata: int | None = None) -> Path:
    """``mask`` (0/1 or 0/255) as an RGB uint8 raster on the grid of ``like``."""
    with rasterio.open(like) as src:
        profile = {
            "driver": "GTiff",
            "width": src.width,
            "height": src.height,
            "count": 3,
            "dtype": "uint8",
            "crs": src.crs,
            "transform": src.transform,
            "nodata": nodata,
        }
    data = np.where(mask > 0, 255, 0).astype(np.uint8)
    with rasterio.open(out, "w", **profile) as dst:
        dst.write(np.stack([data] * 3))
    return out


def scene_mask(path: Path) -> np.ndarray:
    with rasterio.open(path) as src:
        return src.read(1) > 127


LABELS = {"rule": WidthRule(field="width_m")}


def burned_truth(image: Path, lines: Path) -> np.ndarray:
    placed = place_road_layer(image, RoadLabels(lines, **LABELS))  # type: ignore[arg-type]
    return shapes_mask(placed.scenes[image].shapes)(Window(0, 0, SIZE, SIZE))


def score(model: LoadedModel, image: Path, lines: Path, **kw: object) -> RoadEvaluation:
    labels = RoadLabels(
        lines,
        rule=WidthRule(field="width_m"),
        aoi=kw.pop("aoi", None),  # type: ignore[arg-type]
        half=kw.pop("half", None),  # type: ignore[arg-type]
    )
    kw.setdefault("network", False)
    return evaluate_roads(model, image, labels, infer_fn=red_is_road, **kw)  # type: ignore[arg-type]


def test_the_burned_truth_is_the_scenes_own_mask_within_one_pixel(
    scene: tuple[Path, Path, Path], model: LoadedModel, tmp_path: Path
) -> None:
    """Predicting the scene's own mask: every burned pixel lies within 1 px of the
    scene's mask (diagonals included: rho 1.5), and all but a handful of the mask's
    pixels within 1 px of the burned truth: at the raster's edge the scene's mask
    may reach 2 px further (the border rule of tests/data/test_roads.py allows it)."""
    _, mask_path, lines = scene
    image = mask_as_image(scene_mask(mask_path), mask_path, tmp_path / "m.tif")
    result = score(model, image, lines, rho=1.5).overall
    assert result.counts.tp > 1000
    assert result.relaxed_recall == 1.0 and result.relaxed_precision > 0.999
    assert result.f1 > 0.99


def test_a_perfect_prediction_scores_one(
    scene: tuple[Path, Path, Path], model: LoadedModel, tmp_path: Path
) -> None:
    image, _, lines = scene
    perfect = mask_as_image(burned_truth(image, lines), image, tmp_path / "p.tif")
    result = score(model, perfect, lines, network=True)
    for key in KEYS:
        assert getattr(result.overall, key) == 1.0, key
    assert result.best_f1 == 1.0
    assert result.overall.counts.total == SIZE * SIZE and result.overall.nodata == 0
    network = result.network
    assert network is not None and network.truth_lines > 0
    assert network.centerlines.completeness > 0.9 and network.centerlines.correctness > 0.9


def test_halves_and_the_aoi_restrict_the_counted_pixels(
    scene: tuple[Path, Path, Path], model: LoadedModel, tmp_path: Path
) -> None:
    image, mask_path, lines = scene
    guess = mask_as_image(scene_mask(mask_path), mask_path, tmp_path / "m.tif")
    whole = score(model, guess, lines, rho=0).overall.counts
    upper = score(model, guess, lines, rho=0, half="upper").overall.counts
    lower = score(model, guess, lines, rho=0, half="lower").overall.counts
    assert upper.total == lower.total == SIZE * SIZE // 2
    for key in ("tp", "fp", "fn", "tn"):  # the two halves partition the raster
        assert getattr(upper, key) + getattr(lower, key) == getattr(whole, key), key
    left = score(model, guess, lines, half="left").overall.counts
    assert left.total == SIZE * SIZE // 2

    # An AOI of columns 32-96 and rows 32-160, drawn in the raster's CRS.
    with rasterio.open(image) as src:
        t, crs = src.transform, src.crs
    x0, y0 = t @ (32, 32)
    x1, y1 = t @ (96, 160)
    aoi = tmp_path / "aoi.geojson"
    ring = [[x0, y0], [x1, y0], [x1, y1], [x0, y1], [x0, y0]]
    polygon = {"type": "Polygon", "coordinates": [ring]}
    doc = {
        "type": "FeatureCollection",
        "crs": {"type": "name", "properties": {"name": crs.to_string()}},
        "features": [{"type": "Feature", "properties": {}, "geometry": polygon}],
    }
    aoi.write_text(json.dumps(doc))
    assert score(model, guess, lines, aoi=aoi).overall.counts.total == 64 * 128
    assert score(model, guess, lines, aoi=aoi, half="upper").overall.counts.total == 64 * 96


def test_a_half_predicts_its_window_only_and_counts_the_same(
    scene: tuple[Path, Path, Path],
    model: LoadedModel,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """With tiles small enough, a half is predicted as a window of the raster (the
    half and a margin of two tiles), and scored on the same pixels as before."""
    import roadseg.resample
    from roadseg.predict import PredictOptions

    image, mask_path, lines = scene
    guess = mask_as_image(scene_mask(mask_path), mask_path, tmp_path / "m.tif")
    seen: list[tuple[int, int]] = []
    real = roadseg.resample.predict_at_model_gsd

    def spy(source, *args, **kw):  # type: ignore[no-untyped-def]
        with rasterio.open(source) as src:
            seen.append((src.width, src.height))
        return real(source, *args, **kw)

    monkeypatch.setattr(roadseg.resample, "predict_at_model_gsd", spy)
    small = PredictOptions(tile_size=32, overlap=8)
    whole = score(model, guess, lines, rho=0, options=small).overall.counts
    upper = score(model, guess, lines, rho=0, half="upper", options=small).overall.counts
    lower = score(model, guess, lines, rho=0, half="lower", options=small).overall.counts
    assert seen == [(SIZE, SIZE), (SIZE, SIZE // 2 + 64), (SIZE, SIZE // 2 + 64)]
    for key in ("tp", "fp", "fn", "tn"):
        assert getattr(upper, key) + getattr(lower, key) == getattr(whole, key), key


def test_nodata_is_never_counted(
    scene: tuple[Path, Path, Path], model: LoadedModel, tmp_path: Path
) -> None:
    image, mask_path, lines = scene
    mask = scene_mask(mask_path).astype(np.uint8)
    path = mask_as_image(mask, mask_path, tmp_path / "n.tif", nodata=7)
    with rasterio.open(path, "r+") as dst:
        data = dst.read()
        data[:, :16, :16] = 7
        dst.write(data)
    result = score(model, path, lines).overall
    assert result.nodata == 256 and result.counts.total == SIZE * SIZE - 256
    lower = score(model, path, lines, half="lower").overall
    assert lower.nodata == 0 and lower.counts.total == SIZE * SIZE // 2


def test_roads_under_nodata_are_not_missed_by_the_network(
    scene: tuple[Path, Path, Path], model: LoadedModel, tmp_path: Path
) -> None:
    """A perfect prediction of a raster whose left half is nodata: the lines there
    are not asked of the prediction, so completeness stays high."""
    image, _, lines = scene
    path = mask_as_image(burned_truth(image, lines), image, tmp_path / "p.tif", nodata=7)
    with rasterio.open(path, "r+") as dst:
        data = dst.read()
        data[:, :, : SIZE // 2] = 7
        dst.write(data)
    network = score(model, path, lines, network=True).network
    assert network is not None
    assert network.centerlines.completeness > 0.9 and network.centerlines.correctness > 0.9


# ---------------------------------------------------------------------------------------------
# The command
# ---------------------------------------------------------------------------------------------


def run(*args: str) -> Result:
    return CliRunner().invoke(cli, ["evaluate", *args])


def test_the_command_reports_a_table_json_and_a_curve(
    scene: tuple[Path, Path, Path], model: LoadedModel, tmp_path: Path
) -> None:
    image, _, lines = scene
    common = ["--model", str(model.path), "--data", str(image), "--roads", str(lines)]
    common += ["--width-field", "width_m", "--half", "lower"]
    curve = tmp_path / "curve.csv"
    result = run(*common, "--json", "--curve", str(curve))
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["overall"]["valid_pixels"] == SIZE * SIZE // 2
    assert set(KEYS) | {"best_f1", "best_f1_threshold"} <= set(report["overall"])
    assert {"completeness", "correctness"} <= set(report["network"]["centerlines"])
    assert "apls" in report["network"]["apls"]
    assert [Path(i["image"]).name for i in report["images"]] == ["s.tif"]
    with curve.open() as f:
        rows = list(csv.DictReader(f))
    assert float(rows[0]["threshold"]) == 0.0 and float(rows[-1]["threshold"]) == 1.0
    table = run(*common)
    assert table.exit_code == 0, table.output
    for text in ("lower half", "best F1", "completeness (buffer 2 m)", "APLS", "width_m"):
        assert text in table.output, text
    assert "APLS" not in run(*common, "--no-network").output


def bad_input(kind: str, scene: tuple[Path, Path, Path], tmp_path: Path) -> list[str]:
    """``--data`` and ``--roads`` arguments with one problem of ``kind``."""
    image, _, lines = scene
    data, roads = str(image), str(lines)
    line = {"type": "LineString", "coordinates": [[15, 49.6], [15.001, 49.6]]}
    extra: list[str] = []
    if kind in ("points", "far", "text"):
        if kind == "points":
            geometry: dict = {"type": "Point", "coordinates": [15, 49]}
            feats = [{"type": "Feature", "geometry": geometry, "properties": {}}]
        elif kind == "far":
            feats = [{"type": "Feature", "geometry": line, "properties": {}}]
        else:
            feats = json.loads(lines.read_text())["features"]
            for f in feats:
                f["properties"]["width_m"] = "wide"
            extra = ["--width-field", "width_m"]
        roads = str(tmp_path / f"{kind}.geojson")
        Path(roads).write_text(json.dumps({"type": "FeatureCollection", "features": feats}))
    elif kind == "missing-field":
        extra = ["--width-field", "lanes"]
    elif kind == "nocrs":
        roads = str(write_lines(tmp_path / "n.gpkg", [read_lines(lines).lines[0]], {}, None))
    elif kind == "plain":
        data = str(tmp_path / "plain.tif")
        with rasterio.open(
            data, "w", driver="GTiff", width=64, height=64, count=3, dtype="uint8"
        ) as dst:
            dst.write(np.zeros((3, 64, 64), np.uint8))
    return ["--data", data, "--roads", roads, *extra]


@pytest.mark.filterwarnings("ignore::rasterio.errors.NotGeoreferencedWarning")
@pytest.mark.parametrize(
    ("kind", "message"),
    [
        ("far", "lie inside any raster"),
        ("nocrs", "has no CRS"),
        ("points", "not points"),
        ("missing-field", "no attribute 'lanes'"),
        ("text", "not a positive number"),
        ("plain", "no georeferencing"),
    ],
)
def test_bad_input_is_one_line(
    scene: tuple[Path, Path, Path],
    model: LoadedModel,
    tmp_path: Path,
    kind: str,
    message: str,
) -> None:
    curve = tmp_path / "curve.csv"
    args = bad_input(kind, scene, tmp_path)
    result = run("--model", str(model.path), *args, "--curve", str(curve))
    assert result.exit_code == 1
    assert "Traceback" not in result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and message in lines[0], result.output
    assert not curve.exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--roads", "{lines}"], "give --data"),
        (["a.tif", "b.tif", "--data", "{image}", "--roads", "{lines}"], "not both"),
        (["--data", "{image}", "--roads", "{lines}", "--split", "test"], "--split"),
        (["--data", "{image}", "--roads", "{lines}", "--road-value", "1"], "--road-value"),
        (["--data", "{image}", "--half", "lower"], "--half goes with --roads"),
        (["--data", "{image}", "--aoi", "{lines}"], "--aoi goes with --roads"),
        (["--data", "{image}"], "not a dataset folder"),
        (["--data", "{dir}", "--gsd", "0.5"], "--gsd goes with"),
        (["--data", "{image}", "--roads", "{lines}", "--half", "top"], "'top' is not one of"),
    ],
)
def test_usage_errors(scene: tuple[Path, Path, Path], args: list[str], message: str) -> None:
    image, _, lines = scene
    values = {"image": str(image), "lines": str(lines), "dir": str(image.parent)}
    result = run(*(a.format(**values) for a in args))
    assert result.exit_code == 2, result.output
    assert message in result.output and "Traceback" not in result.output


def test_choose_mode_with_a_road_layer(tmp_path: Path) -> None:
    import click

    from roadseg.cli.evaluate import Mode, choose_mode

    assert choose_mode(None, None, "o.tif", None, None, None, "r.gpkg") is Mode.ROADS
    assert choose_mode(None, None, "t/*.tif", "m.keras", None, None, "r.gpkg") is Mode.ROADS
    assert choose_mode(None, None, str(tmp_path), None, None, None) is Mode.DATASET
    with pytest.raises(click.UsageError):
        choose_mode(None, None, None, None, None, None, "r.gpkg")


def test_half_names_match_the_library() -> None:
    from roadseg.cli.options import HALF_NAMES
    from roadseg.data.aoi_split import HALVES

    assert HALF_NAMES == HALVES


def test_rasters_are_pooled_and_read_at_the_models_gsd(
    scene: tuple[Path, Path, Path], model: LoadedModel, tmp_path: Path
) -> None:
    image, _, lines = scene
    folder = tmp_path / "tiles"
    folder.mkdir()
    truth = burned_truth(image, lines)
    mask_as_image(truth, image, folder / "a.tif")
    mask_as_image(np.zeros_like(truth), image, folder / "b.tif")  # finds no road
    result = score(model, folder, lines, rho=0)
    a, b = (s.result.counts for s in result.rasters)
    assert [s.raster.name for s in result.rasters] == ["a.tif", "b.tif"]
    assert a.recall == 1.0 and b.recall == 0.0
    pooled = result.overall.counts
    assert pooled.tp == a.tp + b.tp and pooled.fn == a.fn + b.fn
    assert pooled.total == 2 * SIZE * SIZE

    # A model that works at 1 m reads the 0.5 m raster at half size (as predict does) and
    # writes back on its grid: every pixel is still scored, and the roads are still found.
    coarse = dataclasses.replace(model, info=dataclasses.replace(model.info, gsd=1.0))
    resampled = score(coarse, folder / "a.tif", lines).overall
    assert resampled.counts.total == SIZE * SIZE
    assert resampled.relaxed_recall > 0.95 and resampled.relaxed_precision > 0.95
    assert resampled.f1 < 1.0  # the edges went through the 1 m grid
