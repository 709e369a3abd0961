"""Tests for roadseg.synthetic's scenes in memory: determinism, exact windows, masks,
centerlines, and the committed sample."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import rasterio

from roadseg.synthetic import (
    Scene,
    SceneSpec,
    generate_scene,
    render_window,
    road_fraction,
    scene_transform,
)

H, W = 320, 384  # small, not square, not a multiple of the render block


@pytest.fixture(scope="module")
def scene() -> Scene:
    return generate_scene(H, W, SceneSpec(seed=5))


def test_shapes_and_dtypes(scene: Scene) -> None:
    assert scene.image.shape == (H, W, 3)
    assert scene.image.dtype == np.uint8
    assert scene.mask.shape == (H, W)
    assert scene.mask.dtype == np.uint8
    assert len(scene.centerlines) == len(scene.widths) > 0
    assert all(3.0 <= w <= 20.0 for w in scene.widths)


def test_same_seed_same_scene(scene: Scene) -> None:
    again = generate_scene(H, W, SceneSpec(seed=5))
    np.testing.assert_array_equal(again.image, scene.image)
    np.testing.assert_array_equal(again.mask, scene.mask)
    assert [c.wkb for c in again.centerlines] == [c.wkb for c in scene.centerlines]


def test_different_seed_different_scene(scene: Scene) -> None:
    other = generate_scene(H, W, SceneSpec(seed=6))
    assert not np.array_equal(other.image, scene.image)
    assert not np.array_equal(other.mask, scene.mask)


def test_georeferencing_does_not_change_pixels(scene: Scene) -> None:
    moved = generate_scene(H, W, SceneSpec(seed=5, gsd=2.0, origin=(0.0, 0.0), crs="EPSG:3857"))
    np.testing.assert_array_equal(moved.image, scene.image)


def test_windows_equal_slices_of_the_whole(scene: Scene) -> None:
    rng = np.random.default_rng(0)
    windows = [
        (0, 0, 1, 1),
        (H - 1, W - 1, 1, 1),
        (0, 0, H, W),
        (0, W - 37, 50, 37),
        (H - 13, 0, 13, W),
        (100, 0, 1, W),
    ]
    for _ in range(8):
        h, w = int(rng.integers(1, 160)), int(rng.integers(1, 160))
        windows.append((int(rng.integers(0, H - h + 1)), int(rng.integers(0, W - w + 1)), h, w))
    for r, c, h, w in windows:
        image, mask = render_window(H, W, SceneSpec(seed=5), r, c, h, w)
        np.testing.assert_array_equal(image, scene.image[r : r + h, c : c + w], err_msg=str((r, c)))
        np.testing.assert_array_equal(mask, scene.mask[r : r + h, c : c + w], err_msg=str((r, c)))


def test_window_outside_the_scene_is_refused() -> None:
    with pytest.raises(ValueError, match="inside"):
        render_window(H, W, SceneSpec(), H - 10, 0, 20, 20)
    with pytest.raises(ValueError, match="inside"):
        render_window(H, W, SceneSpec(), 0, -1, 5, 5)


def test_mask_is_binary_and_road_share_sane(scene: Scene) -> None:
    assert set(np.unique(scene.mask).tolist()) <= {0, 1}
    for seed in (0, 1, 2, 3):
        frac = generate_scene(256, 256, SceneSpec(seed=seed)).mask.mean()
        assert 0.01 < frac < 0.35, (seed, frac)
    assert 0.03 < road_fraction(1024, 1024, SceneSpec(seed=1)) < 0.2


def test_centerlines_lie_on_road_pixels(scene: Scene) -> None:
    on = total = 0
    for line in scene.centerlines:
        assert line.is_valid and line.length > 0
        for d in np.arange(0.0, line.length, 2.0):
            x, y = line.interpolate(d).coords[0]
            col, row = min(int(x), W - 1), min(int(y), H - 1)
            assert 0 <= col < W and 0 <= row < H
            on += int(scene.mask[row, col])
            total += 1
    # Every sample is inside its road's surface; allow nothing but float ties.
    assert on == total


def test_mask_has_roads_with_their_widths(scene: Scene) -> None:
    # The widest road's centre point sits at least half its width inside the mask.
    from scipy.ndimage import distance_transform_edt

    inside = distance_transform_edt(scene.mask)
    k = int(np.argmax(scene.widths))
    line = scene.centerlines[k]
    x, y = line.interpolate(0.5, normalized=True).coords[0]
    assert inside[int(y), int(x)] >= scene.widths[k] / 2 - 1.5


def test_committed_sample_matches_the_generator() -> None:
    """sample_data/ is what its README's command writes (regenerate it after changing
    the generator)."""
    folder = Path(__file__).resolve().parents[2] / "sample_data"
    if not (folder / "sample.tif").exists():
        pytest.skip("sample_data/sample.tif not present")
    image, mask = render_window(512, 640, SceneSpec(seed=7), 0, 0, 512, 640)
    with rasterio.open(folder / "sample.tif") as src:
        assert src.transform == scene_transform(SceneSpec(seed=7))
        stored = np.moveaxis(src.read(), 0, -1)
    with rasterio.open(folder / "sample_mask.tif") as src:
        stored_mask = src.read(1)
    # Bit-identical on the machine that wrote it; a platform whose libm rounds a
    # sine differently may move a few edge pixels, no more.
    assert np.mean(stored_mask == mask * 255) > 0.999
    assert np.mean(np.all(stored == image, axis=-1)) > 0.99
