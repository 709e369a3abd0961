"""The inference function: test-time augmentation and the starting GPU batch size."""

from __future__ import annotations

import numpy as np
import pytest


@pytest.mark.parametrize("tta", ["none", "flip", "d4"])
def test_tta_averages_inverse_transformed_outputs(tta) -> None:
    keras = pytest.importorskip("keras")
    from roadseg.inference import make_infer_fn, tta_transforms

    inp = keras.Input((None, None, 3))
    out = keras.layers.Conv2D(1, 3, padding="same", use_bias=False)(inp)
    model = keras.Model(inp, out)
    rng = np.random.default_rng(0)
    model.set_weights([rng.normal(size=(3, 3, 3, 1)).astype("float32")])
    x = rng.random((2, 16, 16, 3), dtype=np.float32)
    got = make_infer_fn(model, 16, 3, tta)(x)
    expected = np.zeros((2, 16, 16), dtype=np.float32)
    for k, flip in tta_transforms(tta):
        xt = x[:, :, ::-1] if flip else x
        xt = np.rot90(xt, k, axes=(1, 2))
        yt = np.asarray(model(np.ascontiguousarray(xt)))[..., 0]
        yt = np.rot90(yt, -k, axes=(1, 2))
        expected += yt[:, :, ::-1] if flip else yt
    expected /= len(tta_transforms(tta))
    np.testing.assert_allclose(got, expected, atol=1e-5)


def test_batch_for_free_memory_arithmetic() -> None:
    from roadseg.inference import batch_for_free_memory, tile_activation_bytes

    # 12 tensors x (64 + 128/4 + 256/16 + 512/64 = 120 channels/pixel) x 224^2 px x 2 bytes
    per_tile = tile_activation_bytes(224, (64, 128, 256, 512), 2)
    assert per_tile == 12 * 120 * 224 * 224 * 2
    assert batch_for_free_memory(16 * per_tile, per_tile, headroom=0.25) == 12
    assert batch_for_free_memory(per_tile // 3, per_tile) == 1  # never below one tile
    assert batch_for_free_memory(10**15, per_tile) == 64  # capped
    with pytest.raises(ValueError, match="positive"):
        batch_for_free_memory(10**9, 0)
    with pytest.raises(ValueError, match="headroom"):
        batch_for_free_memory(10**9, 1, headroom=1.0)


def test_starting_batch_size_without_a_gpu_is_the_requested_one() -> None:
    from roadseg.inference import starting_batch_size

    def no_query() -> int:
        raise AssertionError("free memory asked without a GPU")

    filters = (64, 128, 256, 512)
    # This machine has no GPU: TensorFlow's own answer.
    assert starting_batch_size(8, 224, filters, 2, free_bytes=no_query) == 8
    assert starting_batch_size(8, 224, filters, 2, has_gpu=lambda: False) == 8
    gpu = {"has_gpu": lambda: True}
    assert starting_batch_size(8, 224, filters, 2, free_bytes=lambda: None, **gpu) == 8
    assert starting_batch_size(8, 224, (), 2, free_bytes=lambda: 10**12, **gpu) == 8
    per_tile = 12 * 120 * 224 * 224 * 2
    assert starting_batch_size(8, 224, filters, 2, free_bytes=lambda: 40 * per_tile, **gpu) == 30


def test_gpu_free_bytes_reads_nvidia_smi(monkeypatch) -> None:
    import subprocess

    from roadseg.inference import gpu_free_bytes

    def smi(stdout: str):
        def run(cmd, **kw):
            assert cmd[0] == "nvidia-smi"
            return subprocess.CompletedProcess(cmd, 0, stdout=stdout)

        return run

    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    assert gpu_free_bytes(smi("0, 10000\n1, 2000\n")) == 10000 << 20
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "1")
    assert gpu_free_bytes(smi("0, 10000\n1, 2000\n")) == 2000 << 20
    assert gpu_free_bytes(smi("[N/A]\n")) is None

    def missing(cmd, **kw):
        raise FileNotFoundError(cmd[0])

    assert gpu_free_bytes(missing) is None


def test_tta_copies_go_through_the_model_one_batch_at_a_time() -> None:
    from roadseg.inference import tta_transforms, with_tta

    sizes: list[int] = []

    def call(x: np.ndarray) -> np.ndarray:
        sizes.append(len(x))
        return x[..., 0] * 2.0

    x = np.random.default_rng(1).random((3, 8, 8, 2), dtype=np.float32)
    got = with_tta(call, tta_transforms("d4"))(x)
    assert sizes == [3] * 8  # eight calls of the batch, never one of 24 tiles
    np.testing.assert_allclose(got, x[..., 0] * 2.0, rtol=1e-6)  # the transforms invert exactly


def test_tiles_within_memory() -> None:
    from roadseg.inference import tile_activation_bytes, tiles_within_memory

    filters = (16, 32, 64, 128)
    per_tile = tile_activation_bytes(224, filters, 4)
    assert tiles_within_memory(10 * per_tile + 1, 224, filters, 4) == 10
    assert tiles_within_memory(per_tile // 2, 224, filters, 4) == 1  # never below one tile
    assert tiles_within_memory(10 * per_tile, 224, filters, 2) == 20  # half precision: twice
    assert tiles_within_memory(1 << 30, 224, (), 4) is None  # widths unknown: no cap
    with pytest.raises(ValueError, match="positive"):
        tiles_within_memory(0, 224, filters, 4)


def test_predict_cuts_the_batch_to_the_memory_budget(caplog) -> None:
    from roadseg.inference import tile_activation_bytes
    from roadseg.predict import PredictOptions, batch_within_memory

    filters = (16, 32, 64, 128)
    per_tile = tile_activation_bytes(224, filters, 4)
    budget = PredictOptions(max_memory=5 * per_tile)
    assert batch_within_memory(8, budget, 224, filters, 4) == 5
    assert not caplog.records  # the default batch is cut quietly
    asked = PredictOptions(batch_size=64, max_memory=5 * per_tile)
    assert batch_within_memory(64, asked, 224, filters, 4) == 5
    assert "--max-memory" in caplog.text
    assert batch_within_memory(4, asked, 224, filters, 4) == 4
    assert batch_within_memory(64, asked, 224, (), 4) == 64  # a plain Keras file


class ResourceExhaustedError(RuntimeError):
    """Stands in for tensorflow.errors.ResourceExhaustedError (matched by name)."""


def test_padded_calls_all_have_the_batch_size() -> None:
    from roadseg.inference import HalvingInfer

    sizes: list[int] = []

    def call(x: np.ndarray) -> np.ndarray:
        sizes.append(len(x))
        return x[..., 0] + 1.0

    infer = HalvingInfer(call, pad_to=8)
    x = np.random.default_rng(2).random((3, 4, 4, 1), dtype=np.float32)
    np.testing.assert_array_equal(infer(x), x[..., 0] + 1.0)  # the blank tiles are dropped
    assert sizes == [8]


def test_padded_calls_shrink_with_the_halved_batch() -> None:
    from roadseg.inference import HalvingInfer

    sizes: list[int] = []

    def small_memory(x: np.ndarray) -> np.ndarray:
        sizes.append(len(x))
        if len(x) > 2:
            raise ResourceExhaustedError("OOM when allocating tensor")
        return x[..., 0]

    infer = HalvingInfer(small_memory, pad_to=8)
    x = np.random.default_rng(2).random((5, 4, 4, 1), dtype=np.float32)
    np.testing.assert_array_equal(infer(x), x[..., 0])
    np.testing.assert_array_equal(infer(x[:1]), x[:1, ..., 0])
    assert sizes[:3] == [8, 4, 2] and set(sizes[3:]) == {2}  # padded to the halved size
