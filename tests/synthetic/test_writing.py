"""Tests for roadseg.synthetic's files: GeoTIFFs, GeoJSON, threads and overwriting."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import rasterio
from affine import Affine
from rasterio.crs import CRS

from roadseg.errors import OutputError
from roadseg.synthetic import Scene, SceneSpec, generate_scene, scene_transform, write_scene

H, W = 320, 384  # small, not square, not a multiple of the render block


@pytest.fixture(scope="module")
def scene() -> Scene:
    return generate_scene(H, W, SceneSpec(seed=5))


def test_scene_transform() -> None:
    spec = SceneSpec(gsd=0.25, origin=(1000.0, 2000.0))
    assert scene_transform(spec) == Affine(0.25, 0, 1000.0, 0, -0.25, 2000.0)


def test_write_scene(tmp_path: Path, scene: Scene) -> None:
    spec = SceneSpec(seed=5, crs="EPSG:32633", gsd=0.5, origin=(500000.0, 5500000.0))
    paths = write_scene(tmp_path / "out", H, W, spec, name="s", block=128)
    assert paths.image == tmp_path / "out" / "s.tif"
    with rasterio.open(paths.image) as src:
        assert (src.height, src.width, src.count) == (H, W, 3)
        assert src.crs == CRS.from_epsg(32633)
        assert src.transform == Affine(0.5, 0, 500000.0, 0, -0.5, 5500000.0)
        assert src.profile["tiled"] and src.block_shapes[0] == (256, 256)
        assert src.compression.value.lower() == "deflate"
        np.testing.assert_array_equal(np.moveaxis(src.read(), 0, -1), scene.image)
    with rasterio.open(paths.mask) as src:
        assert (src.height, src.width, src.count) == (H, W, 1)
        assert src.nodata is None
        assert src.transform == Affine(0.5, 0, 500000.0, 0, -0.5, 5500000.0)
        mask = src.read(1)
        assert set(np.unique(mask).tolist()) == {0, 255}
        np.testing.assert_array_equal(mask == 255, scene.mask == 1)
    doc = json.loads(paths.centerlines.read_text())
    assert doc["type"] == "FeatureCollection"
    assert len(doc["features"]) == len(scene.centerlines)
    for feat, width in zip(doc["features"], scene.widths, strict=True):
        assert feat["geometry"]["type"] == "LineString"
        assert feat["properties"]["width_m"] == pytest.approx(width * 0.5, abs=1e-3)
        lon, lat = np.array(feat["geometry"]["coordinates"]).T
        # UTM 33N around x=500 km, y=5500 km is near 15 E, 49.6 N.
        assert np.all((lon > 14.9) & (lon < 15.1)) and np.all((lat > 49.5) & (lat < 49.7))
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [
        "s.tif",
        "s_centerlines.geojson",
        "s_mask.tif",
    ]


def test_write_scene_threads_match_and_overwrite(tmp_path: Path) -> None:
    spec = SceneSpec(seed=9)
    one = write_scene(tmp_path, 200, 150, spec, name="a", block=64)
    two = write_scene(tmp_path, 200, 150, spec, name="b", block=64, workers=2)
    for p, q in ((one.image, two.image), (one.mask, two.mask)):
        with rasterio.open(p) as a, rasterio.open(q) as b:
            np.testing.assert_array_equal(a.read(), b.read())
    with pytest.raises(OutputError, match="exists"):
        write_scene(tmp_path, 200, 150, spec, name="a", overwrite=False)
    write_scene(tmp_path, 200, 150, spec, name="a")  # replaces by default
