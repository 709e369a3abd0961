"""The inference function of a prediction run: the compiled model call with
test-time augmentation (:func:`make_infer_fn`), the batch halving that
survives running out of GPU memory (:class:`HalvingInfer`) and the starting
batch size a GPU's free memory allows (:func:`starting_batch_size`)."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from typing import Any

import numpy as np

from roadseg.precision import gpu_available

# The warnings belong to the prediction run: they go out under predict's
# logger, as before this module was split from it.
log = logging.getLogger("roadseg.predict")


def configure_devices() -> None:
    """Let TensorFlow grow GPU memory as needed instead of grabbing it all.

    Written by TensorFlow's guide; not measured here (no GPU on this machine).
    """
    import tensorflow as tf

    for gpu in tf.config.list_physical_devices("GPU"):
        try:
            tf.config.experimental.set_memory_growth(gpu, True)
        except RuntimeError:  # already initialised: nothing to change
            pass


TTA_MODES = ("none", "flip", "d4")


def tta_transforms(tta: str) -> list[tuple[int, bool]]:
    """(quarter turns, horizontal flip) pairs for test-time augmentation.

    Raises:
        ValueError: ``tta`` is not one of :data:`TTA_MODES`.
    """
    if tta == "none":
        return [(0, False)]
    if tta == "flip":
        return [(0, False), (0, True)]
    if tta == "d4":
        return [(k, f) for k in range(4) for f in (False, True)]
    raise ValueError(f"tta must be one of {', '.join(TTA_MODES)}, got {tta!r}")


def make_infer_fn(
    model: Any, tile: int, bands: int, tta: str = "none"
) -> Callable[[np.ndarray], np.ndarray]:
    """A compiled ``batch -> probabilities`` function for one tile size.

    ``tf.function`` around ``model(x, training=False)`` instead of
    ``model.predict`` in a loop, which is slow and leaks memory. The batch
    dimension is left open so the last, smaller batch needs no padding and no
    retracing. With test-time augmentation each transformed copy of the batch
    goes through the model in a call of its own (so the copies cost time, not
    memory: a call holds one batch's activations whatever ``tta`` is), and the
    inverse-transformed outputs are averaged.
    """
    import tensorflow as tf

    transforms = tta_transforms(tta)
    spec = tf.TensorSpec([None, tile, tile, bands], tf.float32)

    @tf.function(input_signature=[spec], reduce_retracing=True)
    def _infer(x: Any) -> Any:
        return tf.cast(model(x, training=False), tf.float32)[..., 0]

    def call(batch: np.ndarray) -> np.ndarray:
        return np.asarray(_infer(tf.constant(batch)))

    if len(transforms) == 1:
        return call
    return with_tta(call, transforms)


def with_tta(
    call: Callable[[np.ndarray], np.ndarray], transforms: list[tuple[int, bool]]
) -> Callable[[np.ndarray], np.ndarray]:
    """``call`` (``(N, H, W, bands) -> (N, H, W)``) averaged over ``transforms``
    (:func:`tta_transforms`), one model call per transformed copy."""

    def infer(batch: np.ndarray) -> np.ndarray:
        total: np.ndarray | None = None
        for k, flip in transforms:
            x = batch[:, :, ::-1] if flip else batch
            x = np.ascontiguousarray(np.rot90(x, k, axes=(1, 2)))
            y = np.rot90(call(x), -k % 4, axes=(1, 2))
            y = y[:, :, ::-1] if flip else y
            total = y.copy() if total is None else np.add(total, y, out=total)
        assert total is not None
        total /= np.float32(len(transforms))
        return total

    return infer


# --------------------------------------------------------------------------- out of memory


def _is_out_of_memory(exc: BaseException) -> bool:
    """TensorFlow's out-of-memory error (without importing TensorFlow)."""
    return any(t.__name__ == "ResourceExhaustedError" for t in type(exc).__mro__)


class HalvingInfer:
    """An inference function that survives running out of (GPU) memory, and
    whose every model call has the same number of tiles.

    When a batch does not fit, it is split in halves and retried, down to
    single tiles; the smaller size is kept for every later batch. Written by
    TensorFlow's book for GPUs (a ``ResourceExhaustedError`` from the
    allocator); not measured on a GPU here.

    With ``pad_to``, a shorter batch (the last one of a raster or of a Dask
    region, or the tiles a resumed run recomputes) is padded with blank tiles
    to that size, or to the halved size after running out of memory. oneDNN
    picks its convolution kernels by the shape of the call, and for wide
    layers (the paper's 64-512 widths) the kernels it picks for 1 and for 8
    tiles give different float32 results for the same tile (measured on an
    AMD EPYC with AVX-512-BF16, TensorFlow 2.21). A tile's result does not
    depend on the other tiles of its call (also measured), so with every call
    the same size a tile gets the same pixels whichever batch it falls in:
    resumed runs and Dask regions then match a whole run byte for byte.
    """

    def __init__(
        self, infer_fn: Callable[[np.ndarray], np.ndarray], pad_to: int | None = None
    ) -> None:
        self.infer_fn = infer_fn
        self.pad_to = pad_to
        self.cap: int | None = None

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        n = len(batch)
        cap = self.cap
        if cap is not None and n > cap:
            return np.concatenate([self(batch[i : i + cap]) for i in range(0, n, cap)])
        size = cap or self.pad_to or n
        try:
            if n < size:
                blank = np.zeros((size - n, *batch.shape[1:]), dtype=batch.dtype)
                return self.infer_fn(np.concatenate([batch, blank]))[:n]
            return self.infer_fn(batch)
        except Exception as exc:
            if not _is_out_of_memory(exc) or size == 1:
                raise
        self.cap = max(1, size // 2)
        log.warning(
            "out of memory with %d tiles per batch; continuing with %d (use --batch-size %d)",
            size,
            self.cap,
            self.cap,
        )
        return self(batch)


# --------------------------------------------------------------------------- GPU batch size


#: Activation tensors held per channel of each resolution level (encoder and
#: decoder together) in the batch-size estimate below. Deliberately generous:
#: the estimate only picks a starting size, and :class:`HalvingInfer` halves
#: a batch that still does not fit.
ACTIVATIONS_PER_LEVEL = 12
#: Share of the free GPU memory left unplanned (cuDNN workspaces, fragmentation).
GPU_HEADROOM = 0.25
#: Largest starting batch: beyond this a GPU is busy anyway.
MAX_AUTO_BATCH = 64


def tile_activation_bytes(tile: int, filters: tuple[int, ...], dtype_bytes: int) -> int:
    """Estimated activation memory of one ``tile`` x ``tile`` tile through the
    ResUNet with encoder ``filters`` (each level halves the side)."""
    per_pixel = sum(f / 4**level for level, f in enumerate(filters))
    return int(ACTIVATIONS_PER_LEVEL * per_pixel * tile * tile * dtype_bytes)


def batch_for_free_memory(
    free_bytes: int,
    per_tile_bytes: int,
    *,
    headroom: float = GPU_HEADROOM,
    most: int = MAX_AUTO_BATCH,
) -> int:
    """The largest batch whose tiles fit in ``free_bytes`` (at least 1, at most ``most``).

    Raises:
        ValueError: ``per_tile_bytes`` is not positive or ``headroom`` not in [0, 1).
    """
    if per_tile_bytes <= 0:
        raise ValueError(f"per-tile bytes must be positive, got {per_tile_bytes}")
    if not 0.0 <= headroom < 1.0:
        raise ValueError(f"headroom must lie in [0, 1), got {headroom}")
    usable = int(free_bytes * (1.0 - headroom))
    return max(1, min(most, usable // per_tile_bytes))


#: Default memory for the network's working tensors in one model call: the
#: batch is cut to what fits (:func:`tiles_within_memory`). With TensorFlow and
#: the model loaded, the reader, blender and writer, a CPU process peaks about
#: 0.7 GB above it (measured with ``scripts/bench_predict_memory.py --network``).
DEFAULT_MAX_MEMORY = 1 << 30


def tiles_within_memory(
    max_memory: int, tile: int, filters: tuple[int, ...], dtype_bytes: int
) -> int | None:
    """The most tiles one model call may hold within ``max_memory`` bytes by
    :func:`tile_activation_bytes` (at least 1); None when the model's widths
    are unknown (a plain Keras file).

    Raises:
        ValueError: ``max_memory`` is not positive.
    """
    if max_memory <= 0:
        raise ValueError(f"the memory budget must be positive, got {max_memory}")
    if not filters:
        return None
    return max(1, max_memory // tile_activation_bytes(tile, filters, dtype_bytes))


def gpu_free_bytes(run: Callable[..., Any] | None = None) -> int | None:
    """Free memory of the first visible NVIDIA GPU, from ``nvidia-smi``; None
    when it is missing or says nothing usable.

    TensorFlow does not report it: ``tf.config.experimental.get_memory_info``
    gives only the bytes TensorFlow itself uses, ``get_device_details`` only a
    name and compute capability.
    """
    import subprocess

    run = run or subprocess.run
    visible = os.environ.get("CUDA_VISIBLE_DEVICES", "").split(",")[0].strip()
    cmd = ["nvidia-smi", "--query-gpu=index,memory.free", "--format=csv,noheader,nounits"]
    try:
        out = run(cmd, capture_output=True, text=True, timeout=10, check=True).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    free: dict[str, int] = {}
    for line in out.splitlines():
        parts = [p.strip() for p in line.split(",")]
        if len(parts) == 2 and parts[1].isdigit():
            free[parts[0]] = int(parts[1]) << 20  # MiB
    if not free:
        return None
    return free.get(visible, next(iter(free.values())))


def starting_batch_size(
    requested: int,
    tile: int,
    filters: tuple[int, ...],
    dtype_bytes: int,
    *,
    has_gpu: Callable[[], bool] | None = None,
    free_bytes: Callable[[], int | None] = gpu_free_bytes,
) -> int:
    """The batch size to start with: ``requested`` on a CPU, else the largest
    batch the free GPU memory holds by :func:`tile_activation_bytes`.

    Falls back to ``requested`` when the free memory or the model's widths
    (``filters``, empty for a plain Keras file) are unknown.
    """
    if not filters or not (has_gpu or gpu_available)():
        return requested
    free = free_bytes()
    if free is None:
        return requested
    return batch_for_free_memory(free, tile_activation_bytes(tile, filters, dtype_bytes))
