"""Shared fixtures: one factory for GeoTIFFs with a real CRS and transform,
and one Dask LocalCluster for the tests that run on Dask."""

from __future__ import annotations

import logging
import os
import signal
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import rasterio
from affine import Affine

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def sigint_default() -> None:
    """``preexec_fn`` for a child that a test interrupts with SIGINT.

    A shell running the tests in the background (``cmd &``) starts them with
    SIGINT ignored, and Python then leaves it ignored in the child (as
    ``nohup`` means it to); the child must see Ctrl-C as a user's terminal
    would send it.
    """
    signal.signal(signal.SIGINT, signal.SIG_DFL)


#: ../shared/data beside the repository: real imagery, absent on a user's clone.
SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"

#: A CRS with no EPSG code (Albers on WGS84, as in the SpaceNet custom-proj chip).
CUSTOM_WKT = (
    'PROJCS["custom_albers",GEOGCS["WGS 84",DATUM["WGS_1984",SPHEROID["WGS 84",6378137,'
    '298.257223563]],PRIMEM["Greenwich",0],UNIT["degree",0.0174532925199433]],'
    'PROJECTION["Albers_Conic_Equal_Area"],PARAMETER["latitude_of_center",23],'
    'PARAMETER["longitude_of_center",-96],PARAMETER["standard_parallel_1",29.5],'
    'PARAMETER["standard_parallel_2",45.5],PARAMETER["false_easting",0],'
    'PARAMETER["false_northing",0],UNIT["metre",1]]'
)


def shared(*parts: str) -> Path:
    """A file under ../shared/data, or skip the test when it is absent."""
    path = SHARED_DATA.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"{path} not present (real data lives in ../shared/data)")
    return path


@pytest.fixture
def make_geotiff(tmp_path: Path) -> Callable[..., Path]:
    """Factory: write ``data`` (bands, rows, cols) or (rows, cols) as a GeoTIFF.

    Defaults: UTM 33N, 0.5 m pixels.
    """
    counter = iter(range(10**6))

    def factory(
        data: np.ndarray,
        *,
        name: str | None = None,
        crs: Any = "EPSG:32633",
        transform: Affine | None = None,
        nodata: float | None = None,
        **profile: Any,
    ) -> Path:
        arr = data if data.ndim == 3 else data[None]
        path = tmp_path / (name or f"raster{next(counter)}.tif")
        with rasterio.open(
            path,
            "w",
            driver="GTiff",
            width=arr.shape[2],
            height=arr.shape[1],
            count=arr.shape[0],
            dtype=arr.dtype,
            crs=crs,
            transform=transform or Affine(0.5, 0, 500000.0, 0, -0.5, 5500000.0),
            nodata=nodata,
            **profile,
        ) as dst:
            dst.write(arr)
        return path

    return factory


@pytest.fixture
def rgb_array() -> Callable[[int, int], np.ndarray]:
    """Factory for a smooth-ish random uint8 RGB array (3, h, w)."""

    def factory(height: int, width: int, seed: int = 0) -> np.ndarray:
        rng = np.random.default_rng(seed)
        return rng.integers(0, 256, size=(3, height, width), dtype=np.uint8)

    return factory


@pytest.fixture(scope="session")
def _local_cluster() -> Iterator[Any]:
    """One LocalCluster of 2 worker processes with one thread each, for the session."""
    distributed = pytest.importorskip("distributed")
    from roadseg.distributed import thread_env

    with distributed.LocalCluster(
        n_workers=2,
        processes=True,
        threads_per_worker=1,
        env=thread_env(1),
        dashboard_address=":0",
        silence_logs=logging.ERROR,
    ) as cluster:
        yield cluster


@pytest.fixture(scope="module")
def scheduler(request: pytest.FixtureRequest, _local_cluster: Any) -> Iterator[str]:
    """Address of the shared LocalCluster (skips without dask[distributed]).

    Task functions defined in the test module travel to the workers by value,
    so the workers need not import it.
    """
    import cloudpickle

    cloudpickle.register_pickle_by_value(request.module)
    yield _local_cluster.scheduler_address
    cloudpickle.unregister_pickle_by_value(request.module)


#: The widths of the tiny ResUNet the export and engine tests convert.
TINY_FILTERS = (4, 8, 8, 16)


@pytest.fixture(scope="session")
def tiny_resunet() -> Any:
    """A ResUNet of widths (4, 8, 8, 16), free height and width, 3 bands, with
    random batch-norm statistics (gamma, beta, moving mean and variance), so
    that folding them into convolutions is really exercised."""
    from roadseg.model import build_resunet

    model = build_resunet((None, None, 3), filters=TINY_FILTERS)
    rng = np.random.default_rng(15)
    for layer in model.layers:
        if type(layer).__name__ == "BatchNormalization":
            channels = layer.gamma.shape[0]
            layer.gamma.assign(rng.uniform(0.5, 1.5, channels))
            layer.beta.assign(rng.normal(0.0, 0.3, channels))
            layer.moving_mean.assign(rng.normal(0.0, 0.3, channels))
            layer.moving_variance.assign(rng.uniform(0.3, 2.0, channels))
    return model


@pytest.fixture(scope="session")
def tiny_model_file(tiny_resunet: Any, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """:func:`tiny_resunet` saved as a roadseg model file (tile 64, GSD 0.5 m)."""
    from roadseg.model import ModelInfo, save_model

    info = ModelInfo(
        bands=3,
        normalization="percentile",
        tile_size=64,
        gsd=0.5,
        threshold=0.45,
        filters=TINY_FILTERS,
        provenance={"trained_by": "tests/conftest.py", "note": "random weights"},
    )
    path = tmp_path_factory.mktemp("tiny") / "tiny.keras"
    return save_model(tiny_resunet, path, info)
