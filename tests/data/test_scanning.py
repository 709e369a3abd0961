"""Scanning (roadseg.data.scanning): header problems in the report, and the real Dubai set."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from conftest import shared
from data_helpers import ROAD, make_pairs, save_png

from roadseg.data import LabelRule, scan_dataset


def test_masks_of_another_size_and_unreadable_files(tmp_path: Path) -> None:
    make_pairs(tmp_path, n=3)
    save_png(tmp_path / "masks" / "p1.png", np.zeros((32, 32), np.uint8))
    (tmp_path / "images" / "p2.png").write_bytes(b"not a png at all")
    report = scan_dataset(tmp_path, tile_size=32)
    text = " ".join(report.errors)
    assert "masks/p1.png is 32x32, its image 64x64" in text
    assert "cannot be read as rasters: images/p2.png" in text
    assert "PROBLEM" in report.describe()


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
