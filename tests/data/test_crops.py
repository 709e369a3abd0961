"""Crops (roadseg.data.crops): failing files skipped, fixed validation crops, padding."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest
from data_helpers import make_pairs

from roadseg.data import CropReader, CropSpec, SkipLog, crop_stream, scan_dataset
from roadseg.errors import DatasetError


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


def _striped_geotiff(folder: Path, gsd: float) -> None:
    """A 256 px georeferenced image at ``gsd`` with a 16 px wide vertical road."""
    import rasterio
    from affine import Affine

    folder.mkdir(parents=True, exist_ok=True)
    image = np.full((3, 256, 256), 40, np.uint8)
    mask = np.zeros((1, 256, 256), np.uint8)
    image[:, :, 120:136] = 220
    mask[:, :, 120:136] = 255
    for name, arr in (("a.tif", image), ("a_mask.tif", mask)):
        with rasterio.open(
            folder / name,
            "w",
            driver="GTiff",
            width=256,
            height=256,
            count=arr.shape[0],
            dtype="uint8",
            crs="EPSG:32633",
            transform=Affine(gsd, 0, 5e5, 0, -gsd, 5.5e6),
        ) as dst:
            dst.write(arr)


def test_crops_are_read_at_a_gsd_of_the_range(tmp_path: Path) -> None:
    """A 0.5 m image read at exactly 1 m (range 1..1): the 16 px road is 8 px wide;
    validation crops are read at val_gsd."""
    _striped_geotiff(tmp_path / "d", 0.5)
    report = scan_dataset(tmp_path / "d", tile_size=64)
    sample = (report.train + report.val)[0]
    spec = CropSpec(
        tile_size=64,
        decoder=report.decoder,
        augment=None,
        road_focus=0.0,
        gsd_range=(1.0, 1.0),
        val_gsd=0.25,
    )
    reader = CropReader(spec)
    widths = set()
    for _image, mask in reader.read(sample, np.random.default_rng(1), train=True, n=20):
        cols = np.flatnonzero(mask.max(axis=0))
        if len(cols) and 0 < cols[0] and cols[-1] < 63:
            widths.add(len(cols))
    assert widths == {8}
    _, mask = reader.read(sample, np.random.default_rng(2), train=False, n=1)[0]
    assert set(mask.sum(axis=0).tolist()) <= {0, 64}
    assert int(mask.max(axis=0).sum()) in (0, 32)  # 16 px at 0.5 m = 32 px at 0.25 m


def test_a_gsd_range_needs_a_known_gsd(tmp_path: Path) -> None:
    make_pairs(tmp_path, n=2)  # PNGs: no georeferencing
    report = scan_dataset(tmp_path, tile_size=32)
    reader = CropReader(CropSpec(tile_size=32, decoder=report.decoder, gsd_range=(0.3, 1.2)))
    with pytest.raises(DatasetError, match="no georeferencing.*--gsd"):
        reader.read(report.train[0], np.random.default_rng(0), n=1)
    spec = CropSpec(tile_size=32, decoder=report.decoder, gsd_range=(0.3, 1.2), gsd=0.5)
    image, _ = CropReader(spec).read(report.train[0], np.random.default_rng(0), n=1)[0]
    assert image.shape == (32, 32, 3)


def test_percentile_normalization_stretches_uint8(tmp_path: Path) -> None:
    """The same scene, dim and low-contrast or bright, gives nearly the same crop
    under normalization="percentile" (and different ones under "auto")."""
    make_pairs(tmp_path / "a", n=1, size=64)
    report = scan_dataset(tmp_path / "a", tile_size=64)
    sample = report.train[0] if report.train else report.val[0]
    from PIL import Image

    original = np.asarray(Image.open(sample.image)).astype(np.float32)
    dim = (original * 0.4 + 20).astype(np.uint8)
    (tmp_path / "b").mkdir()
    Image.fromarray(dim).save(tmp_path / "b" / sample.image.name)
    dim_sample = type(sample)(image=tmp_path / "b" / sample.image.name, label=sample.label)
    out = {}
    for method in ("auto", "percentile"):
        reader = CropReader(
            CropSpec(
                tile_size=64,
                decoder=report.decoder,
                augment=None,
                road_focus=0.0,
                normalization=method,
            )
        )
        a = reader.read(sample, np.random.default_rng(0), train=False, n=1)[0][0]
        b = reader.read(dim_sample, np.random.default_rng(0), train=False, n=1)[0][0]
        out[method] = float(np.abs(a - b).mean())
    assert out["percentile"] < 0.02 < out["auto"]
