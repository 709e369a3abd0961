"""The streaming pipeline: geometry, blending and georeferencing.

An identity "model" (returns its first input band) makes the blending
exact to check: whatever the tiling, the output must reproduce the input.
"""

from __future__ import annotations

import dataclasses
import warnings
from pathlib import Path

import numpy as np
import pytest
import rasterio
from affine import Affine
from conftest import CUSTOM_WKT, shared
from rasterio.crs import CRS

from roadseg.encoding import PROB_NODATA, PROB_SCALE
from roadseg.errors import InvalidRasterError, OutputError, UnsupportedRasterError
from roadseg.model import LoadedModel, ModelInfo
from roadseg.predict import PredictOptions, predict_raster


class _FakeKeras:
    input_shape = (None, None, None, 3)


def fake_model(bands: int = 3, tile: int = 64) -> LoadedModel:
    return LoadedModel(
        model=_FakeKeras(),
        info=ModelInfo(bands=bands, tile_size=tile, threshold=0.5),
        path=Path("identity.keras"),
        sha256="0" * 64,
    )


def identity(batch: np.ndarray) -> np.ndarray:
    return batch[..., 0].copy()


def run(src: Path, out: Path, **kw) -> Path:
    opts = PredictOptions(**{"overlap": 16, "batch_size": 5, "as_float": True, **kw})
    predict_raster(src, out, fake_model(tile=kw.get("tile_size") or 64), opts, infer_fn=identity)
    return out


@pytest.mark.parametrize(("h", "w"), [(1, 1), (7, 13), (64, 64), (65, 130), (203, 97)])
@pytest.mark.parametrize("tile", [32, 64])
def test_identity_model_reproduces_input(make_geotiff, tmp_path, h, w, tile) -> None:
    rng = np.random.default_rng(h * w)
    data = rng.integers(0, 256, (3, h, w), dtype=np.uint8)
    src = make_geotiff(data)
    out = run(src, tmp_path / "out.tif", tile_size=tile)
    with rasterio.open(out) as ds:
        got = ds.read(1)
    np.testing.assert_allclose(got, data[0] / 255.0, atol=1e-5)


def test_uint8_output_scale_and_nodata(make_geotiff, tmp_path) -> None:
    data = np.full((3, 100, 90), 200, dtype=np.uint8)
    data[:, :10, :] = 0
    src = make_geotiff(data, nodata=0)
    out = run(src, tmp_path / "out.tif", as_float=False)
    with rasterio.open(out) as ds:
        got = ds.read(1)
        assert ds.nodata == PROB_NODATA
        assert ds.scales[0] == pytest.approx(1 / PROB_SCALE)
        assert ds.overviews(1) == [] or all(f > 1 for f in ds.overviews(1))
    assert np.all(got[:10] == PROB_NODATA)
    assert np.all(got[10:] == round(200 / 255 * PROB_SCALE))


def test_mask_and_preview(make_geotiff, tmp_path) -> None:
    data = np.zeros((3, 80, 80), dtype=np.uint8)
    data[0, :, 40:] = 255
    src = make_geotiff(data)
    out = run(
        src, tmp_path / "p.tif", mask_path=tmp_path / "m.tif", preview_path=tmp_path / "v.png"
    )
    with rasterio.open(tmp_path / "m.tif") as ds:
        mask = ds.read(1)
        assert ds.colormap(1)[1][:3] != (0, 0, 0)
    assert set(np.unique(mask)) <= {0, 1}
    assert mask[:, 50:].all() and not mask[:, :30].any()
    assert (tmp_path / "v.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert out.exists()


@pytest.mark.parametrize(
    "crs",
    ["EPSG:32618", "EPSG:4326", CUSTOM_WKT, None],
    ids=["utm", "wgs84", "no-epsg", "no-crs"],
)
def test_georeferencing_is_preserved(make_geotiff, tmp_path, crs) -> None:
    transform = (
        Affine(2.7e-6, 0, -115.3, 0, -2.4e-6, 36.2)
        if crs == "EPSG:4326"
        else Affine(0.3, 0, 1000.0, 0, -0.3, 2000.0)
    )
    src = make_geotiff(
        np.zeros((3, 50, 70), dtype=np.uint16) + 300, crs=crs, transform=transform, nodata=0
    )
    out = run(src, tmp_path / "o.tif")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with rasterio.open(src) as a, rasterio.open(out) as b:
            assert (b.width, b.height) == (a.width, a.height)
            assert b.transform.almost_equals(a.transform)
            if crs is None:
                assert b.crs is None
            else:
                assert b.crs == CRS.from_user_input(crs)
            assert b.nodata == -1.0
            assert b.tags()["ROADSEG_TILE_SIZE"] == "64"


def test_tags_record_the_run(make_geotiff, tmp_path) -> None:
    src = make_geotiff(np.zeros((3, 40, 40), dtype=np.uint8))
    out = run(src, tmp_path / "o.tif")
    with rasterio.open(out) as ds:
        tags = ds.tags()
    assert tags["ROADSEG_MODEL_SHA256"] == "0" * 64
    assert tags["ROADSEG_OVERLAP"] == "16"
    assert "ROADSEG_VERSION" in tags


def test_float_nan_is_nodata(make_geotiff, tmp_path) -> None:
    data = np.ones((3, 40, 40), dtype=np.float32)
    data[:, 5, 5] = np.nan
    data[:, 6, 6] = np.inf
    out = run(make_geotiff(data), tmp_path / "o.tif")
    with rasterio.open(out) as ds:
        got = ds.read(1)
    assert got[5, 5] == -1.0 and got[6, 6] == -1.0
    assert np.isfinite(got).all()


def test_single_band_needs_bands(make_geotiff, tmp_path) -> None:
    src = make_geotiff(np.zeros((1, 40, 40), dtype=np.uint16))
    with pytest.raises(UnsupportedRasterError, match="--bands 1,1,1"):
        run(src, tmp_path / "o.tif")
    out = run(src, tmp_path / "o.tif", bands=(1, 1, 1))
    assert out.exists()


@pytest.mark.parametrize("case", ["missing", "garbage", "truncated", "exists", "no-folder"])
def test_bad_input_leaves_no_file(make_geotiff, tmp_path, case) -> None:
    out = tmp_path / "out.tif"
    src = make_geotiff(np.zeros((3, 300, 300), dtype=np.uint8) + 7)
    err: type[Exception] = InvalidRasterError
    if case == "missing":
        src = tmp_path / "nope.tif"
    elif case == "garbage":
        src = tmp_path / "garbage.tif"
        src.write_bytes(np.random.default_rng(0).bytes(5000))
    elif case == "truncated":
        blob = src.read_bytes()
        src = tmp_path / "cut.tif"
        src.write_bytes(blob[: len(blob) // 3])
    elif case == "exists":
        out.write_bytes(b"keep me")
        err = OutputError
    elif case == "no-folder":
        out = tmp_path / "missing" / "out.tif"
        err = OutputError
    with pytest.raises(err):
        run(src, out)
    if case == "exists":
        assert out.read_bytes() == b"keep me"
    else:
        assert not out.exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_output_equal_to_input_is_refused(make_geotiff) -> None:
    src = make_geotiff(np.zeros((3, 30, 30), dtype=np.uint8))
    with pytest.raises(OutputError, match="is the input"):
        run(src, src, overwrite=True)


def test_complex_dtype_is_refused(make_geotiff, tmp_path) -> None:
    src = make_geotiff(np.zeros((3, 20, 20), dtype=np.complex64))
    with pytest.raises(UnsupportedRasterError, match="complex64"):
        run(src, tmp_path / "o.tif")


@pytest.mark.parametrize(
    ("parts", "bands"),
    [
        (("rasterio", "cogeo.tif"), None),
        (("rasterio", "RGB.byte.tif"), None),
        (("spacenet", "road_mask_input.tif"), (1, 1, 1)),
        (("spacenet", "sample_geotiff.tif"), (1, 1, 1)),
    ],
)
def test_real_rasters_keep_georeferencing(tmp_path, parts, bands) -> None:
    src = shared(*parts)
    out = run(src, tmp_path / "o.tif", bands=bands, tile_size=224, overlap=32, batch_size=16)
    with rasterio.open(src) as a, rasterio.open(out) as b:
        assert (b.width, b.height, b.crs, b.transform) == (a.width, a.height, a.crs, a.transform)
        if a.nodata is not None:
            nod = a.read_masks(1) == 0
            assert np.all(b.read(1)[nod] == b.nodata)


def test_nodata_pixels_map_exactly_across_tile_rows(make_geotiff, tmp_path) -> None:
    rng = np.random.default_rng(3)
    data = rng.integers(1, 256, (3, 211, 150), dtype=np.uint8)
    holes = rng.random((211, 150)) < 0.05
    data[1][holes] = 0  # nodata in one band makes the pixel nodata
    out = run(make_geotiff(data, nodata=0), tmp_path / "o.tif")
    with rasterio.open(out) as ds:
        got = ds.read(1)
    np.testing.assert_array_equal(got == -1.0, holes)


class ResourceExhaustedError(RuntimeError):
    """Stands in for tensorflow.errors.ResourceExhaustedError (matched by name)."""


def test_out_of_memory_halves_the_batch_and_gives_the_same_output(
    make_geotiff, tmp_path, caplog
) -> None:
    rng = np.random.default_rng(3)
    src = make_geotiff(rng.integers(0, 255, (3, 150, 170), dtype=np.uint8))
    calls: list[int] = []

    def small_memory(batch: np.ndarray) -> np.ndarray:
        calls.append(len(batch))
        if len(batch) > 2:
            raise ResourceExhaustedError("OOM when allocating tensor")
        return identity(batch)

    opts = PredictOptions(overlap=16, batch_size=8, as_float=True)
    model = fake_model()
    predict_raster(src, tmp_path / "a.tif", model, opts, infer_fn=identity)
    with caplog.at_level("WARNING", logger="roadseg"):
        predict_raster(src, tmp_path / "b.tif", model, opts, infer_fn=small_memory)
    with rasterio.open(tmp_path / "a.tif") as a, rasterio.open(tmp_path / "b.tif") as b:
        np.testing.assert_array_equal(a.read(), b.read())
    assert calls[:3] == [8, 4, 2] and max(calls[3:]) <= 2  # halved once, then kept small
    assert "continuing with 2" in caplog.text


def test_other_errors_are_not_taken_for_out_of_memory(make_geotiff, tmp_path) -> None:
    src = make_geotiff(np.zeros((3, 40, 40), dtype=np.uint8))

    def broken(batch: np.ndarray) -> np.ndarray:
        raise ValueError("not memory")

    with pytest.raises(ValueError, match="not memory"):
        predict_raster(src, tmp_path / "o.tif", fake_model(), PredictOptions(), infer_fn=broken)
    assert not (tmp_path / "o.tif").exists()


def test_a_band_repeated_reads_the_same_as_three_copies(make_geotiff, tmp_path) -> None:
    """``--bands 1,1,1`` once had GDAL read one band three times into a strided
    buffer, which gave different pixels from run to run on strip-tiled 16-bit
    files with a nodata value (SpaceNet's sample_geotiff.tif). It must equal a
    3-band raster holding three copies, every time."""
    real = shared("spacenet", "sample_geotiff.tif")
    if not real.is_file():
        pytest.skip("../shared/data is not here")
    with rasterio.open(real) as ds:
        band = ds.read(1)
        one, three = real, make_geotiff(np.stack([band] * 3), nodata=ds.nodata, crs=ds.crs)

    def model_mean(batch: np.ndarray) -> np.ndarray:
        return batch.mean(axis=-1)

    opts = PredictOptions(overlap=32, batch_size=8, as_float=True)
    model = fake_model(tile=224)
    predict_raster(three, tmp_path / "three.tif", model, opts, infer_fn=model_mean)
    with rasterio.open(tmp_path / "three.tif") as ds:
        expected = ds.read(1)
    for k in range(3):
        out = tmp_path / f"one{k}.tif"
        opts_one = dataclasses.replace(opts, bands=(1, 1, 1))
        predict_raster(one, out, model, opts_one, infer_fn=model_mean)
        with rasterio.open(out) as ds:
            np.testing.assert_array_equal(ds.read(1), expected)
