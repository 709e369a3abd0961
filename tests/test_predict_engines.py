"""``roadseg predict --engine``: each engine's map against TensorFlow float32."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import rasterio
from click.testing import CliRunner

from roadseg import encoding as enc
from roadseg.cli import cli
from roadseg.engines import PREDICT_ENGINES, available_engines, resolve_engine
from roadseg.errors import EngineError
from roadseg.model import load_model
from roadseg.predict import PredictOptions, predict_raster


def _scene(make_geotiff) -> Path:
    rng = np.random.default_rng(8)
    data = rng.integers(0, 256, (3, 200, 260), dtype=np.uint8)
    data[:, 90:110, :] = 60  # a road-like band for something to find
    return make_geotiff(data, name="scene.tif")


@pytest.mark.parametrize("engine", ["onnxruntime", "openvino"])
def test_an_engine_agrees_with_tensorflow(make_geotiff, tiny_model_file, tmp_path, engine) -> None:
    if engine not in available_engines():
        pytest.skip(f"{engine} is not installed")
    src = _scene(make_geotiff)
    model = load_model(tiny_model_file)
    opts = PredictOptions(as_float=True, precision="float32", overlap=16, tta="flip")
    predict_raster(src, tmp_path / "tf.tif", model, opts)
    result = predict_raster(
        src, tmp_path / "e.tif", model, PredictOptions(**{**opts.__dict__, "engine": engine})
    )
    assert result.tags[enc.TAG_ENGINE] == engine
    assert result.tags[enc.TAG_PRECISION] == "float32"
    with rasterio.open(tmp_path / "tf.tif") as a, rasterio.open(tmp_path / "e.tif") as b:
        diff = np.abs(a.read(1) - b.read(1))
        assert b.tags()[enc.TAG_ENGINE] == engine
    assert diff.max() < 1e-4


def test_auto_is_an_installed_engine() -> None:
    assert resolve_engine("auto") in {"tensorflow", *available_engines()}
    assert resolve_engine("tensorflow") == "tensorflow"
    with pytest.raises(EngineError, match="unknown engine"):
        resolve_engine("tpu")


def test_the_cli_offers_the_library_engines() -> None:
    from roadseg.cli.predict import predict

    option = next(p for p in predict.params if p.name == "engine")
    assert tuple(option.type.choices) == PREDICT_ENGINES  # type: ignore[attr-defined]


def test_a_precision_the_engine_cannot_run_is_one_line(
    make_geotiff, tiny_model_file, tmp_path
) -> None:
    if "onnxruntime" not in available_engines():
        pytest.skip("onnxruntime is not installed")
    src = _scene(make_geotiff)
    out = tmp_path / "o.tif"
    args = ["predict", str(src), "-o", str(out), "-m", str(tiny_model_file), "--quiet"]
    result = CliRunner().invoke(cli, [*args, "--engine", "onnxruntime", "--precision", "bfloat16"])
    assert result.exit_code == 1
    assert "onnxruntime engine cannot run precision 'bfloat16'" in result.output
    assert "Traceback" not in result.output and len(result.output.strip().splitlines()) == 1
    assert not out.exists()
