"""Reading inputs at the model's ground sample distance (roadseg.resample).

An identity "model" (returns its first input band) makes the round trip
checkable: predicted at the model's GSD and written back on the input's
grid, a smooth image must come back close to itself.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import warnings
from pathlib import Path

import numpy as np
import pytest
import rasterio
from affine import Affine
from click.testing import CliRunner
from rasterio.windows import Window

from roadseg.encoding import PROB_NODATA
from roadseg.errors import RoadsegError, UnsupportedRasterError
from roadseg.geo import pixel_size_on_ground
from roadseg.model import LoadedModel, ModelInfo
from roadseg.predict import PredictOptions, predict_raster
from roadseg.resample import (
    GSD_TOLERANCE,
    bilinear_taps,
    input_gsd,
    interpolate,
    model_grid_shape,
    plan_gsd,
    predict_at_model_gsd,
    write_resampled_vrt,
)


class _FakeKeras:
    input_shape = (None, None, None, 3)


def fake_model(gsd: float | None = 1.0, tile: int = 64) -> LoadedModel:
    return LoadedModel(
        model=_FakeKeras(),
        info=ModelInfo(bands=3, tile_size=tile, threshold=0.5, gsd=gsd),
        path=Path("identity.keras"),
        sha256="0" * 64,
    )


def identity(batch: np.ndarray) -> np.ndarray:
    return batch[..., 0].copy()


def smooth_rgb(h: int, w: int) -> np.ndarray:
    """Low-frequency image (features tens of pixels wide), so resampling keeps it."""
    y, x = np.mgrid[0:h, 0:w]
    band = 127.5 + 100 * np.sin(x / 17.0) * np.cos(y / 23.0)
    return np.repeat(np.rint(band).astype(np.uint8)[None], 3, axis=0)


def opts(**kw) -> PredictOptions:
    return PredictOptions(**{"overlap": 16, "batch_size": 4, **kw})


def read(path: Path) -> tuple[np.ndarray, dict]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", rasterio.errors.NotGeoreferencedWarning)
        ds = rasterio.open(path)
    with ds:
        return ds.read(1), {
            "shape": (ds.height, ds.width),
            "transform": ds.transform,
            "crs": ds.crs,
            "nodata": ds.nodata,
            "dtype": ds.dtypes[0],
            "scales": ds.scales,
            "tags": ds.tags(),
        }


# --------------------------------------------------------------------------- GSD


def test_gsd_from_projected_raster(make_geotiff) -> None:
    src_path = make_geotiff(np.zeros((3, 20, 30), np.uint8))  # UTM 33N, 0.5 m
    with rasterio.open(src_path) as src:
        # UTM shrinks ground distances by 0.9996 on the central meridian.
        assert input_gsd(src) == pytest.approx(0.5 / 0.9996, rel=1e-4)


def test_gsd_from_geographic_raster(make_geotiff) -> None:
    # 1e-5 degree pixels at 60 degrees north: about 0.558 m east-west, 1.114 m north-south.
    path = make_geotiff(
        np.zeros((3, 10, 10), np.uint8),
        crs="EPSG:4326",
        transform=Affine(1e-5, 0, 10.0, 0, -1e-5, 60.00005),
    )
    with rasterio.open(path) as src:
        x, y = pixel_size_on_ground(src)
        assert x == pytest.approx(0.5580, rel=2e-3)
        assert y == pytest.approx(1.1141, rel=2e-3)
        assert input_gsd(src) == pytest.approx(math.sqrt(x * y))


def test_gsd_of_web_mercator_is_ground_metres(make_geotiff) -> None:
    # Web Mercator "metres" overstate the ground by 1 / cos(latitude): 2x at 60 N.
    y60 = 6378137.0 * math.log(math.tan(math.pi / 4 + math.radians(60) / 2))
    path = make_geotiff(
        np.zeros((3, 10, 10), np.uint8),
        crs="EPSG:3857",
        transform=Affine(1.0, 0, 1_000_000.0, 0, -1.0, y60 + 5),
    )
    with rasterio.open(path) as src:
        assert input_gsd(src) == pytest.approx(0.5, rel=5e-3)


def test_gsd_unknown_without_georeferencing_unless_stated(make_geotiff) -> None:
    path = make_geotiff(np.zeros((3, 10, 10), np.uint8), crs=None, transform=Affine.identity())
    with rasterio.open(path) as src:
        assert input_gsd(src) is None
        assert input_gsd(src, 0.3) == 0.3


def test_stated_gsd_wins_over_georeferencing_with_a_warning(make_geotiff, caplog) -> None:
    path = make_geotiff(np.zeros((3, 10, 10), np.uint8))
    with rasterio.open(path) as src, caplog.at_level(logging.WARNING, logger="roadseg"):
        assert input_gsd(src, 0.5) == 0.5
        assert not caplog.records  # agrees: nothing to say
        assert input_gsd(src, 2.0) == 2.0
    assert "overrides its georeferencing" in caplog.text


@pytest.mark.parametrize("bad", [0.0, -1.0, math.nan, math.inf])
def test_bad_stated_gsd_is_refused(make_geotiff, bad) -> None:
    path = make_geotiff(np.zeros((3, 10, 10), np.uint8))
    with rasterio.open(path) as src, pytest.raises(RoadsegError, match="positive"):
        input_gsd(src, bad)


# --------------------------------------------------------------------------- pure parts


def test_plan() -> None:
    assert plan_gsd(0.3, 1.0).resample
    assert plan_gsd(0.3, 1.0).factors == pytest.approx((0.3, 0.3))
    assert plan_gsd(0.3, 1.0).input_gsd == pytest.approx(0.3)
    assert not plan_gsd(0.3, 1.0, enabled=False).resample
    assert not plan_gsd(1.0 + GSD_TOLERANCE / 2, 1.0).resample
    assert not plan_gsd(None, 1.0).resample
    assert not plan_gsd(0.3, None).resample
    assert "--gsd" in plan_gsd(None, 1.0).message
    with pytest.raises(UnsupportedRasterError, match="--no-resample"):
        plan_gsd(10.0, 0.5)
    assert model_grid_shape(101, 7, (0.5, 0.5)) == (50, 4)  # round half to even
    assert model_grid_shape(3, 3, (0.01, 0.01)) == (1, 1)


def test_plan_scales_non_square_pixels_to_square_ones() -> None:
    # EPSG:4326 at 60 degrees north: square in degrees, 1:2 on the ground.
    plan = plan_gsd((0.5, 1.0), 1.0)
    assert plan.resample and plan.factors == pytest.approx((0.5, 1.0))
    assert "0.5 x 1 m" in plan.message
    assert plan.input_gsd == pytest.approx(math.sqrt(0.5))


def test_taps_on_equal_grids_are_the_identity() -> None:
    taps = bilinear_taps(0, 9, 9, 9)
    np.testing.assert_array_equal(taps.lo, np.arange(9))
    np.testing.assert_array_equal(taps.frac, 0)


def test_interpolate_ignores_nodata() -> None:
    values = np.array([[0.2, 0.4], [-1.0, 0.8]], np.float32)
    valid = np.array([[True, True], [False, True]])
    rows = bilinear_taps(0, 4, 4, 2)
    cols = bilinear_taps(0, 4, 4, 2)
    out, ok = interpolate(values, valid, rows, cols)
    assert ok.sum() == 15 and not ok[3, 0]  # only the corner right over the nodata pixel
    assert out[ok].min() >= 0.2 - 1e-6 and out[ok].max() <= 0.8 + 1e-6  # nodata -1 never blends in
    assert out[0, 0] == pytest.approx(0.2) and out[3, 3] == pytest.approx(0.8)
    out, ok = interpolate(values, np.zeros_like(valid), rows, cols)
    assert not ok.any()


@pytest.mark.parametrize("size", [(112, 97), (66, 152), (260, 300), (7, 5)])
def test_vrt_reads_the_same_by_windows(make_geotiff, tmp_path, size) -> None:
    # predict_raster reads strips; every strip must match the whole image.
    src_path = make_geotiff(smooth_rgb(150, 130))
    vrt = tmp_path / "r.vrt"
    with rasterio.open(src_path) as src:
        write_resampled_vrt(src, src_path, vrt, *size)
    with rasterio.open(vrt) as ds:
        assert (ds.width, ds.height) == size
        full = ds.read(1).astype(int)
        assert full.min() > 0  # smooth_rgb has no zeros: no rows dropped
        for top in range(0, size[1], 13):
            window = Window(0, top, size[0], min(32, size[1] - top))
            part = ds.read(1, window=window).astype(int)
            assert np.abs(part - full[top : top + 32]).max() <= 1, top


def test_vrt_of_a_window_reads_the_window_on_its_grid(make_geotiff, tmp_path) -> None:
    src_path = make_geotiff(smooth_rgb(150, 130))
    vrt = tmp_path / "w.vrt"
    with rasterio.open(src_path) as src:
        write_resampled_vrt(src, src_path, vrt, 40, 30, window=(20, 50, 40, 30))
        expected = src.read(window=Window(20, 50, 40, 30))
        corner = src.transform * (20, 50)
        res = src.res
    with rasterio.open(vrt) as ds:
        assert np.array_equal(ds.read(), expected)
        assert ds.transform * (0, 0) == pytest.approx(corner)
        assert ds.res == pytest.approx(res)


# --------------------------------------------------------------------------- prediction


def test_resampled_prediction_lands_on_the_input_grid(make_geotiff, tmp_path) -> None:
    data = smooth_rgb(150, 130)
    src = make_geotiff(data)  # 0.5 m; the model says 1.0 m
    out = tmp_path / "out.tif"
    result = predict_at_model_gsd(src, out, fake_model(1.0), opts(as_float=True), infer_fn=identity)
    plain = predict_raster(
        src, tmp_path / "plain.tif", fake_model(1.0), opts(as_float=True), infer_fn=identity
    )
    got, meta = read(out)
    want, want_meta = read(tmp_path / "plain.tif")
    for key in ("shape", "transform", "crs", "nodata", "dtype"):
        assert meta[key] == want_meta[key], key
    assert meta["tags"]["ROADSEG_RESAMPLED_GSD"] == "1"
    assert float(meta["tags"]["ROADSEG_INPUT_GSD"]) == pytest.approx(0.5, rel=1e-3)
    assert result.tiles < plain.tiles  # the model saw a quarter of the pixels
    # Halving and doubling a smooth image gives it back, give or take the blur.
    assert np.abs(got - want).mean() < 0.02
    assert np.abs(got - want).max() < 0.1


def test_non_square_geographic_pixels_round_trip(make_geotiff, tmp_path) -> None:
    # 1e-5 degree pixels at 60 N are 0.56 x 1.11 m; the model grid is square at 1.1 m.
    data = smooth_rgb(150, 130)
    src = make_geotiff(data, crs="EPSG:4326", transform=Affine(1e-5, 0, 10.0, 0, -1e-5, 60.001))
    out = tmp_path / "o.tif"
    result = predict_at_model_gsd(src, out, fake_model(1.1), opts(as_float=True), infer_fn=identity)
    got, meta = read(out)
    assert meta["shape"] == (150, 130) and meta["crs"] == rasterio.crs.CRS.from_epsg(4326)
    assert result.tags["ROADSEG_RESAMPLED_GSD"] == "1.1"
    diff = np.abs(got - data[0] / 255.0)
    assert diff.mean() < 0.02 and diff.max() < 0.1


def test_resampled_uint8_output_mask_and_preview(make_geotiff, tmp_path) -> None:
    data = smooth_rgb(120, 100)
    src = make_geotiff(data)
    out, mask, preview = tmp_path / "o.tif", tmp_path / "m.tif", tmp_path / "p.png"
    o = opts(mask_path=mask, preview_path=preview)
    predict_at_model_gsd(src, out, fake_model(1.0), o, infer_fn=identity)
    got, meta = read(out)
    assert meta["dtype"] == "uint8" and meta["nodata"] == PROB_NODATA
    assert meta["scales"][0] == pytest.approx(1 / 254)
    assert meta["tags"]["ROADSEG_VALUE"] == "probability * 254"
    m, mmeta = read(mask)
    assert mmeta["shape"] == meta["shape"]
    # Threshold 0.5 = 127 / 254; values rounded to 127 may lie on either side.
    assert np.all(m[got >= 128] == 1) and np.all(m[got <= 126] == 0)
    assert 0 < (m == 1).mean() < 1
    assert preview.stat().st_size > 0
    assert not list(tmp_path.glob(".*"))  # no temporaries left behind


def test_no_resample_is_exactly_predict_raster(make_geotiff, tmp_path) -> None:
    src = make_geotiff(smooth_rgb(90, 70))
    predict_at_model_gsd(
        src, tmp_path / "a.tif", fake_model(1.0), opts(), resample=False, infer_fn=identity
    )
    predict_raster(src, tmp_path / "b.tif", fake_model(1.0), opts(), infer_fn=identity)
    a, ameta = read(tmp_path / "a.tif")
    b, _ = read(tmp_path / "b.tif")
    np.testing.assert_array_equal(a, b)
    assert "ROADSEG_RESAMPLED_GSD" not in ameta["tags"]


def test_model_without_gsd_reads_the_input_as_it_is(make_geotiff, tmp_path) -> None:
    src = make_geotiff(smooth_rgb(90, 70))
    predict_at_model_gsd(src, tmp_path / "a.tif", fake_model(None), opts(), infer_fn=identity)
    predict_raster(src, tmp_path / "b.tif", fake_model(None), opts(), infer_fn=identity)
    np.testing.assert_array_equal(read(tmp_path / "a.tif")[0], read(tmp_path / "b.tif")[0])
    assert "ROADSEG_RESAMPLED_GSD" not in read(tmp_path / "a.tif")[1]["tags"]


def test_stated_gsd_resamples_a_plain_image(make_geotiff, tmp_path, caplog) -> None:
    src = make_geotiff(smooth_rgb(100, 80), crs=None, transform=Affine.identity())
    out = tmp_path / "o.tif"
    with caplog.at_level(logging.WARNING, logger="roadseg"):
        predict_at_model_gsd(src, out, fake_model(1.0), opts(), gsd=0.5, infer_fn=identity)
    assert "raster" in caplog.text and ".vrt" not in caplog.text  # names the user's file
    got, meta = read(out)
    assert meta["shape"] == (100, 80) and meta["crs"] is None
    assert meta["transform"].is_identity
    assert meta["tags"]["ROADSEG_RESAMPLED_GSD"] == "1"


@pytest.mark.parametrize("nodata", [0, None])
def test_input_nodata_stays_nodata(make_geotiff, tmp_path, nodata) -> None:
    data = smooth_rgb(120, 110)
    data[data == 0] = 1
    hole = np.zeros((120, 110), bool)
    hole[:, :13] = True  # an edge strip
    hole[50:53, 60:61] = True  # a hole smaller than a model pixel
    if nodata is None:
        # No nodata value: an internal (per-dataset) mask says what is missing.
        path = tmp_path / "masked.tif"
        with rasterio.open(
            path, "w", driver="GTiff", width=110, height=120, count=3, dtype="uint8",
            crs="EPSG:32633", transform=Affine(0.5, 0, 500000.0, 0, -0.5, 5500000.0),
        ) as dst:  # fmt: skip
            dst.write(data)
            dst.write_mask(np.where(hole, 0, 255).astype(np.uint8))
        src = path
    else:
        data[:, hole] = nodata
        src = make_geotiff(data, nodata=nodata)
    out, mask = tmp_path / "o.tif", tmp_path / "m.tif"
    predict_at_model_gsd(src, out, fake_model(2.0), opts(mask_path=mask), infer_fn=identity)
    got, meta = read(out)
    assert meta["tags"]["ROADSEG_RESAMPLED_GSD"] == "2"
    np.testing.assert_array_equal(got == PROB_NODATA, hole)
    np.testing.assert_array_equal(read(mask)[0] == 255, hole)


def test_far_too_coarse_input_is_refused(make_geotiff, tmp_path) -> None:
    src = make_geotiff(smooth_rgb(20, 20))
    with pytest.raises(UnsupportedRasterError, match="0.5 m"):
        predict_at_model_gsd(src, tmp_path / "o.tif", fake_model(0.05), opts(), infer_fn=identity)
    assert not (tmp_path / "o.tif").exists()


def test_existing_output_is_refused_before_any_work(make_geotiff, tmp_path) -> None:
    src = make_geotiff(smooth_rgb(40, 40))
    out = tmp_path / "o.tif"
    out.write_bytes(b"keep")
    with pytest.raises(RoadsegError, match="--overwrite"):
        predict_at_model_gsd(src, out, fake_model(1.0), opts(), infer_fn=identity)
    assert out.read_bytes() == b"keep"


# --------------------------------------------------------------------------- CLI


@pytest.fixture(scope="module")
def tiny_gsd_model(tmp_path_factory) -> Path:
    from roadseg.model import build_resunet, save_model

    model = build_resunet((None, None, 3), filters=(4, 8, 8, 16))
    path = tmp_path_factory.mktemp("model") / "tiny_1m.keras"
    return save_model(model, path, ModelInfo(filters=(4, 8, 8, 16), tile_size=64, gsd=1.0))


def invoke(*args):
    from roadseg.cli import cli

    return CliRunner().invoke(cli, [str(a) for a in args])


def test_cli_resamples_and_no_resample_turns_it_off(make_geotiff, tiny_gsd_model, tmp_path):
    src = make_geotiff(smooth_rgb(80, 96))
    out = tmp_path / "o.tif"
    result = invoke("predict", src, "-o", out, "--model", tiny_gsd_model)
    assert result.exit_code == 0, result.output
    assert "1 m" in result.output  # the summary says the model's GSD was used
    _, meta = read(out)
    assert meta["shape"] == (80, 96) and meta["tags"]["ROADSEG_RESAMPLED_GSD"] == "1"
    result = invoke(
        "predict", src, "-o", out, "--model", tiny_gsd_model, "--no-resample", "--overwrite"
    )
    assert result.exit_code == 0, result.output
    assert "ROADSEG_RESAMPLED_GSD" not in read(out)[1]["tags"]


def test_cli_gsd_for_a_plain_image(make_geotiff, tiny_gsd_model, tmp_path):
    src = make_geotiff(smooth_rgb(64, 64), crs=None, transform=Affine.identity())
    out = tmp_path / "o.tif"
    result = invoke("predict", src, "-o", out, "--model", tiny_gsd_model, "-q")
    assert result.exit_code == 0, result.output
    assert "--gsd" in result.output  # warned: the input's GSD is unknown
    result = invoke(
        "predict", src, "-o", out, "--model", tiny_gsd_model, "--gsd", "0.5", "--overwrite", "-q"
    )
    assert result.exit_code == 0, result.output
    assert read(out)[1]["tags"]["ROADSEG_RESAMPLED_GSD"] == "1"


@pytest.mark.parametrize("bad", ["0", "-0.5", "abc"])
def test_cli_bad_gsd_is_a_usage_error(make_geotiff, tmp_path, bad):
    src = make_geotiff(smooth_rgb(16, 16))
    result = invoke("predict", src, "-o", tmp_path / "o.tif", "--gsd", bad)
    assert result.exit_code == 2, result.output
    assert "--gsd" in result.output
    assert not (tmp_path / "o.tif").exists()


def test_model_info_round_trips_gsd() -> None:
    info = ModelInfo(gsd=0.3)
    assert ModelInfo.from_json(info.to_json()).gsd == 0.3
    assert dataclasses.replace(info, gsd=None).gsd is None
