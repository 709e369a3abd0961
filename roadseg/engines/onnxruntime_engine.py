"""Running an exported ResUNet with onnxruntime on the CPU.

The session uses every graph optimisation onnxruntime has (``ORT_ENABLE_ALL``:
convolution fusions and its NCHWc blocked layout), runs nodes one after the
other (``ORT_SEQUENTIAL``: the ResUNet is a chain, so parallel branches buy
nothing) and gives each node ``threads`` threads.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from roadseg.optional import require

if TYPE_CHECKING:
    import onnx
    import onnxruntime

PURPOSE = "the onnxruntime engine"


def make_session(proto: onnx.ModelProto, *, threads: int) -> onnxruntime.InferenceSession:
    """An onnxruntime ``InferenceSession`` on the CPU for ``proto``.

    Raises:
        MissingDependencyError: onnxruntime is not installed.
    """
    ort = require("onnxruntime", PURPOSE)
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.log_severity_level = 3  # errors only: no warnings on a user's terminal
    return ort.InferenceSession(
        proto.SerializeToString(), options, providers=["CPUExecutionProvider"]
    )


def run_session(session: onnxruntime.InferenceSession, batch_nchw: np.ndarray) -> np.ndarray:
    """The session's first output for an ``(N, C, H, W)`` float32 batch."""
    name = session.get_inputs()[0].name
    return np.asarray(session.run(None, {name: batch_nchw})[0])


def version() -> str:
    """The installed onnxruntime's version."""
    return str(require("onnxruntime", PURPOSE).__version__)
