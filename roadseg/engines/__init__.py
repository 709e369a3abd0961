"""Inference engines other than TensorFlow: onnxruntime and OpenVINO on the CPU.

:func:`network_fn` turns a loaded roadseg model into a function from a batch
of normalised tiles to probabilities, the contract of TensorFlow's own path in
``roadseg.inference``: ``(N, H, W, bands)`` float32 in, ``(N, H, W)`` float32
out. The Keras model is converted to ONNX in memory
(:func:`roadseg.export.onnx_graph.keras_to_onnx`, batch norms folded), with
free batch, height and width; nothing is cached on disk and nothing is
downloaded. The layout change NHWC -> NCHW and back happens in numpy.

Threads: the engine's intra-op pool gets ``threads`` threads; by default
``ROADSEG_ENGINE_THREADS`` if set, else ``OMP_NUM_THREADS`` if set (what
``roadseg.dask_setup`` gives each Dask worker), else the cores this process
may run on (``os.sched_getaffinity``).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from roadseg.errors import EngineError
from roadseg.optional import is_installed, require
from roadseg.tiling import is_tile_size

if TYPE_CHECKING:
    from roadseg.model import LoadedModel

#: The engines :func:`network_fn` runs (TensorFlow is roadseg's own path).
ENGINES = ("onnxruntime", "openvino")
#: The modules each engine needs, its own first (the converter needs onnx).
ENGINE_MODULES = {"onnxruntime": ("onnxruntime", "onnx"), "openvino": ("openvino", "onnx")}
#: The pip extra that installs each engine with onnx.
ENGINE_EXTRAS = {"onnxruntime": "onnx", "openvino": "openvino"}
#: The precisions each engine accepts: onnxruntime's CPU convolutions are
#: float32 only; OpenVINO's CPU plugin runs float32 or its default (bfloat16
#: where the CPU has it), which ``auto`` and ``bfloat16`` both mean.
ENGINE_PRECISIONS = {
    "onnxruntime": ("auto", "float32"),
    "openvino": ("auto", "float32", "bfloat16"),
}
#: Environment variable that sets the engines' thread count.
THREADS_ENV = "ROADSEG_ENGINE_THREADS"

__all__ = [
    "AUTO_ORDER",
    "ENGINES",
    "PREDICT_ENGINES",
    "THREADS_ENV",
    "EngineFunction",
    "available_engines",
    "engine_threads",
    "network_fn",
    "resolve_engine",
]


@dataclass(frozen=True)
class EngineFunction:
    """A model compiled by an engine, called on ``(N, H, W, bands)`` batches.

    Attributes:
        engine: ``onnxruntime`` or ``openvino``.
        precision: the precision the engine computes in (for OpenVINO, what
            its CPU plugin chose: ``bfloat16`` or ``float32``).
        threads: the engine's thread count.
        bands: the bands the model takes.
        version: the engine's version.
    """

    engine: str
    precision: str
    threads: int
    bands: int
    version: str
    _run: Callable[[np.ndarray], np.ndarray] = field(repr=False)

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        """Probabilities ``(N, H, W)`` float32 for normalised tiles ``(N, H, W, bands)``.

        Raises:
            EngineError: the batch is not ``(N, H, W, bands)`` with H and W
                multiples of 8.
        """
        if batch.ndim != 4 or batch.shape[-1] != self.bands:
            raise EngineError(
                f"the {self.engine} engine takes (N, H, W, {self.bands}) batches, "
                f"got shape {batch.shape}"
            )
        if not all(is_tile_size(s) for s in batch.shape[1:3]):
            raise EngineError(
                f"tile height and width must be multiples of 8, got {batch.shape[1:3]}"
            )
        nchw = np.ascontiguousarray(batch.transpose(0, 3, 1, 2), dtype=np.float32)
        out = self._run(nchw)
        return np.ascontiguousarray(out[:, 0], dtype=np.float32)


def engine_threads() -> int:
    """The thread count engines use: ``ROADSEG_ENGINE_THREADS``, else
    ``OMP_NUM_THREADS``, else the cores this process may run on.

    Raises:
        EngineError: the environment variable is not a positive integer.
    """
    for name in (THREADS_ENV, "OMP_NUM_THREADS"):
        text = os.environ.get(name, "").strip()
        if not text:
            continue
        try:
            threads = int(text)
        except ValueError:
            threads = 0
        if threads < 1:
            raise EngineError(f"{name}={text!r} is not a positive number of threads")
        return threads
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def available_engines() -> list[str]:
    """The engines of :data:`ENGINES` whose packages are installed, in that order.

    TensorFlow, always there, is not listed: it is not run through
    :func:`network_fn`.
    """
    return [e for e in ENGINES if all(is_installed(m) for m in ENGINE_MODULES[e])]


def network_fn(
    model: LoadedModel, engine: str, precision: str = "auto", *, threads: int | None = None
) -> EngineFunction:
    """``model`` compiled by ``engine``, as a function of a batch of tiles.

    Args:
        model: a loaded roadseg model (:func:`roadseg.model.load_model`).
        engine: ``onnxruntime`` or ``openvino``.
        precision: ``auto``, ``float32`` or (OpenVINO) ``bfloat16``; see
            :data:`ENGINE_PRECISIONS`. The precision used is on the result.
        threads: the engine's threads (default: :func:`engine_threads`).

    Returns:
        An :class:`EngineFunction`: ``(N, H, W, bands)`` float32, normalised,
        to ``(N, H, W)`` float32 probabilities.

    Raises:
        EngineError: an unknown engine, or a precision the engine cannot run.
        MissingDependencyError: the engine's packages are not installed.
        ExportError: the model has a layer the converter does not know.
    """
    if engine not in ENGINES:
        raise EngineError(
            f"unknown engine {engine!r}; roadseg runs {', '.join(ENGINES)} (and tensorflow)"
        )
    if precision not in ENGINE_PRECISIONS[engine]:
        raise EngineError(
            f"the {engine} engine cannot run precision {precision!r}; it runs "
            f"{', '.join(ENGINE_PRECISIONS[engine])}"
        )
    purpose = f"the {engine} engine"
    for module in ENGINE_MODULES[engine]:
        require(module, purpose, ENGINE_EXTRAS[engine])
    if threads is None:
        threads = engine_threads()
    elif threads < 1:
        raise EngineError(f"threads must be a positive number, got {threads}")

    from roadseg.export.onnx_graph import keras_to_onnx

    proto = keras_to_onnx(model.model)
    bands = model.info.bands
    if engine == "onnxruntime":
        from roadseg.engines import onnxruntime_engine as ort_engine

        session = ort_engine.make_session(proto, threads=threads)
        return EngineFunction(
            engine=engine,
            precision="float32",
            threads=threads,
            bands=bands,
            version=ort_engine.version(),
            _run=lambda x: ort_engine.run_session(session, x),
        )
    from roadseg.engines import openvino_engine as ov_engine

    compiled = ov_engine.compile_model(
        ov_engine.read_onnx(proto), float32=precision == "float32", threads=threads
    )
    return EngineFunction(
        engine=engine,
        precision=ov_engine.inference_precision(compiled),
        threads=threads,
        bands=bands,
        version=ov_engine.version(),
        _run=lambda x: ov_engine.run_compiled(compiled, x),
    )


#: What ``roadseg predict --engine`` accepts.
PREDICT_ENGINES = ("auto", "tensorflow", *ENGINES)
#: ``auto``'s order of preference among the installed engines, from
#: ``scripts/bench_cpu_limit.py`` on this project's CPUs; each engine listed
#: here has its agreement with float32 TensorFlow tested in tests/engines/.
AUTO_ORDER = ("openvino", "tensorflow")


def resolve_engine(engine: str) -> str:
    """``auto`` -> the first engine of :data:`AUTO_ORDER` that is installed;
    other names as they are.

    Raises:
        EngineError: an unknown engine.
    """
    if engine not in PREDICT_ENGINES:
        raise EngineError(f"unknown engine {engine!r}; choose one of {', '.join(PREDICT_ENGINES)}")
    if engine != "auto":
        return engine
    installed = set(available_engines()) | {"tensorflow"}
    return next(e for e in AUTO_ORDER if e in installed)
