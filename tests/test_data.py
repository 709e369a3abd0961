"""Dataset discovery, mask decoding, crops and augmentation (roadseg.data)."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import rasterio
from affine import Affine
from conftest import shared
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from roadseg.data import (
    AugmentConfig,
    CropReader,
    CropSpec,
    LabelRule,
    MaskDecoder,
    Sample,
    SkipLog,
    augment,
    crop_stream,
    decode_mask,
    discover_pairs,
    resize_square,
    scan_dataset,
    split_samples,
)
from roadseg.errors import DatasetError
from roadseg.preprocess import compute_normalizer

ROAD = (110, 193, 228)
LAND = (132, 41, 246)


def scene(size: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """A dark noisy (size, size, 3) uint8 image with bright straight roads, and its 0/1 mask."""
    rng = np.random.default_rng(seed)
    image = rng.normal(70, 15, (size, size, 3)).clip(0, 255)
    mask = np.zeros((size, size), np.uint8)
    r = int(rng.integers(4, size - 8))
    c = int(rng.integers(4, size - 8))
    mask[r : r + 4] = 1
    mask[:, c : c + 4] = 1
    image[mask > 0] = (210, 205, 195)
    return image.astype(np.uint8), mask


def save_png(path: Path, array: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path)
    return path


def save_jpg(path: Path, array: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path, quality=95)
    return path


def make_pairs(root: Path, n: int = 4, size: int = 64, mask_scale: int = 255) -> Path:
    """images/ + masks/ PNG pairs."""
    for i in range(n):
        image, mask = scene(size, i)
        save_png(root / "images" / f"p{i}.png", image)
        save_png(root / "masks" / f"p{i}.png", mask * mask_scale)
    return root


def colour_mask(mask: np.ndarray) -> np.ndarray:
    out = np.empty(mask.shape + (3,), np.uint8)
    out[...] = LAND
    out[mask > 0] = ROAD
    out[:3, :3] = (60, 16, 152)  # a third class
    return out


# ---------------------------------------------------------------------------------------------
# Layout detection
# ---------------------------------------------------------------------------------------------


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


def test_index_masks_need_a_road_value(tmp_path: Path) -> None:
    for i in range(3):
        image, mask = scene(48, i)
        classes = (mask * 2 + (np.arange(48)[None, :] > 30)).astype(np.uint8)  # values 0..3
        save_png(tmp_path / "images" / f"x{i}.png", image)
        save_png(tmp_path / "masks" / f"x{i}.png", classes)
    report = scan_dataset(tmp_path, tile_size=32)
    assert any("--road-value" in e for e in report.errors)
    ok = scan_dataset(tmp_path, rule=LabelRule(road_value=2), tile_size=32)
    assert ok.errors == ()
    assert ok.decoder.kind == "value" and ok.decoder.value == 2


# ---------------------------------------------------------------------------------------------
# Bad data
# ---------------------------------------------------------------------------------------------


def test_missing_empty_and_unrecognised_folders(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="does not exist"):
        scan_dataset(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetError, match="is empty"):
        scan_dataset(tmp_path / "empty")
    (tmp_path / "misc").mkdir()
    (tmp_path / "misc" / "notes.txt").write_text("hello")
    save_png(tmp_path / "misc" / "photo.png", scene(32, 0)[0])
    with pytest.raises(DatasetError, match="no training data layout recognised.*images/"):
        scan_dataset(tmp_path / "misc")


def test_images_without_masks_are_listed(tmp_path: Path) -> None:
    make_pairs(tmp_path, n=2)
    for i in range(7):
        save_png(tmp_path / "images" / f"lonely{i}.png", scene(64, i)[0])
    report = scan_dataset(tmp_path, tile_size=32)
    (error,) = report.errors
    assert error.startswith("7 image(s) have no label: images/lonely0.png")
    assert error.endswith("and 2 more")
    with pytest.raises(DatasetError, match="7 image"):
        report.raise_for_errors()


def test_masks_with_unmatched_names(tmp_path: Path) -> None:
    for i in range(2):
        image, mask = scene(48, i)
        save_png(tmp_path / "images" / f"a{i}.png", image)
        save_png(tmp_path / "masks" / f"label-{i}.png", mask * 255)
    report = scan_dataset(tmp_path, tile_size=32)
    (error,) = report.errors
    assert "2 image(s) have no label: images/a0.png, images/a1.png" in error
    assert "needs its image's file name" in error


def test_masks_of_another_size_and_unreadable_files(tmp_path: Path) -> None:
    make_pairs(tmp_path, n=3)
    save_png(tmp_path / "masks" / "p1.png", np.zeros((32, 32), np.uint8))
    (tmp_path / "images" / "p2.png").write_bytes(b"not a png at all")
    report = scan_dataset(tmp_path, tile_size=32)
    text = " ".join(report.errors)
    assert "masks/p1.png is 32x32, its image 64x64" in text
    assert "cannot be read as rasters: images/p2.png" in text
    assert "PROBLEM" in report.describe()


def test_file_failing_mid_training_is_skipped_with_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    make_pairs(tmp_path, n=3)
    report = scan_dataset(tmp_path, tile_size=32)
    samples = report.train + report.val
    samples[0].image.write_bytes(b"corrupted after the scan")
    reader = CropReader(CropSpec(tile_size=32, decoder=report.decoder))
    skips = SkipLog()
    with caplog.at_level(logging.WARNING, logger="roadseg.data"):
        stream = crop_stream(samples, reader, seed=0, train=True, skips=skips)
        crops = [next(stream) for _ in range(30)]
    assert all(x.shape == (32, 32, 3) and y.shape == (32, 32, 1) for x, y in crops)
    assert skips.counts == {str(samples[0].image): 1}  # dropped after its first failure
    assert sum("skipping p0.png" in r.getMessage() for r in caplog.records) == 1

    for s in samples:
        s.image.write_bytes(b"broken")
    with pytest.raises(DatasetError, match="every file failed"):
        list(crop_stream(samples, reader, seed=0, train=True, skips=SkipLog()))


# ---------------------------------------------------------------------------------------------
# Splits, crops, decoding, augmentation
# ---------------------------------------------------------------------------------------------


def test_seeded_split_is_reproducible_and_disjoint() -> None:
    samples = [Sample(Path(f"i{i}.png"), Path(f"m{i}.png")) for i in range(20)]
    a = split_samples(samples, val_fraction=0.2, seed=3)
    b = split_samples(samples, val_fraction=0.2, seed=3)
    assert a == b
    train, val, _, _ = a
    assert len(val) == 4 and set(train).isdisjoint(val)
    assert set(train) | set(val) == set(samples)


def test_validation_crops_are_the_same_every_pass(tmp_path: Path) -> None:
    make_pairs(tmp_path, n=3)
    report = scan_dataset(tmp_path, tile_size=32)
    reader = CropReader(CropSpec(tile_size=32, decoder=report.decoder))
    samples = report.train + report.val
    first = list(crop_stream(samples, reader, seed=5, train=False, count=7))
    second = list(crop_stream(samples, reader, seed=5, train=False, count=7))
    assert len(first) == 7
    for (x1, y1), (x2, y2) in zip(first, second, strict=True):
        np.testing.assert_array_equal(x1, x2)
        np.testing.assert_array_equal(y1, y2)


def test_small_images_are_padded_to_the_crop(tmp_path: Path) -> None:
    make_pairs(tmp_path, n=2, size=24)
    report = scan_dataset(tmp_path, tile_size=32)
    assert any("smaller than the 32 px crop" in n for n in report.notes)
    reader = CropReader(CropSpec(tile_size=32, decoder=report.decoder))
    image, mask = reader.read(report.train[0], np.random.default_rng(0), n=1)[0]
    assert image.shape == (32, 32, 3) and mask.shape == (32, 32)


def test_decode_mask_rules() -> None:
    grey = np.array([[[0, 255], [128, 127]]], np.uint8)
    assert decode_mask(grey, MaskDecoder(threshold=128)).tolist() == [[0, 1], [1, 0]]
    assert decode_mask(grey, MaskDecoder(kind="value", value=127)).tolist() == [[0, 0], [0, 1]]
    rgb = np.zeros((3, 1, 2), np.uint8)
    rgb[:, 0, 1] = (112, 190, 228)  # within the colour tolerance of ROAD
    dec = MaskDecoder(kind="color", color=ROAD)
    assert decode_mask(rgb, dec).tolist() == [[0, 1]]
    lut = np.zeros((256, 3), np.uint8)
    lut[7] = ROAD
    palette = np.array([[[7, 3]]], np.uint8)
    assert decode_mask(palette, dec, lut).tolist() == [[1, 0]]


def test_resize_square() -> None:
    a = np.random.default_rng(0).random((40, 40, 3)).astype(np.float32)
    np.testing.assert_allclose(resize_square(a, 40), a, atol=1e-6)
    up = resize_square(a, 56)
    assert up.shape == (56, 56, 3) and up.dtype == np.float32
    assert a.min() - 1e-6 <= up.min() and up.max() <= a.max() + 1e-6
    m = (np.random.default_rng(1).random((40, 40)) > 0.5).astype(np.uint8)
    assert set(np.unique(resize_square(m, 32, nearest=True))) <= {0, 1}


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), size=st.sampled_from([8, 16, 24]))
def test_augment_keeps_image_and_mask_aligned(seed: int, size: int) -> None:
    rng = np.random.default_rng(seed)
    mask = (rng.random((size, size)) > 0.7).astype(np.uint8)
    image = np.repeat(mask[..., None].astype(np.float32), 3, axis=-1)
    geometric = AugmentConfig(scale=None, brightness=0, contrast=0, hue=0)
    out_image, out_mask = augment(image, mask, np.random.default_rng(seed), geometric)
    np.testing.assert_array_equal(out_image[..., 0], out_mask)
    assert out_mask.sum() == mask.sum()

    photo = rng.random((size, size, 3)).astype(np.float32)
    out_image, out_mask = augment(photo, mask, np.random.default_rng(seed), AugmentConfig())
    assert out_image.shape == photo.shape and out_image.dtype == np.float32
    assert 0.0 <= out_image.min() and out_image.max() <= 1.0
    assert set(np.unique(out_mask)) <= {0, 1}


def test_hue_rotation_leaves_grey_alone() -> None:
    grey = np.full((8, 8, 3), 0.4, np.float32)
    config = AugmentConfig(dihedral=False, scale=None, brightness=0, contrast=0, hue=0.5)
    out, _ = augment(grey, np.zeros((8, 8), np.uint8), np.random.default_rng(0), config)
    np.testing.assert_allclose(out, grey, atol=1e-5)


def test_discover_pairs_reports_layout_only_from_names(tmp_path: Path) -> None:
    make_pairs(tmp_path, n=2)
    layout, samples, notes, errors = discover_pairs(tmp_path)
    assert layout == "pairs" and len(samples) == 2 and errors == []
    assert all(s.size is None for s in samples)


# ---------------------------------------------------------------------------------------------
# The real Dubai set (../shared/data; skipped on a fresh clone)
# ---------------------------------------------------------------------------------------------


def test_dubai_needs_its_road_colour_and_splits_by_tile() -> None:
    root = shared("dubai")
    report = scan_dataset(root)
    assert report.layout == "pairs"
    assert any("(110,193,228)" in e for e in report.errors)
    report = scan_dataset(root, rule=LabelRule(road_color=ROAD))
    assert report.errors == ()
    assert len(report.train) + len(report.val) == 72
    assert len({s.group for s in report.val}) == 1
    assert 0.03 < (report.road_fraction or 0) < 0.2
    assert report.gsd is None
