"""Does an exported model compute what the Keras model computes?

:func:`check_export` runs both on the same tiles, the export in float32
(onnxruntime, or OpenVINO when that is what is installed or exported), and
reports the largest and the mean absolute difference of the probabilities.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from roadseg.errors import ExportError, MissingDependencyError
from roadseg.optional import install_hint, is_installed

if TYPE_CHECKING:
    import keras
    import onnx
    import openvino

#: Runtimes that can run an exported model for the check.
RUNTIMES = ("onnxruntime", "openvino")


@dataclass(frozen=True)
class ExportCheck:
    """How far an export's probabilities are from the Keras model's.

    Attributes:
        tiles: number of tiles compared.
        tile_size: their height and width.
        runtime: what ran the export (``onnxruntime`` or ``openvino``, float32).
        max_abs: the largest absolute probability difference.
        mean_abs: the mean absolute probability difference.
    """

    tiles: int
    tile_size: int
    runtime: str
    max_abs: float
    mean_abs: float


def random_tiles(count: int, tile_size: int, bands: int, *, seed: int = 0) -> np.ndarray:
    """``count`` tiles ``(count, tile_size, tile_size, bands)`` of uniform
    noise in [0, 1), float32: inputs as roadseg's normaliser makes them."""
    rng = np.random.default_rng(seed)
    return rng.random((count, tile_size, tile_size, bands), dtype=np.float32)


def default_runtime() -> str | None:
    """The runtime :func:`check_export` uses for an ONNX model: onnxruntime,
    else OpenVINO, else None."""
    for runtime in RUNTIMES:
        if is_installed(runtime):
            return runtime
    return None


def check_export(
    keras_model: keras.Model,
    onnx_model: onnx.ModelProto | openvino.Model,
    tiles: np.ndarray,
    *,
    runtime: str | None = None,
) -> ExportCheck:
    """Compare an export with its Keras model on ``tiles``.

    Args:
        keras_model: the model that was exported.
        onnx_model: the export: an ``onnx.ModelProto``, or an
            ``openvino.Model`` (the IR about to be saved, run by OpenVINO).
        tiles: ``(N, H, W, bands)`` float32 inputs, H and W multiples of 8
            (and the export's size, if it has a fixed one).
        runtime: ``onnxruntime`` or ``openvino`` for an ONNX model (default:
            :func:`default_runtime`).

    Returns:
        The differences, an :class:`ExportCheck`.

    Raises:
        MissingDependencyError: no runtime, or not ``runtime``, is installed.
        ExportError: ``runtime`` is unknown.
    """
    import keras

    from roadseg.engines import engine_threads

    threads = engine_threads()
    nchw = np.ascontiguousarray(tiles.transpose(0, 3, 1, 2), dtype=np.float32)
    onnx_module = sys.modules.get("onnx")  # an ONNX model means onnx is imported
    if onnx_module is not None and isinstance(onnx_model, onnx_module.ModelProto):
        runtime = runtime or default_runtime()
        if runtime is None:
            raise MissingDependencyError(
                "checking an ONNX export needs the onnxruntime package (or openvino): "
                f"{install_hint('onnxruntime')}"
            )
        if runtime == "onnxruntime":
            from roadseg.engines import onnxruntime_engine as ort_engine

            session = ort_engine.make_session(onnx_model, threads=threads)
            exported = ort_engine.run_session(session, nchw)
        elif runtime == "openvino":
            exported = _run_openvino(_read_onnx(onnx_model), nchw, threads)
        else:
            raise ExportError(f"unknown runtime {runtime!r}; use one of {', '.join(RUNTIMES)}")
    else:  # an openvino.Model
        runtime = "openvino"
        exported = _run_openvino(onnx_model, nchw, threads)
    reference = np.asarray(
        keras.ops.convert_to_numpy(keras_model(tiles, training=False)), dtype=np.float32
    )[..., 0]
    diff = np.abs(exported[:, 0].astype(np.float64) - reference)
    return ExportCheck(
        tiles=int(tiles.shape[0]),
        tile_size=int(tiles.shape[1]),
        runtime=runtime,
        max_abs=float(diff.max()),
        mean_abs=float(diff.mean()),
    )


def _read_onnx(proto: onnx.ModelProto) -> openvino.Model:
    from roadseg.engines import openvino_engine

    return openvino_engine.read_onnx(proto)


def _run_openvino(model: openvino.Model, nchw: np.ndarray, threads: int) -> np.ndarray:
    from roadseg.engines import openvino_engine

    compiled = openvino_engine.compile_model(model, float32=True, threads=threads)
    return openvino_engine.run_compiled(compiled, nchw)
