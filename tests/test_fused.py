"""The inference copy of a ResUNet with its batch norms folded (roadseg.fused)."""

from __future__ import annotations

import numpy as np
import pytest

keras = pytest.importorskip("keras")

from roadseg.fused import fold_batch_norms, folded_pairs, inference_network  # noqa: E402
from roadseg.model import build_resunet, load_model  # noqa: E402

FILTERS = (4, 8, 8, 16)


def _random_resunet(bands: int = 3):
    keras.utils.set_random_seed(5)
    model = build_resunet((None, None, bands), FILTERS)
    rng = np.random.default_rng(5)
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            n = layer.get_weights()[0].shape[0]
            layer.set_weights(
                [
                    rng.uniform(0.5, 1.5, n).astype("float32"),  # gamma
                    rng.normal(0, 0.2, n).astype("float32"),  # beta
                    rng.normal(0, 0.2, n).astype("float32"),  # moving mean
                    rng.uniform(0.3, 2.0, n).astype("float32"),  # moving variance
                ]
            )
    return model


@pytest.mark.parametrize(("height", "width"), [(64, 64), (64, 128)])
def test_folding_keeps_the_probabilities(height: int, width: int) -> None:
    model = _random_resunet()
    folded = fold_batch_norms(model, FILTERS, 3)
    assert len(folded_pairs(model)) == 7
    n_bn = sum(isinstance(x, keras.layers.BatchNormalization) for x in model.layers)
    n_bn_folded = sum(isinstance(x, keras.layers.BatchNormalization) for x in folded.layers)
    assert n_bn - n_bn_folded == 7  # one per pair, the rest stays
    x = np.random.default_rng(0).random((2, height, width, 3), dtype=np.float32)
    want = np.asarray(model(x, training=False))
    got = np.asarray(folded(x, training=False))
    np.testing.assert_allclose(got, want, atol=2e-5)


def test_the_bundled_model_folds_within_float32_noise() -> None:
    loaded = load_model(None)
    network = inference_network(loaded.model, loaded.info.filters, loaded.info.bands, "float32")
    assert len(network.layers) < len(loaded.model.layers)
    x = np.random.default_rng(1).random((2, 224, 224, 3), dtype=np.float32)
    diff = np.abs(np.asarray(network(x)) - np.asarray(loaded.model(x)))
    assert diff.max() < 1e-4


def test_a_model_of_unknown_widths_runs_unfolded() -> None:
    inp = keras.Input((None, None, 3))
    model = keras.Model(inp, keras.layers.Conv2D(1, 1, activation="sigmoid")(inp))
    assert inference_network(model, (), 3, "float32") is model
    with pytest.raises(ValueError, match="not a roadseg ResUNet"):
        fold_batch_norms(model, FILTERS, 3)
