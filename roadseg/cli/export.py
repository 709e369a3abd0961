"""``roadseg export``: a model as ONNX (QGIS Deepness, onnxruntime) or OpenVINO IR."""

from __future__ import annotations

from pathlib import Path

import click

from roadseg.cli.options import check_tile_size, overwrite_opt, quiet_opt


@click.command(short_help="A model as ONNX (QGIS Deepness, onnxruntime) or OpenVINO IR.")
@click.argument("model", metavar="[MODEL]", required=False, default=None)
@click.option(
    "--output",
    "-o",
    required=True,
    type=click.Path(dir_okay=False),
    help="File to write: NAME.onnx, or NAME.xml for --format openvino (NAME.bin is "
    "written beside it).",
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["onnx", "openvino"]),
    default="onnx",
    show_default=True,
    help="onnx: one .onnx file for QGIS Deepness, onnxruntime and most tools. "
    "openvino: OpenVINO IR (.xml + .bin) with float32 weights.",
)
@click.option(
    "--tile-size",
    type=int,
    default=None,
    metavar="PX",
    help="Fixed input height and width, a multiple of 8. Default: the tile size the "
    "model was trained on (Deepness takes its tile size from the model's input).",
)
@click.option(
    "--dynamic",
    is_flag=True,
    help="Leave the input's height and width free (any multiple of 8) instead of fixed. "
    "For onnxruntime or OpenVINO scripts; Deepness cannot load such a file.",
)
@overwrite_opt
@quiet_opt
def export(
    model: str | None,
    output: str,
    fmt: str,
    tile_size: int | None,
    dynamic: bool,
    overwrite: bool,
    quiet: bool,
) -> None:
    """Write MODEL (a .keras file; omitted or 'default': the bundled model) as
    ONNX or OpenVINO IR, with its metadata, after checking it against Keras.

    The exported network takes [N, bands, H, W] float32 values in 0-1 (NCHW)
    and gives [N, 1, H, W] road probabilities; batch norms are folded into the
    convolutions. Before anything is written, the export and the Keras model
    run on a few random tiles and the largest probability difference is
    printed; an export that disagrees is not written.

    The ONNX file carries roadseg's model metadata (bands, normalisation, tile
    size, GSD, threshold, provenance) and the keys the QGIS Deepness plugin
    reads: model type Segmentor, class 'road', resolution (cm/px), tile size,
    overlap (%) and threshold.

    \b
    In QGIS (Deepness plugin, from Plugins > Manage and Install Plugins;
    it needs onnxruntime in QGIS's Python):
      1. Open the Deepness panel; Model file path: the .onnx file. The
         model type (Segmentor) and tile size are read from the file.
      2. Click "Load default parameters": resolution (cm/px), overlap
         (%) and the probability threshold are filled in.
      3. Input layer: a stretched 8-bit RGB image (see below); Run.
    Deepness divides pixel values by 255. roadseg normalises as the model file
    says: the bundled model stretches each band between its 2nd and 98th
    percentile, whatever the dtype ('auto' models do so for non-uint8 data).
    Plain /255 pixels change the roads found, so give Deepness a stretched
    8-bit image: Symbology 'Cumulative count cut' 2-98 %, then Export > Save
    As... > Rendered image. The README has the details.

    Needs the optional packages: pip install "roadseg[onnx]" (onnx and
    onnxruntime) or "roadseg[openvino]" for --format openvino.

    \b
    Examples:
      roadseg export -o roads.onnx                  # the bundled model, for QGIS
      roadseg export my_model.keras -o my_model.onnx
      roadseg export default -o roads.xml --format openvino
      roadseg export my_model.keras -o any_size.onnx --dynamic
    """
    from roadseg.cli.tfimport import import_tensorflow_quietly
    from roadseg.export import export_model

    check_tile_size(tile_size)
    if tile_size is not None and dynamic:
        raise click.BadParameter("give --tile-size or --dynamic, not both", param_hint="--dynamic")
    if model == "default":
        model = None
    if model is not None and not Path(model).is_file():
        raise click.BadParameter(
            f"{model} is not a file; give a .keras model, or omit MODEL for the bundled one",
            param_hint="MODEL",
        )
    import_tensorflow_quietly()
    result = export_model(
        model,
        output,
        fmt=fmt,
        overwrite=overwrite,
        tile_size=tile_size,
        dynamic=dynamic,
    )
    if quiet:
        return
    check = result.check
    shape = ", ".join(str(d) for d in result.input_shape)
    click.echo(
        f"Wrote {', '.join(str(p) for p in result.files)}: input [{shape}] float32, "
        f"{result.batch_norms_folded} batch norms folded into convolutions",
        err=True,
    )
    click.echo(
        f"Checked against Keras on {check.tiles} random {check.tile_size}x{check.tile_size} "
        f"tiles ({check.runtime}): max abs difference {check.max_abs:.2g}, "
        f"mean {check.mean_abs:.2g}",
        err=True,
    )
