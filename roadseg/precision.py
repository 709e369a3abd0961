"""Numeric precision for inference: float32, bfloat16 or float16.

``auto`` picks bfloat16 on a CPU with AVX-512-BF16 or AMX (about twice the
float32 speed on such a CPU, measured in scripts/bench_predict.py), float16
mixed precision on a GPU, and float32 elsewhere. The network's weights stay
in float32; under a mixed policy layers compute in the low precision and the
final sigmoid stays float32.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

PRECISIONS = ("auto", "float32", "bfloat16", "float16")
_POLICY = {"bfloat16": "mixed_bfloat16", "float16": "mixed_float16"}


@functools.lru_cache(maxsize=1)
def cpu_has_bf16() -> bool:
    """True if /proc/cpuinfo lists AVX-512-BF16 or AMX-BF16."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    flags = set(text.split())
    return bool(flags & {"avx512_bf16", "amx_bf16"})


def gpu_available() -> bool:
    import tensorflow as tf

    return bool(tf.config.list_physical_devices("GPU"))


def resolve_precision(precision: str) -> str:
    """Turn ``auto`` into a concrete precision for this machine.

    Raises:
        ValueError: for an unknown name.
    """
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    if precision != "auto":
        return precision
    if gpu_available():
        return "float16"
    return "bfloat16" if cpu_has_bf16() else "float32"


def with_precision(model: Any, precision: str) -> Any:
    """A copy of ``model`` computing in ``precision`` (same weights).

    Works for any functional Keras model: every layer is re-created from its
    config with a mixed dtype policy, except the input layer and a final
    layer named ``road_probability`` (kept float32 so probabilities near 0 and
    1 keep their precision).
    """
    if precision == "float32":
        return model
    import keras

    policy = _POLICY[precision]

    def clone(layer: Any) -> Any:
        config = layer.get_config()
        if layer.name != "road_probability":
            config["dtype"] = policy
        return layer.__class__.from_config(config)

    copy = keras.models.clone_model(model, clone_function=clone)
    copy.set_weights(model.get_weights())
    return copy
