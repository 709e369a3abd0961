"""Road layers as labels: burning, reprojection, widths, the spatial split, bad input."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import rasterio
from rasterio.windows import Window
from scipy import ndimage

from roadseg.data.aoi_split import half_window, pick_window
from roadseg.data.masks import shapes_mask
from roadseg.data.road_data import list_rasters, scan_road_dataset
from roadseg.data.roads import WidthRule, load_width_table, read_road_layer
from roadseg.synthetic import write_scene
from roadseg.vector_io import read_lines, reproject_lines, write_lines


@pytest.fixture(scope="module")
def scene(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    out = tmp_path_factory.mktemp("scene")
    paths = write_scene(out, 256, 256, name="s")
    return paths.image, paths.mask, paths.centerlines


def burned(image: Path, roads: Path, **kw: object) -> np.ndarray:
    ds = scan_road_dataset(image, roads, tile_size=32, block_m=32, **kw)  # type: ignore[arg-type]
    scene = ds.scenes[image]
    return shapes_mask(scene.shapes)(Window(0, 0, *scene.size))


def test_burned_lines_equal_the_scenes_own_mask_within_one_pixel(scene: tuple) -> None:
    image, mask_path, lines = scene
    mask = burned(image, lines, rule=WidthRule(field="width_m"))
    with rasterio.open(mask_path) as src:
        truth = src.read(1) > 127
    # Tolerance: pixels within 1 px of the true mask's edge may differ (the scene
    # anti-aliases and rounds its band edges); everywhere else the masks agree.
    border = ndimage.binary_dilation(truth) & ~ndimage.binary_erosion(truth)
    differ = (mask > 0) != truth
    assert truth.sum() > 500
    assert not (differ & ~border).any(), int((differ & ~border).sum())


def test_lines_in_lonlat_and_in_the_rasters_utm_burn_alike(scene: tuple, tmp_path: Path) -> None:
    image, _, lines = scene
    with rasterio.open(image) as src:
        crs = src.crs
    doc = json.loads(lines.read_text())
    read = read_lines(lines)
    utm = reproject_lines(list(read.lines), read.crs, crs)
    widths = [f["properties"]["width_m"] for f in doc["features"]]
    gpkg = write_lines(tmp_path / "utm.gpkg", utm, {"width_m": widths}, crs)
    rule = WidthRule(field="width_m")
    a = burned(image, lines, rule=rule)
    b = burned(image, gpkg, rule=rule)
    assert a.sum() > 0 and int((a != b).sum()) <= 0.002 * a.size


def test_spatial_split_never_shares_a_pixel(scene: tuple) -> None:
    image, _, lines = scene
    ds = scan_road_dataset(image, lines, tile_size=32, block_m=32, val_fraction=0.3, seed=3)
    assert "256x256 px, uint8;" in ds.report.summary()  # the Data: line of train
    sc = ds.scenes[image]
    rng = np.random.default_rng(0)
    seen = {s: np.zeros((256, 256), bool) for s in ("train", "val")}
    for split in seen:
        blocks = [b for b in sc.blocks if b.split == split]
        assert blocks
        for side in (32, 40, 26) * 100:
            w = pick_window(blocks, sc.area, 32, side, ds.stride, rng)
            r, c = int(w.row_off), int(w.col_off)
            seen[split][r : r + int(w.height), c : c + int(w.width)] = True
    assert seen["train"].any() and seen["val"].any()
    assert not (seen["train"] & seen["val"]).any()


def test_osm_width_table_and_overrides(tmp_path: Path) -> None:
    table = load_width_table(None)
    assert table["motorway"] == 20 and table["residential"] == 8 and table["track"] == 3
    assert table["footway"] == 0 and table["path"] == 0
    (tmp_path / "w.json").write_text('{"motorway": 24, "footway": 2}')
    assert load_width_table(tmp_path / "w.json")["footway"] == 2
    (tmp_path / "w.csv").write_text("highway,width_m\nresidential,6\ntrack,off\n")
    t = load_width_table(tmp_path / "w.csv")
    assert t["residential"] == 6 and t["track"] == 0


def write_layer(path: Path, geoms: list, props: list, crs: str | None = "EPSG:4326") -> Path:
    doc: dict = {"type": "FeatureCollection", "features": []}
    if crs and crs != "EPSG:4326":
        doc["crs"] = {"type": "name", "properties": {"name": crs}}
    for g, p in zip(geoms, props, strict=True):
        doc["features"].append({"type": "Feature", "geometry": g, "properties": p})
    path.write_text(json.dumps(doc))
    return path


def test_highway_tags_choose_widths(tmp_path: Path) -> None:
    line = {"type": "LineString", "coordinates": [[15, 49.6], [15.001, 49.6]]}
    lyr = write_layer(
        tmp_path / "osm.geojson",
        [line] * 3,
        [{"highway": "motorway"}, {"highway": "footway"}, {"highway": "weird"}],
    )
    layer = read_road_layer(lyr)
    assert layer.widths == (20.0, 0.0, 4.0)
    assert layer.drawn == [0, 2]
    assert any("weird" in n for n in layer.notes)


def test_bad_layers_say_what_to_do(scene: tuple, tmp_path: Path) -> None:
    image, _, lines = scene
    pt = {"type": "Point", "coordinates": [15, 49.6]}
    points = write_layer(tmp_path / "p.geojson", [pt], [{}])
    assert "not points" in read_road_layer(points).problems[0]
    empty = write_layer(tmp_path / "e.geojson", [], [])
    assert "has no features" in read_road_layer(empty).problems[0]
    missing = read_road_layer(lines, rule=WidthRule(field="lanes"))
    assert "no attribute 'lanes'" in missing.problems[0] and "width_m" in missing.problems[0]
    line = {"type": "LineString", "coordinates": [[15, 49.6], [15.001, 49.6]]}
    text = write_layer(tmp_path / "t.geojson", [line], [{"w": "wide"}])
    assert "not a positive number" in read_road_layer(text, rule=WidthRule(field="w")).problems[0]
    nocrs = write_lines(tmp_path / "n.gpkg", [read_lines(lines).lines[0]], {}, None)
    assert "has no CRS" in read_road_layer(nocrs).problems[0]
    far = write_layer(tmp_path / "far.geojson", [line], [{}])  # lon 15: far from the scene
    ds = scan_road_dataset(image, far, tile_size=32, block_m=32)
    assert any("no roads of far.geojson lie inside" in e for e in ds.report.errors)


def test_a_raster_without_georeferencing_is_a_problem(scene: tuple, tmp_path: Path) -> None:
    _, _, lines = scene
    plain = tmp_path / "plain.tif"
    with rasterio.open(
        plain, "w", driver="GTiff", width=64, height=64, count=3, dtype="uint8"
    ) as dst:
        dst.write(np.zeros((3, 64, 64), np.uint8))
    ds = scan_road_dataset(plain, lines, tile_size=32, block_m=32)
    assert any("no georeferencing" in e for e in ds.report.errors)


def test_data_forms(scene: tuple, tmp_path: Path) -> None:
    image, _, _ = scene
    assert list_rasters(image) == [image]
    assert list_rasters(image.parent) == [image]  # the _mask raster is left out
    assert list_rasters(str(image.parent / "*.tif")) == sorted(image.parent.glob("*.tif"))
    (tmp_path / "l.txt").write_text(f"# rasters\n{image}\n")
    assert list_rasters(f"@{tmp_path / 'l.txt'}") == [image]


@pytest.mark.parametrize(("width", "height"), [(64, 64), (65, 63), (7, 9)])
def test_halves_of_a_raster_share_no_pixel_and_cover_it(width: int, height: int) -> None:
    for pair in (("upper", "lower"), ("left", "right")):
        seen = np.zeros((height, width), np.int64)
        for half in pair:
            w = half_window(width, height, half)
            seen[w.toslices()] += 1
        assert (seen == 1).all(), pair
    with pytest.raises(ValueError, match="upper, lower, left, right"):
        half_window(8, 8, "top")


def test_a_half_limits_the_area_and_every_crop(scene: tuple) -> None:
    image, _, lines = scene
    ds = scan_road_dataset(image, lines, tile_size=32, block_m=32, half="lower")
    sc = ds.scenes[image]
    assert sc.area.bounds == (0.0, 128.0, 256.0, 256.0)
    rows = [r for b in sc.blocks for _, r in b.positions]
    assert rows and min(rows) >= 128
    assert not ds.report.errors
