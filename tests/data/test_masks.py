"""Mask decoding (roadseg.data.masks): threshold, colour, value and palette rules."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from data_helpers import ROAD, save_png, scene

from roadseg.data import LabelRule, MaskDecoder, decode_mask, scan_dataset


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
