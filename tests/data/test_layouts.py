"""Dataset layouts (roadseg.data.layouts): each one found from its file names, paired right."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import rasterio
from affine import Affine
from data_helpers import ROAD, colour_mask, save_jpg, save_png, scene
from PIL import Image

from roadseg.data import CropReader, CropSpec, LabelRule, scan_dataset
from roadseg.preprocess import compute_normalizer


def test_deepglobe_layout_skips_unlabelled_splits(tmp_path: Path) -> None:
    for i in range(5):
        image, mask = scene(64, i)
        save_jpg(tmp_path / "train" / f"{100 + i}_sat.jpg", image)
        save_png(tmp_path / "train" / f"{100 + i}_mask.png", np.stack([mask * 255] * 3, -1))
        save_jpg(tmp_path / "valid" / f"{200 + i}_sat.jpg", image)
    report = scan_dataset(tmp_path, tile_size=32)
    assert report.layout == "deepglobe"
    assert report.errors == ()
    assert len(report.train) + len(report.val) == 5
    assert len(report.val) >= 1 and "seeded" in report.split_method
    assert report.decoder.kind == "threshold" and report.decoder.threshold == 128
    assert any("valid/" in note and "unlabelled" in note for note in report.notes)
    pair = report.train[0]
    assert pair.label.name == pair.image.name.replace("_sat.jpg", "_mask.png")


def test_massachusetts_sat_map_layout_uses_its_splits(
    tmp_path: Path, make_geotiff: Callable[..., Path]
) -> None:
    for split, n in (("train", 3), ("valid", 2), ("test", 1)):
        (tmp_path / split / "sat").mkdir(parents=True)
        (tmp_path / split / "map").mkdir(parents=True)
        for i in range(n):
            image, mask = scene(64, i)
            make_geotiff(np.moveaxis(image, -1, 0), name=f"{split}/sat/{split}{i}_15.tiff")
            make_geotiff(mask * 255, name=f"{split}/map/{split}{i}_15.tif")
    report = scan_dataset(tmp_path, tile_size=32)
    assert report.layout == "massachusetts"
    assert (len(report.train), len(report.val), len(report.test)) == (3, 2, 1)
    assert report.split_method == "the layout's own validation split"
    assert all(s.image.suffix == ".tiff" and s.label.suffix == ".tif" for s in report.train)
    assert report.gsd == pytest.approx(0.5, rel=1e-3)  # ground metres (UTM scale factor)
    assert report.gsd_source == "georeferencing"


def test_massachusetts_mirror_layout(tmp_path: Path, make_geotiff: Callable[..., Path]) -> None:
    for split in ("train", "val", "test"):
        (tmp_path / split).mkdir()
        (tmp_path / f"{split}_labels").mkdir()
        for i in range(2):
            image, mask = scene(48, i)
            make_geotiff(np.moveaxis(image, -1, 0), name=f"{split}/m{i}.tiff")
            make_geotiff(mask * 255, name=f"{split}_labels/m{i}.tif")
    report = scan_dataset(tmp_path, tile_size=32)
    assert report.layout == "massachusetts"
    assert (len(report.train), len(report.val), len(report.test)) == (2, 2, 2)
    assert {s.split for s in report.val} == {"val"}


def _spacenet_chip(root: Path, make_geotiff: Callable[..., Path], n: int, size: int = 64) -> None:
    """SpaceNet 3 chips: uint16 PS-RGB in EPSG:4326 and a LineString across the middle row."""
    lon0, lat0, step = -115.3, 36.2, 2.7e-6
    (root / "AOI_2_Vegas" / "PS-RGB").mkdir(parents=True)
    (root / "AOI_2_Vegas" / "geojson_roads").mkdir(parents=True)
    (root / "AOI_2_Vegas" / "PS-MS").mkdir(parents=True)
    for i in range(1, n + 1):
        data = np.random.default_rng(i).integers(100, 2000, (3, size, size)).astype(np.uint16)
        transform = Affine(step, 0, lon0, 0, -step, lat0)
        make_geotiff(
            data,
            name=f"AOI_2_Vegas/PS-RGB/SN3_roads_train_AOI_2_Vegas_PS-RGB_img{i}.tif",
            crs="EPSG:4326",
            transform=transform,
        )
        make_geotiff(
            np.concatenate([data, data]),
            name=f"AOI_2_Vegas/PS-MS/SN3_roads_train_AOI_2_Vegas_PS-MS_img{i}.tif",
            crs="EPSG:4326",
            transform=transform,
        )
        lat = lat0 - step * (size / 2)  # the middle row's top edge
        line = {
            "type": "Feature",
            "properties": {"road_type": "5"},
            "geometry": {
                "type": "LineString",
                "coordinates": [[lon0 - step, lat], [lon0 + step * (size + 1), lat]],
            },
        }
        features = [line] if i != n else []  # the last chip has no road
        path = root / "AOI_2_Vegas" / "geojson_roads"
        name = f"SN3_roads_train_AOI_2_Vegas_geojson_roads_img{i}.geojson"
        (path / name).write_text(json.dumps({"type": "FeatureCollection", "features": features}))


def test_spacenet_layout_rasterises_roads_in_metres(
    tmp_path: Path, make_geotiff: Callable[..., Path]
) -> None:
    _spacenet_chip(tmp_path, make_geotiff, n=3)
    report = scan_dataset(tmp_path, rule=LabelRule(road_width_m=4.0), tile_size=64)
    assert report.layout == "spacenet"
    assert report.errors == ()
    pairs = sorted(report.train + report.val, key=lambda s: s.image.name)
    assert len(pairs) == 3
    assert all("PS-RGB" in str(s.image) and s.is_vector for s in pairs)
    # x: 2.7e-6 deg * 111320 m * cos(36.2 deg) = 0.243 m; y: 2.7e-6 * 110574 m = 0.299 m
    assert report.gsd == pytest.approx((0.2426 + 0.2986) / 2, rel=0.01)

    reader = CropReader(CropSpec(tile_size=64, decoder=report.decoder, augment=None))
    image, mask = reader.read(pairs[0], np.random.default_rng(0), train=False)[0]
    rows = np.flatnonzero(mask.any(axis=1))
    # 4 m across 2.7e-6 deg of latitude (0.2986 m) is about 13.4 rows, centred on row 32.
    assert 12 <= len(rows) <= 15
    assert abs(rows.mean() - 32) <= 1
    assert mask[rows].all()
    # 16-bit imagery is stretched like predict does it, per image.
    with rasterio.open(pairs[0].image) as src:
        norm = compute_normalizer(src, (1, 2, 3), "auto")
        expected = norm(np.moveaxis(src.read(), 0, -1))
    np.testing.assert_allclose(image, expected, atol=1e-6)
    # A chip whose GeoJSON has no roads is a valid negative.
    _, empty = reader.read(pairs[-1], np.random.default_rng(0), train=False)[0]
    assert empty.sum() == 0


def test_nested_tiles_with_spaces_colour_and_palette_masks(tmp_path: Path) -> None:
    base = tmp_path / "Semantic segmentation dataset"
    for t in range(1, 5):
        for k in range(1, 4):
            image, mask = scene(64, 10 * t + k)
            tile = base / f"Tile {t}"
            save_jpg(tile / "images" / f"image_part_00{k}.jpg", image)
            colours = colour_mask(mask)
            if t == 2:  # a palette PNG, as two of the Dubai Tiles are
                pal = Image.fromarray(colours).quantize(colors=4, method=Image.Quantize.FASTOCTREE)
                pal.save(_mkdir(tile / "masks") / f"image_part_00{k}.png")
            else:
                save_png(tile / "masks" / f"image_part_00{k}.png", colours)

    unclear = scan_dataset(tmp_path, tile_size=32)
    assert unclear.layout == "pairs"
    assert any("--road-color" in e and "110,193,228" in e for e in unclear.errors)

    report = scan_dataset(
        tmp_path, rule=LabelRule(road_color=ROAD), tile_size=32, val_fraction=0.25
    )
    assert report.errors == ()
    assert len(report.train) + len(report.val) == 12
    val_groups = {s.group for s in report.val}
    assert len(val_groups) == 1 and val_groups.isdisjoint({s.group for s in report.train})
    assert "by folder" in report.split_method
    assert 0.05 < (report.road_fraction or 0) < 0.3

    reader = CropReader(CropSpec(tile_size=64, decoder=report.decoder, augment=None))
    for s in report.train + report.val:
        _, mask = reader.read(s, np.random.default_rng(0), train=False)[0]
        truth = scene(64, int(s.group.split()[-1]) * 10 + int(s.image.stem[-1]))[1]
        np.testing.assert_array_equal(mask, truth, err_msg=str(s.image))


def _mkdir(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    return path


def test_plain_pairs_with_own_splits_and_mask_suffix(tmp_path: Path) -> None:
    for split in ("train", "val"):
        for i in range(2):
            image, mask = scene(48, i)
            save_png(tmp_path / "images" / split / f"a{i}.png", image)
            save_png(tmp_path / "masks" / split / f"a{i}_mask.png", mask)  # 0/1
    report = scan_dataset(tmp_path, tile_size=32)
    assert report.layout == "pairs"
    assert (len(report.train), len(report.val)) == (2, 2)
    assert report.decoder.kind == "threshold" and report.decoder.threshold == 1


def test_side_by_side_pairs(tmp_path: Path, make_geotiff: Callable[..., Path]) -> None:
    for i in range(3):
        image, mask = scene(48, i)
        make_geotiff(np.moveaxis(image, -1, 0), name=f"scene{i}.tif")
        make_geotiff(mask * 255, name=f"scene{i}_mask.tif")
    (tmp_path / "scene0_centerlines.geojson").write_text("{}")
    (tmp_path / "unlabelled").mkdir()
    make_geotiff(scene(48, 9)[0][..., 0], name="unlabelled/extra.tif")
    report = scan_dataset(tmp_path, tile_size=32)
    assert report.layout == "flat" and report.errors == ()
    assert len(report.train) + len(report.val) == 3
    assert all(s.label.name == s.image.stem + "_mask.tif" for s in report.train)
    assert any("unlabelled" in note for note in report.notes)
