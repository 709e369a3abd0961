"""``roadseg vectorize`` on Dask (roadseg.vectorize with ``workers=`` / ``scheduler=``).

The Dask tests share one LocalCluster of 2 worker processes (one thread each) and
skip when dask[distributed] is not installed. Every run on Dask is compared with
the in-process run of the same raster and options: GeoJSON byte for byte, and the
GeoPackage's feature rows (geometry blobs and attributes; the file itself holds
the time it was written).
"""

from __future__ import annotations

import sqlite3
import sys
from pathlib import Path

import numpy as np
import pytest
import rasterio
from click.testing import CliRunner
from scipy import ndimage as ndi

from roadseg import synthetic
from roadseg.cli import cli
from roadseg.distributed import INSTALL_HINT, MissingDependencyError
from roadseg.errors import RoadsegError, UnsupportedRasterError
from roadseg.vectorize import VectorizeOptions, vectorize_raster
from roadseg.vectorize.tasks import DaskMap

SPEC = synthetic.SceneSpec(seed=3)


def write(path: Path, data: np.ndarray, **tags: str) -> Path:
    with rasterio.open(
        path, "w", driver="GTiff", width=data.shape[1], height=data.shape[0], count=1,
        dtype=data.dtype, crs=SPEC.crs, transform=synthetic.scene_transform(SPEC),
        tiled=True, blockxsize=64, blockysize=64,
    ) as dst:  # fmt: skip
        dst.write(data, 1)
        dst.update_tags(**tags)
    return path


def degraded_scene(size: int = 640) -> np.ndarray:
    """A synthetic road mask with speckle, holes and cuts (all of the cleaning works)."""
    mask = synthetic.generate_scene(size, size, SPEC).mask.astype(bool)
    rng = np.random.default_rng(7)
    mask |= ndi.binary_dilation(rng.random(mask.shape) < 0.001)  # speckle
    mask &= ~ndi.binary_dilation(rng.random(mask.shape) < 0.002)  # holes in roads
    mask[:, 301:304] = False  # a gap to bridge, across chunk borders
    return mask


@pytest.fixture(scope="module")
def mask_tif(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("mask")
    return write(folder / "scene_mask.tif", degraded_scene().astype(np.uint8) * 255)


@pytest.fixture(scope="module")
def prob_tif(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Probabilities as roadseg predict writes them (uint8, value = p * 254)."""
    mask = degraded_scene()
    rng = np.random.default_rng(11)
    prob = ndi.gaussian_filter(mask.astype(np.float32), 1.5) * 0.9
    prob += ndi.gaussian_filter(rng.random(mask.shape).astype(np.float32), 2.0) * 0.3 - 0.1
    data = np.rint(np.clip(prob, 0, 1) * 254).astype(np.uint8)
    folder = tmp_path_factory.mktemp("prob")
    return write(folder / "scene_roads.tif", data, ROADSEG_VALUE="probability * 254")


def gpkg_rows(path: Path) -> list[tuple]:
    with sqlite3.connect(path) as db:
        return db.execute("SELECT * FROM roads ORDER BY fid").fetchall()


def no_temporaries(folder: Path) -> bool:
    return not list(folder.glob(".roadseg-*"))


def same_result(a, b) -> bool:
    keys = ("lines", "junctions", "length_m", "kind", "threshold", "halo", "tags")
    return all(getattr(a, k) == getattr(b, k) for k in keys)


# --------------------------------------------------------------------------- on Dask


@pytest.mark.parametrize(
    ("raster", "chunk", "halo", "extra"),
    [
        ("mask", 128, 16, {}),  # 25 chunks; the 16 px halo is too small and grows
        ("mask", 200, 64, {"hole_area_m2": 0.0}),  # ragged last chunks, no hole filling
        ("prob", 96, 16, {"threshold": 0.5, "low": 0.3}),  # 49 chunks, hysteresis
    ],
)
def test_dask_equals_in_process(
    scheduler: str, mask_tif, prob_tif, tmp_path: Path, raster, chunk, halo, extra
) -> None:
    src = mask_tif if raster == "mask" else prob_tif
    options = VectorizeOptions(chunk_size=chunk, halo=halo, **extra)
    for ext in ("geojson", "gpkg"):
        here = vectorize_raster(src, tmp_path / f"here.{ext}", options)
        there = vectorize_raster(src, tmp_path / f"dask.{ext}", options, scheduler=scheduler)
        assert here.lines > 20 and here.junctions > 5
        assert same_result(here, there)
        assert (here.where, there.where) == ("in-process", f"Dask scheduler {scheduler}")
    if chunk == 128:
        assert here.halo > halo
    assert (tmp_path / "here.geojson").read_bytes() == (tmp_path / "dask.geojson").read_bytes()
    assert gpkg_rows(tmp_path / "here.gpkg") == gpkg_rows(tmp_path / "dask.gpkg")
    assert no_temporaries(tmp_path)


def test_a_plaza_makes_the_halo_grow_far_on_dask(scheduler: str, tmp_path: Path) -> None:
    # A 120 x 120 px plaza takes ~120 thinning steps; a 16 px halo is far too small.
    mask = np.zeros((300, 400), np.uint8)
    mask[97:104, :] = 1
    mask[150:270, 100:220] = 1
    mask[100:150, 155:165] = 1
    src = write(tmp_path / "plaza.tif", mask)
    options = VectorizeOptions(chunk_size=64, halo=16, progress=True)
    here = vectorize_raster(src, tmp_path / "here.geojson", options)
    there = vectorize_raster(src, tmp_path / "dask.geojson", options, scheduler=scheduler)
    assert here.halo > 100 and same_result(here, there)
    assert (tmp_path / "here.geojson").read_bytes() == (tmp_path / "dask.geojson").read_bytes()


def test_a_bad_raster_fails_once_with_its_own_message(scheduler: str, tmp_path: Path) -> None:
    data = np.zeros((200, 200), np.float32)
    data[150:160, 150:160] = 3.0  # not a probability; found by a worker
    src = write(tmp_path / "bad.tif", data)
    out = tmp_path / "out.gpkg"
    options = VectorizeOptions(chunk_size=64)
    with pytest.raises(UnsupportedRasterError, match="holds 3, outside 0..1"):
        vectorize_raster(src, out, options, scheduler=scheduler)
    assert not out.exists() and no_temporaries(tmp_path)


def _flaky(item: int, marker: str) -> int:
    """Fails the first time it runs for an item (another process may run it again)."""
    flag = Path(f"{marker}.{item}")
    if not flag.exists():
        flag.touch()
        raise OSError("transient failure")
    return item * 10


def _broken(item: int) -> int:
    raise ValueError(f"broken {item}")


def test_failed_tasks_are_retried(scheduler: str, tmp_path: Path) -> None:
    distributed = pytest.importorskip("distributed")
    with distributed.Client(scheduler) as client:
        got = dict(DaskMap(client, retries=2)(_flaky, [1, 2, 3], str(tmp_path / "flag")))
        assert got == {0: 10, 1: 20, 2: 30}
        with pytest.raises(RoadsegError, match=r"of 2 failed on Dask \(ValueError: broken"):
            list(DaskMap(client, retries=1)(_broken, [1, 2]))


# --------------------------------------------------------------------------- the command


def test_cli_workers_2_equals_in_process(mask_tif: Path, tmp_path: Path) -> None:
    pytest.importorskip("distributed")
    runner = CliRunner()
    common = ["vectorize", str(mask_tif), "--chunk-size", "128"]
    here = runner.invoke(cli, [*common, "-o", str(tmp_path / "here.geojson")])
    assert here.exit_code == 0, here.output
    there = runner.invoke(cli, [*common, "-o", str(tmp_path / "dask.geojson"), "--workers", "2"])
    assert there.exit_code == 0, there.output
    assert "2 local worker processes" in there.output
    assert (tmp_path / "here.geojson").read_bytes() == (tmp_path / "dask.geojson").read_bytes()
    assert no_temporaries(tmp_path)


def test_cli_workers_and_scheduler_together_is_a_usage_error(mask_tif, tmp_path) -> None:
    out = tmp_path / "x.gpkg"
    args = ["vectorize", str(mask_tif), "-o", str(out), "--workers", "2", "--scheduler", "x:1"]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 2 and "not both" in result.output
    assert not out.exists()


def test_without_dask_the_flags_say_how_to_install_it(
    mask_tif: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "distributed", None)  # import fails as if absent
    out = tmp_path / "x.gpkg"
    with pytest.raises(MissingDependencyError, match="roadseg\\[dask\\]"):
        vectorize_raster(mask_tif, out, workers=2)
    for flag in (["--workers", "2"], ["--scheduler", "tcp://127.0.0.1:8786"]):
        result = CliRunner().invoke(cli, ["vectorize", str(mask_tif), "-o", str(out), *flag])
        assert result.exit_code == 1
        lines = result.output.strip().splitlines()
        assert len(lines) == 1 and INSTALL_HINT in lines[0], result.output
        assert "Traceback" not in result.output
    assert not out.exists()
