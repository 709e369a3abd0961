"""Faults from issue 6: bad inputs and failing outputs lose nothing.

Each test is one row of the fault table in ``docs/faults.md``. A fault ends in
one of two ways: a valid output, or a one-line ``Error: ...`` with exit code 1,
no traceback, no file at the output path and no temporary file left behind.

Library tests use an identity "model" (the output reproduces the input's first
band), so geometry and nodata can be checked exactly; CLI tests run a tiny real
ResUNet.
"""

from __future__ import annotations

import errno
import os
import shutil
import signal
import struct
import subprocess
import sys
import threading
import time
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest
import rasterio
from affine import Affine
from click.testing import CliRunner, Result
from conftest import sigint_default
from rasterio.enums import ColorInterp

from roadseg.cli import cli
from roadseg.encoding import PROB_NODATA
from roadseg.errors import InvalidRasterError, OutputError
from roadseg.model import LoadedModel, ModelInfo
from roadseg.predict import PredictOptions, predict_raster
from roadseg.raster_io import (
    IncompleteWriteError,
    atomic_output,
    check_written,
    open_raster,
    to_cog,
)

NORTH_UP = Affine(0.5, 0, 500000.0, 0, -0.5, 5500000.0)


# --------------------------------------------------------------------------- helpers


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from roadseg.model import build_resunet, save_model

    model = build_resunet((None, None, 3), filters=(4, 8, 8, 16))
    path = tmp_path_factory.mktemp("model") / "tiny.keras"
    return save_model(model, path, ModelInfo(filters=(4, 8, 8, 16), tile_size=32))


class _FakeKeras:
    input_shape = (None, None, None, 3)


def identity_model() -> LoadedModel:
    return LoadedModel(
        model=_FakeKeras(),
        info=ModelInfo(bands=3, tile_size=32, threshold=0.5),
        path=Path("identity.keras"),
        sha256="0" * 64,
    )


def identity(batch: np.ndarray) -> np.ndarray:
    return batch[..., 0].copy()


def lib_predict(src: Path, out: Path, **kw: object) -> Path:
    """predict_raster with the identity model and float output."""
    options = PredictOptions(**{"overlap": 8, "batch_size": 4, "as_float": True, **kw})
    predict_raster(src, out, identity_model(), options, infer_fn=identity)
    return out


def predict_cli(src: Path, out: Path, model: Path, *extra: str) -> Result:
    args = ["predict", src, "-o", out, "--model", model, "--tile-size", "32", "--overlap", "8"]
    return CliRunner().invoke(cli, [str(a) for a in (*args, "-q", *extra)])


def vectorize_cli(src: Path, out: Path, *extra: str) -> Result:
    return CliRunner().invoke(cli, [str(a) for a in ("vectorize", src, "-o", out, "-q", *extra)])


def quiet_predict_cli(src: Path, out: Path, model: Path, *extra: str) -> Result:
    """predict_cli, failing on any RuntimeWarning or rasterio warning it emits (pytest
    would otherwise swallow them, where a user sees them on stderr)."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = predict_cli(src, out, model, *extra)
    loud = [
        f"{w.category.__name__}: {w.message}"
        for w in caught
        if issubclass(w.category, RuntimeWarning) or w.category.__module__.startswith("rasterio")
    ]
    assert loud == [], loud
    return result


def assert_clean_failure(result: Result, *words: str, out: Path | None = None) -> None:
    """Exit 1, ``Error: ...`` on one line, no traceback, no output, no temporaries."""
    assert result.exit_code == 1, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    assert "Traceback" not in result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("Error: ")]
    assert len(errors) == 1 and lines[-1] == errors[0], result.output
    for word in words:
        assert word in errors[0], errors[0]
    if out is not None:
        assert not out.exists()
        assert_no_temporaries(out.parent)


def assert_no_temporaries(folder: Path) -> None:
    if folder.is_dir():
        assert [p.name for p in folder.iterdir() if p.name.startswith(".")] == []


def assert_valid_output(out: Path, width: int, height: int) -> np.ndarray:
    """The output opens, has the right size and decodes completely; returns band 1."""
    assert_no_temporaries(out.parent)
    check_written(out, read=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", rasterio.errors.NotGeoreferencedWarning)
        with rasterio.open(out) as ds:
            assert (ds.width, ds.height) == (width, height)
            return ds.read(1)


def tiff_tags(path: Path) -> set[int]:
    """Tag numbers of the first IFD of a little-endian (Big)TIFF."""
    blob = path.read_bytes()
    assert blob[:2] == b"II"
    if struct.unpack_from("<H", blob, 2)[0] == 43:
        ifd = struct.unpack_from("<Q", blob, 8)[0]
        count = struct.unpack_from("<Q", blob, ifd)[0]
        return {struct.unpack_from("<H", blob, ifd + 8 + 20 * i)[0] for i in range(count)}
    ifd = struct.unpack_from("<I", blob, 4)[0]
    count = struct.unpack_from("<H", blob, ifd)[0]
    return {struct.unpack_from("<H", blob, ifd + 2 + 12 * i)[0] for i in range(count)}


def patch_tiff_tag(blob: bytes, tag: int, value: int) -> bytes:
    """Set a SHORT/LONG tag of a classic little-endian TIFF's first IFD."""
    out = bytearray(blob)
    ifd = struct.unpack_from("<I", out, 4)[0]
    for i in range(struct.unpack_from("<H", out, ifd)[0]):
        entry = ifd + 2 + 12 * i
        code, kind = struct.unpack_from("<HH", out, entry)
        if code == tag:
            struct.pack_into("<H" if kind == 3 else "<I", out, entry + 8, value)
            return bytes(out)
    raise KeyError(tag)


def tiff_claiming(width: int, height: int) -> bytes:
    """A 1-band uint8 TIFF header claiming ``width`` x ``height`` pixels, and no pixels."""
    entries = [
        (256, 4, width),  # ImageWidth
        (257, 4, height),  # ImageLength
        (258, 3, 8),  # BitsPerSample
        (259, 3, 1),  # no compression
        (262, 3, 1),  # BlackIsZero
        (273, 4, 8),  # StripOffsets
        (277, 3, 1),  # SamplesPerPixel
        (278, 4, height),  # RowsPerStrip: one strip
        (279, 4, (width * height) % 2**32),  # StripByteCounts
    ]
    ifd = struct.pack("<H", len(entries))
    for tag, kind, value in entries:
        if kind == 3:
            ifd += struct.pack("<HHIHH", tag, kind, 1, value, 0)
        else:
            ifd += struct.pack("<HHII", tag, kind, 1, value)
    return b"II*\x00" + struct.pack("<I", 8 + 64) + bytes(64) + ifd + struct.pack("<I", 0)


@pytest.fixture
def tmpfs(tmp_path: Path) -> Iterator[Callable[..., Path]]:
    """Factory: mount a small tmpfs (root only; skips the test where not permitted)."""
    mounted: list[Path] = []

    def mount(size: str = "64k", *, read_only: bool = False) -> Path:
        point = tmp_path / f"mnt{len(mounted)}"
        point.mkdir()
        options = f"size={size}" + (",ro" if read_only else "")
        proc = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(point)],
            capture_output=True,
            text=True,
        )
        if proc.returncode:
            pytest.skip(f"cannot mount a tmpfs here: {proc.stderr.strip()}")
        mounted.append(point)
        return point

    yield mount
    for point in mounted:
        subprocess.run(["umount", "-l", str(point)], capture_output=True)


def rgb(height: int, width: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (3, height, width), dtype=np.uint8)


def road_mask(height: int = 80, width: int = 80) -> np.ndarray:
    mask = np.zeros((height, width), np.uint8)
    mask[height // 2 - 3 : height // 2 + 3, :] = 1
    mask[:, width // 3 - 3 : width // 3 + 3] = 1
    return mask


# --------------------------------------------------------------------------- input faults


def test_random_bytes_named_tif(tmp_path: Path, tiny_model: Path) -> None:
    src = tmp_path / "noise.tif"
    src.write_bytes(np.random.default_rng(0).bytes(5000))
    out = tmp_path / "o.tif"
    assert_clean_failure(predict_cli(src, out, tiny_model), "not a raster", out=out)


def test_truncated_geotiff_refused_before_any_work(make_geotiff, tmp_path: Path) -> None:
    """A truncated file is caught from its block table at open, not when a run reaches
    the missing blocks hours later."""
    full = make_geotiff(rgb(300, 300), tiled=True, blockxsize=64, blockysize=64)
    src = tmp_path / "cut.tif"
    src.write_bytes(full.read_bytes()[: full.stat().st_size * 2 // 3])
    with pytest.raises(InvalidRasterError, match=r"corrupt or truncated.*bytes of file"):
        open_raster(src)


def test_truncated_geotiff_cli(make_geotiff, tmp_path: Path, tiny_model: Path) -> None:
    full = make_geotiff(rgb(200, 200))
    src = tmp_path / "cut.tif"
    src.write_bytes(full.read_bytes()[:5000])
    out = tmp_path / "o.tif"
    assert_clean_failure(predict_cli(src, out, tiny_model), "corrupt or truncated", out=out)


def test_header_claiming_a_million_squared_pixels(tmp_path: Path, tiny_model: Path) -> None:
    src = tmp_path / "huge.tif"
    src.write_bytes(tiff_claiming(10**6, 10**6))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with rasterio.open(src) as ds:  # GDAL believes it
            assert (ds.width, ds.height) == (10**6, 10**6)
    out = tmp_path / "o.tif"
    # --bands 1,1,1 takes it past the band check to where a strip would be allocated.
    result = predict_cli(src, out, tiny_model, "--bands", "1,1,1")
    assert_clean_failure(result, "1000000x1000000", "header is corrupt", out=out)


def test_zero_by_zero_raster(make_geotiff, tmp_path: Path, tiny_model: Path) -> None:
    one = make_geotiff(rgb(1, 1))
    blob = patch_tiff_tag(patch_tiff_tag(one.read_bytes(), 256, 0), 257, 0)
    src = tmp_path / "zero.tif"
    src.write_bytes(blob)
    out = tmp_path / "o.tif"
    assert_clean_failure(predict_cli(src, out, tiny_model), "not a raster", out=out)


def test_one_by_one_raster(make_geotiff, tmp_path: Path, tiny_model: Path) -> None:
    src = make_geotiff(rgb(1, 1))
    out = tmp_path / "o.tif"
    result = predict_cli(src, out, tiny_model)
    assert result.exit_code == 0, result.output
    got = assert_valid_output(out, 1, 1)
    assert got[0, 0] != PROB_NODATA


@pytest.mark.parametrize(
    ("dtype", "nodata"), [("uint8", 0), ("uint16", 0), ("float32", None)], ids=str
)
def test_all_nodata_raster(make_geotiff, tmp_path: Path, tiny_model: Path, dtype, nodata) -> None:
    """uint16 and float take the percentile path, whose sample is then empty."""
    data = np.full((3, 40, 50), np.nan if nodata is None else nodata, dtype=dtype)
    src = make_geotiff(data, nodata=nodata)
    out = tmp_path / "o.tif"
    result = predict_cli(src, out, tiny_model)
    assert result.exit_code == 0, result.output
    assert np.all(assert_valid_output(out, 50, 40) == PROB_NODATA)


def test_nan_and_inf_in_float_rasters(make_geotiff, tmp_path: Path, tiny_model: Path) -> None:
    data = np.random.default_rng(1).random((3, 40, 40)).astype(np.float64) * 1e4
    data[0, 5, 5] = np.nan
    data[1, 6, 6] = np.inf
    data[2, 7, 7] = -np.inf
    data[:, 30, 30] = 1e300  # beyond float32: stretched in float64
    out = tmp_path / "o.tif"
    result = quiet_predict_cli(make_geotiff(data), out, tiny_model)
    assert result.exit_code == 0, result.output
    assert result.output == ""
    got = assert_valid_output(out, 40, 40)
    assert got[5, 5] == got[6, 6] == got[7, 7] == PROB_NODATA
    assert np.count_nonzero(got == PROB_NODATA) == 3


def test_signalling_nan_is_nodata_quietly(make_geotiff, tmp_path: Path, tiny_model) -> None:
    """Found by the fuzzer: corrupt float data held signalling NaNs, whose cast printed
    a RuntimeWarning in the middle of the CLI's output."""
    data = np.random.default_rng(2).random((3, 30, 30)).astype(np.float32)
    data.view(np.uint32)[:, 4, 4] = 0x7F800001  # a signalling NaN
    out = tmp_path / "o.tif"
    result = quiet_predict_cli(make_geotiff(data), out, tiny_model)
    assert result.exit_code == 0, result.output
    assert result.output == ""
    got = assert_valid_output(out, 30, 30)
    assert got[4, 4] == PROB_NODATA and np.count_nonzero(got == PROB_NODATA) == 1


@pytest.mark.parametrize(
    "dtype", ["int8", "int16", "uint16", "int32", "uint32", "int64", "uint64", "float64"]
)
def test_integer_and_wide_dtypes_predict(make_geotiff, tmp_path: Path, dtype: str) -> None:
    info = np.iinfo(dtype) if dtype[0] in "ui" else np.finfo(dtype)
    ramp = np.linspace(max(float(info.min), -1e6), min(float(info.max), 1e6), 30 * 40)
    data = np.stack([ramp.reshape(30, 40).astype(dtype)] * 3)
    out = lib_predict(make_geotiff(data), tmp_path / "o.tif")
    got = assert_valid_output(out, 40, 30)
    # A 2-98 percentile stretch of a ramp: monotonic, 0 at the bottom, 1 at the top.
    flat = got.ravel()
    assert np.all(np.diff(flat) >= -1e-6)
    assert flat[0] == 0.0 and flat[-1] == 1.0


@pytest.mark.parametrize("dtype", ["complex64", "complex128", "int16_complex"])
def test_complex_dtypes_refused(make_geotiff, tmp_path: Path, tiny_model: Path, dtype) -> None:
    if dtype == "int16_complex":
        src = make_geotiff(np.zeros((3, 20, 20), np.complex64))
        with rasterio.open(src) as ds:  # CInt16 cannot be written from numpy; rewrite via GDAL
            profile = ds.profile
        src = tmp_path / "cint16.tif"
        profile.update(dtype="complex_int16")
        with rasterio.open(src, "w", **profile):
            pass
        expected = "complex_int16"
    else:
        src = make_geotiff(np.zeros((3, 20, 20), dtype))
        expected = dtype
    out = tmp_path / "o.tif"
    assert_clean_failure(predict_cli(src, out, tiny_model), expected, out=out)


def _palette_raster(make_geotiff, nodata: int | None = None) -> tuple[Path, np.ndarray]:
    index = np.zeros((40, 50), np.uint8)
    index[10:20] = 1
    index[:, 30:] = 2
    index[0, 0] = 3
    src = make_geotiff(index, photometric="palette", nodata=nodata)
    table = {0: (0, 0, 0, 255), 1: (250, 20, 10, 255), 2: (10, 200, 30, 255), 3: (1, 2, 3, 255)}
    with rasterio.open(src, "r+") as ds:
        ds.write_colormap(1, table)
    lut = np.array([table[i][:3] for i in range(4)], np.uint8)
    return src, np.moveaxis(lut[index], -1, 0)


def test_palette_image_is_read_as_rgb(make_geotiff) -> None:
    src, expected = _palette_raster(make_geotiff, nodata=3)
    with open_raster(src) as ds:  # default: the indices, as vectorize wants them
        assert ds.count == 1
    with open_raster(src, expand_palette=True) as ds:
        assert ds.count == 3
        assert list(ds.colorinterp) == [ColorInterp.red, ColorInterp.green, ColorInterp.blue]
        assert ds.crs == rasterio.crs.CRS.from_epsg(32633) and ds.transform == NORTH_UP
        np.testing.assert_array_equal(ds.read(), expected)
        mask = ds.read_masks(1)
    assert mask[0, 0] == 0 and np.all(mask.ravel()[1:] == 255)  # index 3 is nodata


def test_palette_image_predicts_like_its_rgb(make_geotiff, tmp_path: Path) -> None:
    src, expected = _palette_raster(make_geotiff)
    got = assert_valid_output(lib_predict(src, tmp_path / "p.tif"), 50, 40)
    np.testing.assert_allclose(got, expected[0] / 255.0, atol=1e-6)


def test_palette_image_cli_never_fails_badly(make_geotiff, tmp_path: Path, tiny_model) -> None:
    src, _ = _palette_raster(make_geotiff)
    out = tmp_path / "o.tif"
    result = predict_cli(src, out, tiny_model)
    if result.exit_code == 0:
        assert_valid_output(out, 50, 40)
    else:
        assert_clean_failure(result, "palette", "gdal_translate -expand rgb", out=out)


@pytest.mark.parametrize(
    ("bands", "words"),
    [
        (1, ["1 band(s)", "--bands 1,1,1"]),
        (2, ["2 band(s)", "expects 3", "--bands"]),
        (4, ["4 band(s)", "--bands 1,2,3"]),
        (8, ["8 band(s)", "--bands 1,2,3"]),
    ],
)
def test_band_counts_name_bands_option(
    make_geotiff, tmp_path: Path, tiny_model: Path, bands: int, words: list[str]
) -> None:
    data = np.random.default_rng(bands).integers(0, 256, (bands, 30, 30), dtype=np.uint8)
    # photometric=minisblack: a 4th band that is not alpha (e.g. near-infrared)
    src = make_geotiff(data, photometric="minisblack")
    out = tmp_path / "o.tif"
    assert_clean_failure(predict_cli(src, out, tiny_model), *words, out=out)
    result = predict_cli(src, out, tiny_model, "--bands", "1,1,1")
    assert result.exit_code == 0, result.output
    assert_valid_output(out, 30, 30)


def test_rgba_drops_alpha_and_uses_it_as_nodata(make_geotiff, tmp_path: Path) -> None:
    data = np.concatenate([rgb(30, 40), np.full((1, 30, 40), 255, np.uint8)])
    data[3, :5] = 0  # transparent rows
    src = make_geotiff(data, photometric="rgb", alpha="yes")
    got = assert_valid_output(lib_predict(src, tmp_path / "o.tif"), 40, 30)
    assert np.all(got[:5] == -1.0) and np.all(got[5:] >= 0.0)
    np.testing.assert_allclose(got[5:], data[0, 5:] / 255.0, atol=1e-6)


@pytest.mark.parametrize(
    "transform",
    [
        NORTH_UP @ Affine.rotation(30),
        NORTH_UP @ Affine.shear(10, 5),
        Affine(0.5, 0, 500000.0, 0, 0.5, 5500000.0),  # south-up: positive y pixel size
    ],
    ids=["rotated", "sheared", "south-up"],
)
def test_unusual_transforms_keep_the_grid(make_geotiff, tmp_path: Path, transform) -> None:
    """The pipeline works in pixel space: same pixels in, same pixels out, same transform."""
    data = rgb(45, 70, seed=3)
    src = make_geotiff(data, transform=transform)
    out = lib_predict(src, tmp_path / "o.tif")
    got = assert_valid_output(out, 70, 45)
    np.testing.assert_allclose(got, data[0] / 255.0, atol=1e-6)
    with rasterio.open(out) as ds:
        assert ds.transform.almost_equals(transform, precision=1e-12)
        assert ds.crs == rasterio.crs.CRS.from_epsg(32633)


def test_ground_control_points_are_kept(tmp_path: Path) -> None:
    """A raster georeferenced by GCPs (no transform): the output carries the same GCPs
    (found by the fuzzer: a list/tuple mix-up used to raise AttributeError)."""
    from rasterio.control import GroundControlPoint

    gcps = [
        GroundControlPoint(0, 0, 500000.0, 5500000.0),
        GroundControlPoint(0, 50, 500025.0, 5500001.0),
        GroundControlPoint(40, 0, 500001.0, 5499980.0),
        GroundControlPoint(40, 50, 500030.0, 5499975.0),
    ]
    src = tmp_path / "gcps.tif"
    profile = dict(driver="GTiff", width=50, height=40, count=3, dtype="uint8")
    with rasterio.open(src, "w", gcps=gcps, crs="EPSG:32633", **profile) as ds:
        ds.write(rgb(40, 50))
    out = lib_predict(src, tmp_path / "o.tif")
    assert_valid_output(out, 50, 40)
    with rasterio.open(out) as ds:
        got, crs = ds.gcps
    assert crs == rasterio.crs.CRS.from_epsg(32633)
    assert [(g.row, g.col, g.x, g.y) for g in got] == [(g.row, g.col, g.x, g.y) for g in gcps]


@pytest.mark.parametrize(
    "transform",
    [Affine(0.5, 0.5, 500000.0, 1.0, 1.0, 5500000.0), Affine(0.5, 0, 0, 0, -1e184, 5e280)],
    ids=["zero-area-pixels", "absurd"],
)
@pytest.mark.parametrize("command", ["predict", "vectorize"])
def test_broken_geotransform(make_geotiff, tmp_path, tiny_model, transform, command) -> None:
    """Found by the fuzzer: a zero-area pixel made vectorize fail with an IndexError."""
    src = make_geotiff(np.stack([road_mask()] * (3 if command == "predict" else 1)),
                       transform=transform)  # fmt: skip
    out = tmp_path / ("o.tif" if command == "predict" else "o.gpkg")
    result = predict_cli(src, out, tiny_model) if command == "predict" else vectorize_cli(src, out)
    assert_clean_failure(result, "broken geotransform", "gdal_edit.py -unsetgt", out=out)


def test_rotated_cli(make_geotiff, tmp_path: Path, tiny_model: Path) -> None:
    transform = NORTH_UP @ Affine.rotation(30)
    plain = make_geotiff(rgb(40, 40), name="plain.tif")
    rotated = make_geotiff(rgb(40, 40), name="rotated.tif", transform=transform)
    results = [
        predict_cli(src, tmp_path / f"o{i}.tif", tiny_model)
        for i, src in enumerate((plain, rotated))
    ]
    assert all(r.exit_code == 0 for r in results), [r.output for r in results]
    a, b = (assert_valid_output(tmp_path / f"o{i}.tif", 40, 40) for i in range(2))
    np.testing.assert_array_equal(a, b)
    with rasterio.open(tmp_path / "o1.tif") as ds:
        assert ds.transform.almost_equals(transform, precision=1e-12)


def test_no_crs_warns_and_keeps_transform(make_geotiff, tmp_path: Path, tiny_model) -> None:
    src = make_geotiff(rgb(30, 30), crs=None)
    out = tmp_path / "o.tif"
    result = predict_cli(src, out, tiny_model)
    assert result.exit_code == 0, result.output
    assert result.output.startswith("Warning: ") and "no CRS" in result.output
    assert_valid_output(out, 30, 30)
    with rasterio.open(out) as ds:
        assert ds.crs is None and ds.transform == NORTH_UP


@pytest.mark.parametrize("fmt", ["PNG", "JPEG"])
def test_plain_image_without_georeferencing(tmp_path: Path, tiny_model: Path, fmt: str) -> None:
    """Warning, then an output on the pixel grid with no made-up transform: an identity
    matrix written into the GeoTIFF would put the output upside down under the image."""
    from PIL import Image

    src = tmp_path / f"photo.{fmt.lower()}"
    Image.fromarray(np.moveaxis(rgb(30, 40), 0, -1)).save(src, format=fmt)
    out = tmp_path / "o.tif"
    result = quiet_predict_cli(src, out, tiny_model)
    assert result.exit_code == 0, result.output
    assert [line for line in result.output.splitlines() if line] == [
        f"Warning: {src.name} has no CRS; the output is written on the same pixel grid without one"
    ]
    assert_valid_output(out, 40, 30)
    assert 34264 not in tiff_tags(out) and 33922 not in tiff_tags(out)  # no transform, tiepoint
    with pytest.warns(rasterio.errors.NotGeoreferencedWarning), rasterio.open(out) as ds:
        assert ds.crs is None


def test_plain_image_preview_is_quiet(tmp_path: Path, tiny_model: Path) -> None:
    from PIL import Image

    src = tmp_path / "photo.png"
    Image.fromarray(np.moveaxis(rgb(30, 40), 0, -1)).save(src)
    out = tmp_path / "o.tif"
    result = quiet_predict_cli(src, out, tiny_model, "--preview", str(tmp_path / "v.png"))
    assert result.exit_code == 0, result.output


def test_vrt_with_missing_source(make_geotiff, tmp_path: Path, tiny_model: Path) -> None:
    from rasterio.shutil import copy

    source = make_geotiff(rgb(30, 30), name="tile.tif")
    vrt = tmp_path / "mosaic.vrt"
    copy(source, vrt, driver="VRT")
    source.unlink()
    out = tmp_path / "o.tif"
    result = predict_cli(vrt, out, tiny_model)
    assert_clean_failure(result, "mosaic.vrt", "tile.tif", "does not exist", out=out)


# --------------------------------------------------------------------------- output faults


def test_missing_output_folder(make_geotiff, tmp_path: Path, tiny_model: Path) -> None:
    out = tmp_path / "no" / "such" / "o.tif"
    result = predict_cli(make_geotiff(rgb(20, 20)), out, tiny_model)
    assert_clean_failure(result, "does not exist", out=out)


def test_read_only_output_folder(make_geotiff, tmpfs, tiny_model: Path) -> None:
    """A read-only file system: refused by the up-front check (root ignores mode bits,
    so a chmod'ed folder would not test anything here)."""
    folder = tmpfs("64k", read_only=True)
    out = folder / "o.tif"
    result = predict_cli(make_geotiff(rgb(20, 20)), out, tiny_model)
    assert_clean_failure(result, "not writable", out=out)


def test_folder_refusing_writes_despite_the_check(
    make_geotiff, tmp_path: Path, tiny_model: Path, monkeypatch
) -> None:
    """The folder passes os.access but creating a file fails (ACLs, NFS root squash,
    a race): the failure is an OutputError, not a PermissionError traceback."""
    folder = tmp_path / "locked"
    folder.mkdir()
    real_mkstemp = __import__("tempfile").mkstemp

    def mkstemp(*args, **kwargs):
        if Path(kwargs.get("dir", "")) == folder:
            raise PermissionError(errno.EACCES, "Permission denied", str(folder / ".x"))
        return real_mkstemp(*args, **kwargs)

    monkeypatch.setattr("tempfile.mkstemp", mkstemp)
    out = folder / "o.tif"
    result = predict_cli(make_geotiff(rgb(20, 20)), out, tiny_model)
    assert_clean_failure(result, "cannot write o.tif", "Permission denied", out=out)


@pytest.mark.parametrize("how", ["same-path", "overwrite", "symlink", "mask"])
def test_output_path_is_the_input(make_geotiff, tmp_path: Path, tiny_model, how: str) -> None:
    src = make_geotiff(rgb(20, 20), name="in.tif")
    before = src.read_bytes()
    extra: list[str] = []
    out = src
    if how == "overwrite":
        extra = ["--overwrite"]
    elif how == "symlink":
        out = tmp_path / "link.tif"
        out.symlink_to(src)
        extra = ["--overwrite"]
    elif how == "mask":
        out = tmp_path / "o.tif"
        extra = ["--mask", str(src), "--overwrite"]
    result = predict_cli(src, out, tiny_model, *extra)
    assert_clean_failure(result, "is the input file")
    assert src.read_bytes() == before
    assert_no_temporaries(tmp_path)


def _full_disk_input(make_geotiff) -> Path:
    # Noise compresses badly: its float output is far larger than a 64 kB disk.
    return make_geotiff(rgb(300, 300, seed=7), name="noise.tif")


def test_disk_full_real_small_filesystem(make_geotiff, tmpfs, tiny_model: Path) -> None:
    folder = tmpfs("64k")
    out = folder / "o.tif"
    result = predict_cli(_full_disk_input(make_geotiff), out, tiny_model, "--float")
    assert_clean_failure(result, "disk holding", "is full", out=out)
    assert list(folder.iterdir()) == []


def test_disk_full_preview_and_mask(make_geotiff, tmpfs) -> None:
    folder = tmpfs("128k")
    out = folder / "o.tif"
    with pytest.raises(OutputError, match="is full"):
        lib_predict(
            _full_disk_input(make_geotiff),
            out,
            mask_path=folder / "m.tif",
            preview_path=folder / "p.png",
        )
    assert list(folder.iterdir()) == []


@pytest.mark.parametrize("where", ["geotiff", "cog", "preview"])
def test_disk_full_injected(make_geotiff, tmp_path: Path, monkeypatch, where: str) -> None:
    """ENOSPC raised from each write in the output path (works without root)."""
    enospc = OSError(errno.ENOSPC, "No space left on device")

    def fail(*args, **kwargs):
        raise enospc

    if where == "geotiff":
        monkeypatch.setattr("roadseg.writer.BlockWriter.add", fail)
    elif where == "cog":
        monkeypatch.setattr("rasterio.shutil.copy", fail)
    else:
        monkeypatch.setattr("PIL.Image.Image.save", fail)
    out = tmp_path / "out" / "o.tif"
    out.parent.mkdir()
    with pytest.raises(OutputError, match=r"disk holding .* is full") as info:
        lib_predict(
            make_geotiff(rgb(40, 40)),
            out,
            mask_path=out.with_name("m.tif"),
            preview_path=out.with_name("p.png"),
        )
    assert info.value.__cause__ is enospc
    assert list(out.parent.iterdir()) == []


def test_silently_dropped_blocks_are_caught(make_geotiff, tmp_path: Path) -> None:
    """GDAL drops a block it cannot write and closes without error (seen on a full
    disk); to_cog must refuse such a file rather than publish zeros."""
    src = tmp_path / "sparse.tif"
    profile = dict(
        driver="GTiff", width=128, height=128, count=1, dtype="uint8", tiled=True,
        blockxsize=64, blockysize=64, SPARSE_OK=True, crs="EPSG:32633", transform=NORTH_UP,
    )  # fmt: skip
    with rasterio.open(src, "w", **profile) as ds:
        ds.write(np.ones((1, 64, 64), np.uint8), window=rasterio.windows.Window(0, 0, 64, 64))
    with pytest.raises(IncompleteWriteError, match="block 1,0"):
        check_written(src)
    dest = tmp_path / "cog.tif"
    with pytest.raises(OutputError, match="incomplete"):
        to_cog(src, dest)
    truncated = tmp_path / "short.tif"
    whole = make_geotiff(rgb(64, 64))
    truncated.write_bytes(whole.read_bytes()[:-100])
    with pytest.raises((IncompleteWriteError, rasterio.errors.RasterioIOError)):
        check_written(truncated, read=True)


def test_concurrent_writers_leave_one_complete_file(make_geotiff, tmp_path: Path) -> None:
    """Two runs writing the same output (threads standing in for processes): both
    finish, the file is one whole GeoTIFF, nothing else is left."""
    a = make_geotiff(np.full((3, 200, 150), 50, np.uint8), name="a.tif")
    b = make_geotiff(np.full((3, 200, 150), 200, np.uint8), name="b.tif")
    outdir = tmp_path / "out"
    outdir.mkdir()
    out = outdir / "roads.tif"
    errors: list[BaseException] = []

    def run(src: Path) -> None:
        try:
            lib_predict(src, out, overwrite=True)
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(src,)) for src in (a, b, a, b)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    got = assert_valid_output(out, 150, 200)
    # One run's output, whole: not a mix of the two.
    assert any(np.allclose(got, v / 255, atol=1e-5) for v in (50, 200))
    assert [p.name for p in outdir.iterdir()] == ["roads.tif"]


def test_file_appearing_meanwhile_is_kept_without_overwrite(tmp_path: Path) -> None:
    out = tmp_path / "o.tif"
    with pytest.raises(OutputError, match="another program"):
        with atomic_output(out, overwrite=False) as tmp:
            tmp.write_bytes(b"ours")
            out.write_bytes(b"theirs")  # another process finished first
    assert out.read_bytes() == b"theirs"
    assert [p.name for p in tmp_path.iterdir()] == ["o.tif"]
    with atomic_output(out, overwrite=True) as tmp:
        tmp.write_bytes(b"ours")
    assert out.read_bytes() == b"ours"


@pytest.mark.slow
def test_two_processes_writing_the_same_output(make_geotiff, tmp_path: Path, tiny_model) -> None:
    src = make_geotiff(rgb(300, 300))
    out = tmp_path / "out" / "roads.tif"
    out.parent.mkdir()
    cmd = [
        sys.executable, "-m", "roadseg", "predict", str(src), "-o", str(out),
        "--model", str(tiny_model), "--tile-size", "32", "--overlap", "8", "--overwrite", "-q",
    ]  # fmt: skip
    procs = [subprocess.Popen(cmd, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    for proc in procs:
        _, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err
        assert "Traceback" not in err
    assert_valid_output(out, 300, 300)
    assert [p.name for p in out.parent.iterdir()] == ["roads.tif"]


# --------------------------------------------------------------------------- vectorize


VECTORIZE_INPUTS: dict[str, Callable[..., Path]] = {}


def _vector_case(name: str) -> Callable[[Callable[..., Path]], Callable[..., Path]]:
    def register(fn: Callable[..., Path]) -> Callable[..., Path]:
        VECTORIZE_INPUTS[name] = fn
        return fn

    return register


@_vector_case("one-by-one")
def _(make_geotiff, tmp_path):
    return make_geotiff(np.ones((1, 1), np.uint8))


@_vector_case("all-nodata")
def _(make_geotiff, tmp_path):
    return make_geotiff(np.full((30, 30), 255, np.uint8), nodata=255)


@_vector_case("all-nan")
def _(make_geotiff, tmp_path):
    return make_geotiff(np.full((30, 30), np.nan, np.float32))


@_vector_case("nan-probabilities")
def _(make_geotiff, tmp_path):
    prob = road_mask().astype(np.float64) * 0.9
    prob[3, 3] = np.nan
    return make_geotiff(prob)


@_vector_case("int8")
def _(make_geotiff, tmp_path):
    return make_geotiff(road_mask().astype(np.int8))


@_vector_case("int16")
def _(make_geotiff, tmp_path):
    return make_geotiff(road_mask().astype(np.int16))


@_vector_case("uint16")
def _(make_geotiff, tmp_path):
    return make_geotiff(road_mask().astype(np.uint16))


@_vector_case("int32")
def _(make_geotiff, tmp_path):
    return make_geotiff(road_mask().astype(np.int32))


@_vector_case("float64")
def _(make_geotiff, tmp_path):
    return make_geotiff(road_mask().astype(np.float64))


@_vector_case("palette-mask")
def _(make_geotiff, tmp_path):
    src = make_geotiff(road_mask(), photometric="palette")
    with rasterio.open(src, "r+") as ds:
        ds.write_colormap(1, {0: (0, 0, 0, 0), 1: (255, 40, 40, 255)})
    return src


@_vector_case("rotated")
def _(make_geotiff, tmp_path):
    return make_geotiff(road_mask(), transform=NORTH_UP @ Affine.rotation(30))


@_vector_case("south-up")
def _(make_geotiff, tmp_path):
    return make_geotiff(road_mask(), transform=Affine(0.5, 0, 500000.0, 0, 0.5, 5500000.0))


@_vector_case("no-crs")
def _(make_geotiff, tmp_path):
    return make_geotiff(road_mask(), crs=None)


@_vector_case("png")
def _(make_geotiff, tmp_path):
    from PIL import Image

    path = tmp_path / "mask.png"
    Image.fromarray(road_mask() * 255).save(path)
    return path


@pytest.mark.parametrize("case", sorted(VECTORIZE_INPUTS))
def test_vectorize_valid_odd_inputs(case: str, make_geotiff, tmp_path: Path) -> None:
    src = VECTORIZE_INPUTS[case](make_geotiff, tmp_path)
    out = tmp_path / "out.gpkg"
    result = vectorize_cli(src, out)
    assert result.exit_code == 0, result.output
    assert "Traceback" not in result.output
    from roadseg.vector_io import read_lines

    lines = read_lines(out)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with rasterio.open(src) as ds:
            left, bottom, right, top = rasterio.transform.array_bounds(
                ds.height, ds.width, ds.transform
            )
            corners = np.array(
                [ds.transform * (c, r) for c in (0, ds.width) for r in (0, ds.height)]
            )
    if case in ("rotated", "south-up"):
        # Lines stay inside the raster's footprint, whatever the orientation.
        lo, hi = corners.min(axis=0) - 1e-6, corners.max(axis=0) + 1e-6
        for line in lines.lines:
            xy = np.asarray(line.coords)
            assert np.all(xy >= lo) and np.all(xy <= hi)
        assert len(lines.lines) > 0
    assert_no_temporaries(tmp_path)


@pytest.mark.parametrize(
    ("case", "words"),
    [
        ("random-bytes", ["not a raster"]),
        ("truncated", ["corrupt or truncated"]),
        ("huge-header", ["header is corrupt"]),
        ("zero-by-zero", ["not a raster"]),
        ("vrt-missing-source", ["does not exist"]),
        ("inf", ["outside 0..1"]),
        ("complex", ["complex64"]),
        ("three-bands", ["3 bands", "single-band"]),
        ("no-crs-geojson", ["no CRS", ".gpkg"]),
        ("missing-folder", ["does not exist"]),
        ("output-is-input", ["is the input file"]),
    ],
)
def test_vectorize_clean_failures(case, words, make_geotiff, tmp_path: Path) -> None:
    src = make_geotiff(road_mask(200, 200))
    out = tmp_path / "out.gpkg"
    extra: list[str] = []
    if case == "random-bytes":
        src.write_bytes(np.random.default_rng(0).bytes(3000))
    elif case == "truncated":
        src.write_bytes(src.read_bytes()[:20000])
    elif case == "huge-header":
        src.write_bytes(tiff_claiming(10**6, 10**6))
    elif case == "zero-by-zero":
        src.write_bytes(patch_tiff_tag(patch_tiff_tag(src.read_bytes(), 256, 0), 257, 0))
    elif case == "vrt-missing-source":
        from rasterio.shutil import copy

        vrt = tmp_path / "m.vrt"
        copy(src, vrt, driver="VRT")
        src.unlink()
        src = vrt
    elif case == "inf":
        prob = road_mask().astype(np.float32)
        prob[0, 0] = np.inf
        src = make_geotiff(prob)
    elif case == "complex":
        src = make_geotiff(road_mask().astype(np.complex64))
    elif case == "three-bands":
        src = make_geotiff(np.stack([road_mask()] * 3))
    elif case == "no-crs-geojson":
        src = make_geotiff(road_mask(), crs=None)
        out = tmp_path / "out.geojson"
    elif case == "missing-folder":
        out = tmp_path / "nope" / "out.gpkg"
    elif case == "output-is-input":
        out = src.rename(src.with_suffix(".gpkg"))  # a GeoTIFF named .gpkg
        src = out
        extra = ["--overwrite"]
    before = src.read_bytes() if src.exists() else b""
    result = vectorize_cli(src, out, *extra)
    assert_clean_failure(result, *words, out=None if case == "output-is-input" else out)
    if case == "output-is-input":
        assert src.read_bytes() == before


def test_vectorize_disk_full(make_geotiff, tmpfs) -> None:
    src = make_geotiff(np.random.default_rng(0).random((300, 300)).astype(np.float32))
    for ext in (".gpkg", ".geojson"):
        folder = tmpfs("16k")
        out = folder / f"roads{ext}"
        result = vectorize_cli(src, out, "--threshold", "0.5", "--min-area", "0", "--spur", "0")
        assert_clean_failure(result, "is full", out=out)
        assert list(folder.iterdir()) == []


def test_vectorize_disk_full_injected(make_geotiff, tmp_path: Path, monkeypatch) -> None:
    """sqlite's own disk-full error, raised from inside the GeoPackage writer."""
    import sqlite3

    import roadseg.vector_io

    real = sqlite3

    class _Shim:
        Error = real.Error

        @staticmethod
        def connect(*args, **kwargs):
            con = real.connect(*args, **kwargs)
            con.execute("PRAGMA max_page_count = 2")  # the database is full at 2 pages
            return con

    monkeypatch.setattr(roadseg.vector_io, "sqlite3", _Shim)
    out = tmp_path / "out" / "roads.gpkg"
    out.parent.mkdir()
    result = vectorize_cli(make_geotiff(road_mask()), out)
    assert_clean_failure(result, "is full", out=out)
    assert list(out.parent.iterdir()) == []


# --------------------------------------------------------------------------- interruptions


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM, signal.SIGKILL])
def test_signal_mid_vectorize(sig: int, tmp_path: Path) -> None:
    """Like tests/test_interrupt.py for predict: vectorize of a 4000 x 4000 mask in
    512-pixel chunks takes seconds, long enough to be interrupted inside its loop."""
    n = 4000
    rows = np.arange(n)[:, None]
    cols = np.arange(n)[None, :]
    prob = np.where(((rows % 97) < 6) | ((cols % 131) < 5), 230, 10).astype(np.uint8)
    src = tmp_path / "big.tif"
    with rasterio.open(
        src, "w", driver="GTiff", width=n, height=n, count=1, dtype="uint8",
        crs="EPSG:32633", transform=NORTH_UP, tiled=True, compress="deflate",
    ) as ds:  # fmt: skip
        ds.write(prob[None])
    del prob
    outdir = tmp_path / "out"
    outdir.mkdir()
    out = outdir / "roads.gpkg"
    cmd = [sys.executable, "-m", "roadseg", "vectorize", str(src), "-o", str(out)]
    proc = subprocess.Popen(
        [*cmd, "--chunk-size", "512", "-q"],
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=sigint_default,
    )
    deadline = time.monotonic() + 60
    while not any(p.name.startswith(".") for p in outdir.iterdir()):
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            pytest.fail(f"vectorize never started its chunks: {proc.stderr.read()}")
        time.sleep(0.02)
    time.sleep(0.5)  # inside the chunk loop
    assert proc.poll() is None, "vectorize finished before it could be interrupted"
    os.kill(proc.pid, sig)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode != 0
    assert not out.exists()
    assert "Traceback" not in err
    if sig != signal.SIGKILL:
        assert list(outdir.iterdir()) == []
    else:
        shutil.rmtree(outdir)
