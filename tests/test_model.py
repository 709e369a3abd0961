from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np
import pytest

keras = pytest.importorskip("keras")

from roadseg.errors import ModelError  # noqa: E402
from roadseg.model import (  # noqa: E402
    METADATA_MEMBER,
    ModelInfo,
    build_resunet,
    bundled_model_path,
    load_model,
    save_model,
)


def test_default_width_has_the_seed_parameter_count() -> None:
    model = build_resunet((224, 224, 3))
    assert model.count_params() == 8_227_393


@pytest.mark.parametrize("size", [224, 320])
def test_output_shape_follows_input(size: int) -> None:
    model = build_resunet((None, None, 3), filters=(4, 8, 8, 16))
    out = model(np.zeros((1, size, size, 3), dtype="float32"), training=False)
    assert tuple(out.shape) == (1, size, size, 1)
    assert float(np.min(out)) >= 0.0 and float(np.max(out)) <= 1.0


def test_layers_are_named_by_place() -> None:
    model = build_resunet((64, 64, 4), filters=(4, 8, 8, 16))
    names = {layer.name for layer in model.layers}
    assert {"enc1_conv1", "enc2_conv1", "bridge_shortcut", "dec3_add", "road_probability"} <= names
    assert model.input_shape == (None, 64, 64, 4)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"input_shape": (225, 224, 3)},
        {"input_shape": (224, 224)},
        {"input_shape": (224, 224, 0)},
        {"filters": (8, 16, 32)},
        {"filters": (8, 16, 0, 32)},
    ],
)
def test_builder_validates(kwargs: dict) -> None:
    with pytest.raises(ValueError):
        build_resunet(**kwargs)


def test_save_and_load_roundtrip(tmp_path: Path) -> None:
    model = build_resunet((None, None, 3), filters=(4, 8, 8, 16))
    info = ModelInfo(threshold=0.37, gsd=0.5, filters=(4, 8, 8, 16), provenance={"data": "x"})
    path = save_model(model, tmp_path / "m.keras", info)
    with zipfile.ZipFile(path) as zf:
        assert METADATA_MEMBER in zf.namelist()
    loaded = load_model(path)
    assert loaded.info == info
    assert len(loaded.sha256) == 64
    x = np.random.default_rng(0).random((1, 64, 64, 3), dtype=np.float32)
    np.testing.assert_allclose(loaded.model(x), model(x), atol=1e-6)
    # The extra member does not stop plain Keras from loading the file.
    keras.saving.load_model(path, compile=False)


def test_plain_keras_file_loads_with_defaults_and_warning(tmp_path: Path, caplog) -> None:
    model = build_resunet((224, 224, 3), filters=(4, 8, 8, 16))
    model.save(tmp_path / "plain.keras")
    loaded = load_model(tmp_path / "plain.keras")
    assert loaded.info.bands == 3
    assert loaded.info.tile_size == 224
    assert "no roadseg metadata" in caplog.text


def test_missing_and_bad_model_files(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="does not exist"):
        load_model(tmp_path / "nope.keras")
    bad = tmp_path / "bad.keras"
    bad.write_bytes(b"not a zip")
    with pytest.raises(ModelError, match="not a Keras model file"):
        load_model(bad)


def test_non_segmentation_model_is_refused(tmp_path: Path) -> None:
    inp = keras.Input((8,))
    model = keras.Model(inp, keras.layers.Dense(2)(inp))
    model.save(tmp_path / "dense.keras")
    with pytest.raises(ModelError, match="not a segmentation model"):
        load_model(tmp_path / "dense.keras")


def test_bundled_model_is_trained_and_has_metadata() -> None:
    path = bundled_model_path()
    if not path.exists():
        pytest.fail("the bundled model roadseg/models/roadseg_default.keras is missing")
    loaded = load_model(path)
    prov = loaded.info.provenance
    # Made by scripts/train_default_model.py through roadseg.train, like any user's model.
    assert prov.get("trained_by") == "roadseg train"
    assert prov.get("epochs_trained", 0) > 0 and prov.get("steps_per_epoch", 0) > 0
    assert 0 < loaded.info.threshold < 1
    # It reads inputs at its training GSD, normalised the same way for every sensor.
    assert loaded.info.gsd == 0.6 and loaded.info.normalization == "percentile"
