"""``export_model``: a roadseg model file as an ONNX or OpenVINO IR file,
checked against Keras before it is written.

The ONNX file is what the QGIS Deepness plugin loads: NCHW float32 input of a
fixed square size (Deepness sets its tile size from the input shape and needs
it square), free batch, one ``[N, 1, H, W]`` sigmoid output, and the metadata
of :mod:`roadseg.export.metadata`. ``dynamic=True`` leaves height and width
free instead, for tools that accept that (Deepness does not).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from roadseg.errors import ExportError, OutputError
from roadseg.export.check import ExportCheck, check_export, default_runtime, random_tiles
from roadseg.optional import require

#: Export formats and the suffix of the file each writes.
FORMATS = {"onnx": ".onnx", "openvino": ".xml"}
_FORMAT_NAMES = {"onnx": "ONNX", "openvino": "OpenVINO IR"}
#: Random tiles compared with Keras before writing.
CHECK_TILES = 2
#: The largest probability difference from Keras an export may have (float32
#: agreement is about 1e-6; this catches a wrong graph, not rounding).
TOLERANCE = 1e-3


@dataclass(frozen=True)
class ExportResult:
    """What :func:`export_model` wrote.

    Attributes:
        path: the ONNX file, or the IR's ``.xml``.
        format: ``onnx`` or ``openvino``.
        files: every file written (the IR's ``.bin`` too).
        input_shape: the graph's input, e.g. ``("batch", 3, 224, 224)``.
        batch_norms_folded: batch norms folded into convolutions.
        batch_norms_kept: batch norms left as their own op.
        check: the comparison with the Keras model.
        metadata: the metadata written, JSON texts by key.
    """

    path: Path
    format: str
    files: tuple[Path, ...]
    input_shape: tuple[int | str, ...]
    batch_norms_folded: int
    batch_norms_kept: int
    check: ExportCheck
    metadata: dict[str, str] = field(repr=False)


def export_model(
    model: str | os.PathLike[str] | None,
    output: str | os.PathLike[str],
    *,
    fmt: str = "onnx",
    overwrite: bool = False,
    tile_size: int | None = None,
    dynamic: bool = False,
    check_tiles: int = CHECK_TILES,
    seed: int = 0,
) -> ExportResult:
    """Export a roadseg model file to ONNX or OpenVINO IR.

    Nothing is written unless the export agrees with the Keras model on
    ``check_tiles`` random tiles (max abs probability difference at most
    :data:`TOLERANCE`); the output then appears whole or not at all.

    Args:
        model: a ``.keras`` model file; None for the bundled model.
        output: the ``.onnx`` file, or the IR's ``.xml`` (its ``.bin`` is
            written beside it).
        fmt: ``onnx`` or ``openvino``.
        overwrite: replace existing output files.
        tile_size: the input's fixed height and width (default: the model's
            training tile size).
        dynamic: leave height and width free instead.
        check_tiles: random tiles to compare with Keras (at least 1).
        seed: seed of the random tiles.

    Raises:
        ExportError: an unknown format, ``tile_size`` with ``dynamic``, a
            model the converter cannot convert, or an export that disagrees
            with Keras.
        OutputError: a wrong suffix, a missing folder, or an existing output
            without ``overwrite``.
        ModelError: the model file is missing or not a roadseg model.
        MissingDependencyError: onnx, or the runtime the check needs, is missing.
    """
    from roadseg.export.metadata import add_metadata, model_metadata
    from roadseg.export.onnx_graph import keras_to_onnx, node_counts
    from roadseg.model import load_model
    from roadseg.raster_io import atomic_output, check_output

    if fmt not in FORMATS:
        raise ExportError(f"unknown export format {fmt!r}; use one of {', '.join(FORMATS)}")
    if tile_size is not None and dynamic:
        raise ExportError("give a fixed tile size or a dynamic one, not both")
    if check_tiles < 1:
        raise ExportError(f"the check needs at least one tile, got {check_tiles}")
    path = Path(output)
    suffix = FORMATS[fmt]
    if path.suffix.lower() != suffix:
        raise OutputError(
            f"{path}: an {_FORMAT_NAMES[fmt]} export is written to a {suffix} file; "
            f"use -o NAME{suffix}"
        )
    bin_path = path.with_suffix(".bin")
    paths: tuple[Path, ...] = (path, bin_path) if fmt == "openvino" else (path,)
    for target in paths:
        check_output(target, overwrite=overwrite, what="export")

    # Every package before the model loads: a missing one fails in a second.
    if fmt == "openvino":
        purpose = "roadseg export --format openvino"
        require("openvino", purpose)
        require("onnx", purpose, "openvino")
    else:
        purpose = "roadseg export"
        require("onnx", purpose)
        if default_runtime() is None:
            require("onnxruntime", purpose + " (to check the export)")

    loaded = load_model(model)
    size = None if dynamic else (tile_size or loaded.info.tile_size)
    proto = keras_to_onnx(loaded.model, tile_size=size)
    metadata = model_metadata(loaded.info)
    add_metadata(proto, metadata)
    proto.doc_string = (
        f"roadseg ResUNet {loaded.path.name} (sha256 {loaded.sha256[:12]}): "
        f"[N, {loaded.info.bands}, H, W] float32 0-1 -> [N, 1, H, W] road probability"
    )
    exported = proto
    if fmt == "openvino":
        from roadseg.export.openvino_ir import to_openvino

        exported = to_openvino(proto, metadata)

    tiles = random_tiles(check_tiles, size or loaded.info.tile_size, loaded.info.bands, seed=seed)
    check = check_export(loaded.model, exported, tiles)
    if not check.max_abs <= TOLERANCE:
        raise ExportError(
            f"the export differs from the Keras model by up to {check.max_abs:.3g} in "
            f"probability (more than {TOLERANCE:g}) on {check.tiles} random tiles; "
            "nothing was written"
        )

    if fmt == "onnx":
        onnx = require("onnx", purpose)
        with atomic_output(path, overwrite=overwrite) as tmp:
            onnx.save_model(proto, str(tmp))
    else:
        from roadseg.export.openvino_ir import save_ir

        # The inner block publishes first: the .bin, then the .xml that a user
        # opens, so an .xml never appears without its weights.
        with (
            atomic_output(path, overwrite=overwrite) as tmp_xml,
            atomic_output(bin_path, overwrite=overwrite) as tmp_bin,
        ):
            written_bin = save_ir(exported, tmp_xml)
            os.replace(written_bin, tmp_bin)

    kept = node_counts(proto).get("BatchNormalization", 0)
    total = sum(type(layer).__name__ == "BatchNormalization" for layer in loaded.model.layers)
    graph_input = proto.graph.input[0].type.tensor_type.shape.dim
    return ExportResult(
        path=path,
        format=fmt,
        files=paths,
        input_shape=tuple(d.dim_param or d.dim_value for d in graph_input),
        batch_norms_folded=total - kept,
        batch_norms_kept=kept,
        check=check,
        metadata=metadata,
    )
