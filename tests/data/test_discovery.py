"""Discovery and splits (roadseg.data.discovery): bad folders, unmatched names, seeded splits."""

from __future__ import annotations

from pathlib import Path

import pytest
from data_helpers import make_pairs, save_png, scene

from roadseg.data import Sample, discover_pairs, scan_dataset, split_samples
from roadseg.errors import DatasetError


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


def test_seeded_split_is_reproducible_and_disjoint() -> None:
    samples = [Sample(Path(f"i{i}.png"), Path(f"m{i}.png")) for i in range(20)]
    a = split_samples(samples, val_fraction=0.2, seed=3)
    b = split_samples(samples, val_fraction=0.2, seed=3)
    assert a == b
    train, val, _, _ = a
    assert len(val) == 4 and set(train).isdisjoint(val)
    assert set(train) | set(val) == set(samples)


def test_discover_pairs_reports_layout_only_from_names(tmp_path: Path) -> None:
    make_pairs(tmp_path, n=2)
    layout, samples, notes, errors = discover_pairs(tmp_path)
    assert layout == "pairs" and len(samples) == 2 and errors == []
    assert all(s.size is None for s in samples)
