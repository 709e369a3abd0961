"""The same input, model and options give bit-identical files (issue 6).

roadseg writes no timestamps into its GeoTIFFs or PNG previews, so the files
themselves are compared byte for byte. GeoPackages carry the timestamps the
GeoPackage standard requires (``gpkg_contents.last_change``); everything else
in them must match.
"""

from __future__ import annotations

import re
import sqlite3
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from roadseg.cli import cli

#: TIFF tags that would hold a time or the machine: DateTime, HostComputer.
VOLATILE_TIFF_TAGS = {306, 316}


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from roadseg.model import ModelInfo, build_resunet, save_model

    model = build_resunet((None, None, 3), filters=(4, 8, 8, 16))
    path = tmp_path_factory.mktemp("model") / "tiny.keras"
    return save_model(model, path, ModelInfo(filters=(4, 8, 8, 16), tile_size=32))


@pytest.fixture
def scene(make_geotiff) -> Path:
    rng = np.random.default_rng(11)
    data = rng.integers(0, 256, (3, 90, 110), dtype=np.uint8)
    data[:, :4, :7] = 0
    return make_geotiff(data, nodata=0, name="scene.tif")


def predict_args(src: Path, folder: Path, model: Path, *extra: str) -> list[str]:
    return [
        "predict", str(src), "-o", str(folder / "p.tif"), "--model", str(model),
        "--mask", str(folder / "m.tif"), "--preview", str(folder / "v.png"),
        "--tile-size", "32", "--overlap", "8", "--batch-size", "3", "-q", *extra,
    ]  # fmt: skip


def run_predict(src: Path, folder: Path, model: Path, *extra: str) -> dict[str, bytes]:
    folder.mkdir()
    result = CliRunner().invoke(cli, predict_args(src, folder, model, *extra))
    assert result.exit_code == 0, result.output
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def tiff_tags(blob: bytes) -> set[int]:
    """Tag numbers in every IFD of a little-endian classic or Big TIFF."""
    assert blob[:2] == b"II"
    big = struct.unpack_from("<H", blob, 2)[0] == 43
    tags: set[int] = set()
    ifd = struct.unpack_from("<Q" if big else "<I", blob, 8 if big else 4)[0]
    while ifd:
        if big:
            count = struct.unpack_from("<Q", blob, ifd)[0]
            tags |= {struct.unpack_from("<H", blob, ifd + 8 + 20 * i)[0] for i in range(count)}
            ifd = struct.unpack_from("<Q", blob, ifd + 8 + 20 * count)[0]
        else:
            count = struct.unpack_from("<H", blob, ifd)[0]
            tags |= {struct.unpack_from("<H", blob, ifd + 2 + 12 * i)[0] for i in range(count)}
            ifd = struct.unpack_from("<I", blob, ifd + 2 + 12 * count)[0]
    return tags


@pytest.mark.parametrize("extra", [(), ("--float", "--tta", "flip")], ids=["uint8", "float-tta"])
def test_predict_twice_gives_identical_bytes(scene, tmp_path, tiny_model, extra) -> None:
    first = run_predict(scene, tmp_path / "a", tiny_model, *extra)
    second = run_predict(scene, tmp_path / "b", tiny_model, *extra)
    assert sorted(first) == ["m.tif", "p.tif", "v.png"]
    for name in first:
        assert first[name] == second[name], f"{name} differs between two identical runs"


def test_outputs_hold_no_timestamps(scene, tmp_path, tiny_model) -> None:
    files = run_predict(scene, tmp_path / "a", tiny_model)
    for name in ("p.tif", "m.tif"):
        assert not tiff_tags(files[name]) & VOLATILE_TIFF_TAGS, name
    assert b"tIME" not in files["v.png"]


@pytest.mark.slow
def test_predict_in_another_process_gives_identical_bytes(scene, tmp_path, tiny_model) -> None:
    here = run_predict(scene, tmp_path / "a", tiny_model)
    folder = tmp_path / "b"
    folder.mkdir()
    proc = subprocess.run(
        [sys.executable, "-m", "roadseg", *predict_args(scene, folder, tiny_model)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    for name, blob in here.items():
        assert (folder / name).read_bytes() == blob, name


def _gpkg_without_timestamps(path: Path) -> list[str]:
    con = sqlite3.connect(path)
    try:
        dump = list(con.iterdump())
    finally:
        con.close()
    stamp = re.compile(r"'\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z'")
    return [stamp.sub("'<time>'", line) for line in dump]


def test_vectorize_twice_gives_identical_results(make_geotiff, tmp_path) -> None:
    mask = np.zeros((120, 150), np.uint8)
    mask[50:58, :] = 1
    mask[:, 70:77] = 1
    mask[10:14, 10:60] = 1
    src = make_geotiff(mask)
    outputs: dict[str, list[Path]] = {".gpkg": [], ".geojson": []}
    for ext, paths in outputs.items():
        for i in range(2):
            out = tmp_path / f"roads{i}{ext}"
            result = CliRunner().invoke(cli, ["vectorize", str(src), "-o", str(out), "-q"])
            assert result.exit_code == 0, result.output
            paths.append(out)
    a, b = outputs[".geojson"]
    assert a.read_bytes() == b.read_bytes()
    a, b = outputs[".gpkg"]
    assert _gpkg_without_timestamps(a) == _gpkg_without_timestamps(b)
    assert any("LINESTRING" in line or "roads" in line for line in _gpkg_without_timestamps(a))
