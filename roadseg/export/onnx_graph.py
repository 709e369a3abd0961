"""A Keras ResUNet as an ONNX graph, written node by node with ``onnx.helper``.

The architecture is roadseg's own and small (:func:`roadseg.model.build_resunet`),
so the converter knows exactly its seven layer types (InputLayer, Conv2D,
BatchNormalization, Activation, Add, UpSampling2D, Concatenate) and refuses any
other with :class:`~roadseg.errors.ExportError`, rather than guessing.

The graph is NCHW: input ``[N, bands, H, W]`` float32 (values 0-1, as
roadseg's normaliser makes them), output ``[N, 1, H, W]`` float32
probabilities. N is always free; H and W are free (``tile_size=None``) or
fixed, and must be multiples of 8 either way.

Two rewrites make the graph cheaper than the Keras one and equal to it up to
float32 rounding:

* A BatchNormalization whose input is a Conv2D output used by nothing else is
  folded into that convolution: with ``s = gamma / sqrt(var + eps)``, the
  kernel becomes ``W * s`` and the bias ``(b - mean) * s + beta`` (per output
  channel). In the ResUNet this is every BN between the two convolutions of a
  block.
* Every other BatchNormalization (the pre-activations, whose input also feeds
  a shortcut or comes from a concatenation) stays one ONNX BatchNormalization
  with the layer's statistics. Measured on the bundled model (onnxruntime,
  all optimisations, 2 cores, batch 8 of 224x224): 14.9 tiles/s, against 12.4
  with a per-channel Mul+Add, because onnxruntime's NCHWc layout pass keeps
  BatchNormalization+Relu in its blocked layout, while Mul+Add cost 13 layout
  reorders and 6 separate Relu passes.

Keras's ``padding="same"`` pads ``k - s`` pixels in all when the input size is
a multiple of the stride (always so here: H and W are multiples of 8), the
odd pixel at the bottom and right. ONNX's ``auto_pad=SAME_UPPER`` means the
same, but not every runtime implements it alike, so the pads are written out.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from roadseg.errors import ExportError
from roadseg.optional import require
from roadseg.tiling import is_tile_size

if TYPE_CHECKING:
    import keras
    import onnx

#: ONNX operator set and IR version: opset 17 is read by onnxruntime >= 1.13
#: and OpenVINO >= 2022.3, so an exported file also loads in the older
#: onnxruntime that a QGIS installation may carry.
OPSET = 17
IR_VERSION = 8

#: The layer types the converter knows.
SUPPORTED_LAYERS = (
    "InputLayer",
    "Conv2D",
    "BatchNormalization",
    "Activation",
    "Add",
    "UpSampling2D",
    "Concatenate",
)

#: Names of the free dimensions of the graph's input and output.
BATCH_DIM, HEIGHT_DIM, WIDTH_DIM = "batch", "height", "width"

_ACTIVATIONS = {"relu": "Relu", "sigmoid": "Sigmoid", "linear": None}


@dataclass(frozen=True)
class GraphStep:
    """One call of a Keras layer in the model: the layer and the ids of the
    KerasTensors it reads and writes."""

    layer: Any
    inputs: tuple[int, ...]
    outputs: tuple[int, ...]

    @property
    def kind(self) -> str:
        return type(self.layer).__name__


def keras_to_onnx(
    model: keras.Model,
    *,
    tile_size: int | None = None,
    fold_batch_norm: bool = True,
    name: str | None = None,
) -> onnx.ModelProto:
    """Convert a roadseg ResUNet (any width) to an ONNX model.

    Args:
        model: a functional Keras model with one ``(N, H, W, bands)`` input
            and one ``(N, H, W, 1)`` output, built from the layer types in
            :data:`SUPPORTED_LAYERS`.
        tile_size: fix the input's height and width to this size (a multiple
            of 8), as the QGIS Deepness plugin needs; None leaves them free.
        fold_batch_norm: fold batch norms into their convolutions where the
            algebra allows (off only to test the folding).
        name: the graph's name (default: the Keras model's).

    Returns:
        A checked ``onnx.ModelProto`` without metadata (see
        :func:`roadseg.export.metadata.add_metadata`).

    Raises:
        MissingDependencyError: onnx is not installed.
        ExportError: a layer or layer setting the converter does not know, or
            an invalid ``tile_size``.
    """
    onnx = require("onnx", "exporting a model to ONNX")
    if tile_size is not None and not is_tile_size(tile_size):
        raise ExportError(f"tile size {tile_size} is not a positive multiple of 8")
    if len(model.inputs) != 1 or len(model.outputs) != 1:
        raise ExportError(
            f"model {model.name} has {len(model.inputs)} inputs and {len(model.outputs)} "
            "outputs; the exporter converts one image in, one probability band out"
        )
    steps = graph_steps(model)
    builder = _Builder(steps, model, fold_batch_norm=fold_batch_norm)
    for step in steps:
        builder.add(step)

    in_tensor, out_tensor = model.inputs[0], model.outputs[0]
    bands = int(in_tensor.shape[-1])
    height: int | str = tile_size if tile_size is not None else HEIGHT_DIM
    width: int | str = tile_size if tile_size is not None else WIDTH_DIM
    graph_input = onnx.helper.make_tensor_value_info(
        builder.names[id(in_tensor)],
        onnx.TensorProto.FLOAT,
        [BATCH_DIM, bands, height, width],
    )
    graph_output = onnx.helper.make_tensor_value_info(
        builder.names[id(out_tensor)],
        onnx.TensorProto.FLOAT,
        [BATCH_DIM, int(out_tensor.shape[-1]), height, width],
    )
    graph = onnx.helper.make_graph(
        builder.nodes,
        name or model.name,
        [graph_input],
        [graph_output],
        initializer=builder.initializers,
    )
    proto = onnx.helper.make_model(
        graph,
        opset_imports=[onnx.helper.make_opsetid("", OPSET)],
        producer_name="roadseg",
        ir_version=IR_VERSION,
    )
    from roadseg import __version__

    proto.producer_version = __version__
    onnx.checker.check_model(proto, full_check=True)
    return proto


def graph_steps(model: keras.Model) -> list[GraphStep]:
    """The layer calls of ``model`` in an order where each reads only what
    earlier ones wrote.

    Walks ``model.layers`` and each layer's inbound nodes (Keras 3). A layer
    may also have nodes from other models it was used in (a clone for mixed
    precision, say): only nodes whose inputs this model computes are kept.

    Raises:
        ExportError: a layer type outside :data:`SUPPORTED_LAYERS`.
    """
    known = {id(t) for t in model.inputs}
    pending: list[GraphStep] = []
    for layer in model.layers:
        kind = type(layer).__name__
        if kind not in SUPPORTED_LAYERS:
            raise ExportError(
                f"layer {layer.name} is a {kind}; the ONNX exporter converts roadseg's "
                f"ResUNet and knows only {', '.join(SUPPORTED_LAYERS)}"
            )
        if kind == "InputLayer":
            continue
        for node in layer._inbound_nodes:
            if node.is_input:
                continue
            pending.append(
                GraphStep(
                    layer,
                    tuple(id(t) for t in node.input_tensors),
                    tuple(id(t) for t in node.output_tensors),
                )
            )
    ordered: list[GraphStep] = []
    while pending:
        ready = [s for s in pending if all(i in known for i in s.inputs)]
        if not ready:
            break  # the rest belongs to other models sharing these layers
        for step in ready:
            ordered.append(step)
            known.update(step.outputs)
        pending = [s for s in pending if s not in ready]
    if id(model.outputs[0]) not in known:
        raise ExportError(f"model {model.name}: its output is not computed from its input")
    return ordered


def same_pads(kernel: Sequence[int], strides: Sequence[int]) -> list[int]:
    """ONNX ``pads`` (top, left, bottom, right) equal to Keras/TensorFlow's
    ``padding="same"`` for an input whose size is a multiple of the stride.

    TensorFlow pads ``max(k - s, 0)`` pixels in all along an axis, the odd one
    after (bottom, right): a stride-2 3x3 convolution pads 0 above and 1 below.
    """
    total = [max(k - s, 0) for k, s in zip(kernel, strides, strict=True)]
    before = [t // 2 for t in total]
    after = [t - b for t, b in zip(total, before, strict=True)]
    return before + after


def batch_norm_affine(layer: Any) -> tuple[np.ndarray, np.ndarray]:
    """A BatchNormalization layer at inference as ``x * scale + shift`` per channel.

    Raises:
        ExportError: the layer normalises an axis other than the channels.
    """
    config = layer.get_config()
    axis = config["axis"]
    axis = axis[0] if isinstance(axis, list | tuple) and len(axis) == 1 else axis
    if axis not in (-1, 3):
        raise ExportError(
            f"batch norm {layer.name} normalises axis {config['axis']}; "
            "the exporter handles the channel axis (-1) only"
        )
    if config.get("renorm"):
        raise ExportError(f"batch norm {layer.name} uses renorm, which the exporter does not know")
    mean = _array(layer.moving_mean)
    var = _array(layer.moving_variance)
    gamma = _array(layer.gamma) if layer.gamma is not None else np.ones_like(mean)
    beta = _array(layer.beta) if layer.beta is not None else np.zeros_like(mean)
    # float64 for the algebra, float32 in the graph.
    scale = gamma / np.sqrt(var + float(config["epsilon"]))
    shift = beta - mean * scale
    return scale, shift


def _array(variable: Any) -> np.ndarray:
    return np.asarray(variable.numpy(), dtype=np.float64)


class _Builder:
    """Accumulates ONNX nodes and initializers for the steps of one model."""

    def __init__(self, steps: list[GraphStep], model: Any, *, fold_batch_norm: bool) -> None:
        self.onnx = require("onnx", "exporting a model to ONNX")
        self.nodes: list[Any] = []
        self.initializers: list[Any] = []
        self.names: dict[int, str] = {id(t): _layer_name(t) for t in model.inputs}
        self.fold = fold_batch_norm
        uses = Counter(i for s in steps for i in s.inputs)
        uses.update(id(t) for t in model.outputs)
        self._uses = uses
        self._reader = {i: s for s in steps for i in s.inputs}
        self._folded: set[int] = set()  # ids of BN steps already inside a conv

    def add(self, step: GraphStep) -> None:
        if id(step) in self._folded:
            return
        handler = getattr(self, f"_{step.kind.lower()}")
        handler(step)

    # Names: a tensor is named after the layer that writes it, which Keras
    # keeps unique within a model; the input and output keep their Keras names.

    def _input(self, step: GraphStep, index: int = 0) -> str:
        return self.names[step.inputs[index]]

    def _output(self, step: GraphStep, suffix: str = "") -> str:
        name = step.layer.name + suffix
        self.names[step.outputs[0]] = name
        return name

    def _constant(self, name: str, value: np.ndarray) -> str:
        self.initializers.append(
            self.onnx.numpy_helper.from_array(np.ascontiguousarray(value, np.float32), name)
        )
        return name

    def _node(self, op: str, inputs: list[str], output: str, name: str, **attrs: Any) -> None:
        self.nodes.append(self.onnx.helper.make_node(op, inputs, [output], name=name, **attrs))

    def _conv2d(self, step: GraphStep) -> None:
        layer = step.layer
        config = layer.get_config()
        unsupported = {
            "data_format": (config["data_format"], "channels_last"),
            "dilation_rate": (tuple(config["dilation_rate"]), (1, 1)),
            "groups": (config["groups"], 1),
        }
        for key, (value, wanted) in unsupported.items():
            if value != wanted:
                raise ExportError(
                    f"convolution {layer.name} has {key}={value}; the exporter handles {wanted}"
                )
        activation = config["activation"]
        if activation not in _ACTIVATIONS:
            raise ExportError(
                f"convolution {layer.name} has activation {activation!r}; the exporter "
                "knows relu, sigmoid and linear"
            )
        # Keras kernels are (kh, kw, in, out); ONNX wants (out, in, kh, kw).
        kernel = np.asarray(layer.kernel.numpy(), dtype=np.float64).transpose(3, 2, 0, 1)
        out_channels = kernel.shape[0]
        bias = (
            np.asarray(layer.bias.numpy(), dtype=np.float64)
            if layer.use_bias
            else np.zeros(out_channels)
        )
        last = step
        bn = self._foldable_batch_norm(step) if activation == "linear" else None
        if bn is not None:
            scale, shift = batch_norm_affine(bn.layer)
            kernel = kernel * scale[:, None, None, None]
            bias = bias * scale + shift
            self._folded.add(id(bn))
            last = bn
        strides = [int(s) for s in config["strides"]]
        size = [int(k) for k in config["kernel_size"]]
        if config["padding"] == "same":
            pads = same_pads(size, strides)
        elif config["padding"] == "valid":
            pads = [0, 0, 0, 0]
        else:
            raise ExportError(
                f"convolution {layer.name} has padding {config['padding']!r}; "
                "the exporter handles same and valid"
            )
        op_activation = _ACTIVATIONS[activation]
        conv_out = self._output(last, "_conv" if op_activation else "")
        self._node(
            "Conv",
            [
                self._input(step),
                self._constant(f"{layer.name}/kernel", kernel),
                self._constant(f"{layer.name}/bias", bias),
            ],
            conv_out,
            layer.name,
            kernel_shape=size,
            strides=strides,
            pads=pads,
            dilations=[1, 1],
            group=1,
        )
        if op_activation:
            self._node(op_activation, [conv_out], self._output(last), f"{layer.name}_activation")

    def _foldable_batch_norm(self, conv: GraphStep) -> GraphStep | None:
        """The BN step reading ``conv``'s output, if it is that output's only use."""
        if not self.fold:
            return None
        out = conv.outputs[0]
        reader = self._reader.get(out)
        if reader is None or self._uses[out] != 1 or reader.kind != "BatchNormalization":
            return None
        return reader

    def _batchnormalization(self, step: GraphStep) -> None:
        layer = step.layer
        batch_norm_affine(layer)  # the same checks as a folded one
        mean = _array(layer.moving_mean)
        gamma = _array(layer.gamma) if layer.gamma is not None else np.ones_like(mean)
        beta = _array(layer.beta) if layer.beta is not None else np.zeros_like(mean)
        name = layer.name
        self._node(
            "BatchNormalization",
            [
                self._input(step),
                self._constant(f"{name}/gamma", gamma),
                self._constant(f"{name}/beta", beta),
                self._constant(f"{name}/moving_mean", mean),
                self._constant(f"{name}/moving_variance", _array(layer.moving_variance)),
            ],
            self._output(step),
            name,
            epsilon=float(layer.get_config()["epsilon"]),
        )

    def _activation(self, step: GraphStep) -> None:
        activation = step.layer.get_config()["activation"]
        if activation not in _ACTIVATIONS:
            raise ExportError(
                f"activation layer {step.layer.name} is {activation!r}; the exporter "
                "knows relu, sigmoid and linear"
            )
        op = _ACTIVATIONS[activation] or "Identity"
        self._node(op, [self._input(step)], self._output(step), step.layer.name)

    def _add(self, step: GraphStep) -> None:
        names = [self.names[i] for i in step.inputs]
        out = self._output(step)
        total = names[0]
        for k, other in enumerate(names[1:], start=1):
            target = out if k == len(names) - 1 else f"{out}_{k}"
            self._node("Add", [total, other], target, target)
            total = target

    def _concatenate(self, step: GraphStep) -> None:
        axis = step.layer.get_config()["axis"]
        if axis not in (-1, 3):
            raise ExportError(
                f"concatenation {step.layer.name} joins axis {axis}; the exporter "
                "handles the channel axis (-1) only"
            )
        names = [self.names[i] for i in step.inputs]
        self._node("Concat", names, self._output(step), step.layer.name, axis=1)

    def _upsampling2d(self, step: GraphStep) -> None:
        config = step.layer.get_config()
        if config["interpolation"] != "nearest" or config["data_format"] != "channels_last":
            raise ExportError(
                f"upsampling {step.layer.name} is {config['interpolation']} "
                f"({config['data_format']}); the exporter handles nearest, channels_last"
            )
        sy, sx = (int(s) for s in config["size"])
        scales = self._constant(
            f"{step.layer.name}/scales", np.array([1.0, 1.0, sy, sx], dtype=np.float32)
        )
        # asymmetric + floor: output pixel (y, x) reads input (y // sy, x // sx),
        # which is Keras's nearest upsampling (each pixel repeated).
        self._node(
            "Resize",
            [self._input(step), "", scales],
            self._output(step),
            step.layer.name,
            mode="nearest",
            coordinate_transformation_mode="asymmetric",
            nearest_mode="floor",
        )


def _layer_name(tensor: Any) -> str:
    return str(tensor._keras_history.operation.name)


def node_counts(proto: onnx.ModelProto) -> dict[str, int]:
    """How many nodes of each ONNX op type ``proto``'s graph has."""
    return dict(Counter(node.op_type for node in proto.graph.node))


def parameter_count(proto: onnx.ModelProto) -> int:
    """Number of numbers stored in ``proto``'s initializers (folding removes
    the statistics of the folded batch norms)."""
    return sum(math.prod(t.dims) for t in proto.graph.initializer)
