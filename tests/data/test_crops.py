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
