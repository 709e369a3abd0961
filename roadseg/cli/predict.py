"""``roadseg predict``: road probabilities for a GeoTIFF of any size."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import click

from roadseg.cli.batch import batch_options, run_batch, wants_batch
from roadseg.cli.options import (
    LibraryDefault,
    bands,
    check_tile_size,
    engine_option,
    memory_size,
    model_opt,
    overwrite_opt,
    probability,
    quiet_opt,
    show_progress,
)
from roadseg.precision import PRECISIONS

if TYPE_CHECKING:  # pragma: no cover
    from roadseg.predict import PredictOptions, PredictResult


def _gsd(ctx: click.Context, param: click.Parameter, value: float | None) -> float | None:
    import math

    if value is not None and not (math.isfinite(value) and value > 0):
        raise click.BadParameter(f"must be a positive number of metres per pixel, got {value}")
    return value


@click.command(short_help="Road probability GeoTIFF for an image.")
@click.argument(
    "inputs", metavar="INPUT...", nargs=-1, required=True, type=click.Path(dir_okay=False)
)
@click.option(
    "--output",
    "-o",
    type=click.Path(dir_okay=False),
    default=None,
    help="Probability GeoTIFF to write. Default: <input stem>_roads.tif beside the input.",
)
@model_opt
@click.option(
    "--tile-size",
    type=int,
    default=None,
    help="Tile side in pixels, a multiple of 8. Default: the model's training size.",
)
@click.option(
    "--overlap",
    cls=LibraryDefault,
    default_from="roadseg.predict:DEFAULT_OVERLAP",
    type=int,
    help="Pixels shared by neighbouring tiles; blended with a smooth window so no seam shows.",
)
@click.option(
    "--batch-size",
    cls=LibraryDefault,
    default_from="roadseg.predict:DEFAULT_BATCH",
    shown=lambda n: f"{n} on a CPU",
    type=int,
    help="Tiles per model call. On a GPU, without it: as many as its free memory holds "
    "(halved if it still runs out of memory). Cut to what fits in --max-memory.",
)
@click.option(
    "--max-memory",
    cls=LibraryDefault,
    default_from="roadseg.predict:DEFAULT_MAX_MEMORY",
    shown=lambda n: f"{n / 2**30:g}G",
    callback=memory_size,
    metavar="SIZE",
    help="Memory for the network's working tensors in one model call, e.g. 512M or 4G; "
    "the whole process peaks about 0.7 GB above it on a CPU. The batch is cut to fit, "
    "whatever --batch-size, --tile-size, --precision and --tta ask for.",
)
@click.option(
    "--bands",
    callback=bands,
    default=None,
    help="Input bands that feed the model, 1-based, e.g. 1,2,3 or 1,1,1 for a single band.",
)
@click.option(
    "--threshold",
    type=float,
    default=None,
    callback=probability,
    help="Probability at which a pixel counts as road in --mask. Default: the model's.",
)
@click.option(
    "--mask",
    "mask_path",
    type=click.Path(dir_okay=False),
    default=None,
    help="Also write a road mask GeoTIFF (1 road, 0 not, 255 nodata).",
)
@click.option(
    "--preview",
    "preview_path",
    type=click.Path(dir_okay=False),
    default=None,
    help="Also write a downsampled PNG of the image with roads drawn over it.",
)
@click.option(
    "--float",
    "as_float",
    is_flag=True,
    help="Store float32 probabilities (nodata -1) instead of uint8.",
)
@click.option(
    "--precision",
    cls=LibraryDefault,
    default_from="roadseg.predict:PredictOptions.precision",
    type=click.Choice(PRECISIONS),
    help="auto: bfloat16 on a CPU with AVX-512-BF16/AMX, float16 on a GPU, else float32.",
)
@engine_option
@click.option(
    "--tta",
    cls=LibraryDefault,
    default_from="roadseg.predict:PredictOptions.tta",
    type=click.Choice(["none", "flip", "d4"]),
    help="Test-time augmentation: average over a flip (2x cost) or all 8 flips/rotations (8x).",
)
@click.option(
    "--gsd",
    type=float,
    default=None,
    callback=_gsd,
    metavar="METRES",
    help="Ground sample distance of INPUT in metres per pixel. Needed for images without "
    "georeferencing (PNG, JPEG, plain TIFF) to be matched to the model; on a georeferenced "
    "image it overrides the pixel size read from it (with a warning if they differ).",
)
@click.option(
    "--resample/--no-resample",
    default=True,
    show_default=True,
    help="When the model records the GSD it was trained at and INPUT's differs by more than "
    "5%, read INPUT resampled to the model's GSD and write the results back on INPUT's grid. "
    "A model trained at 1 m sees roads in 0.3 m imagery as three times too wide. "
    "--no-resample reads INPUT as it is.",
)
@click.option(
    "--vectorize",
    "vector_path",
    is_flag=False,
    flag_value="",
    default=None,
    metavar="[PATH]",
    help="Also write the road centerlines (as 'roadseg vectorize' does, default options) "
    "to PATH: .gpkg or .geojson. Without PATH: <input stem>_roads.gpkg beside the input.",
)
@click.option(
    "--resume",
    is_flag=True,
    help="Keep a journal of finished blocks beside the output (.<name>.resume/) and, if a "
    "killed run of the same input, model and options left one, continue it: only unfinished "
    "rows are computed and the result is identical. Start long runs with it.",
)
@batch_options
@overwrite_opt
@quiet_opt
def predict(
    inputs: tuple[str, ...],
    output: str | None,
    model: str | None,
    tile_size: int | None,
    overlap: int,
    batch_size: int | None,
    max_memory: int | None,
    bands: tuple[int, ...] | None,
    threshold: float | None,
    mask_path: str | None,
    preview_path: str | None,
    as_float: bool,
    precision: str,
    engine: str,
    tta: str,
    gsd: float | None,
    resample: bool,
    vector_path: str | None,
    resume: bool,
    output_dir: str | None,
    workers: int | None,
    scheduler: str | None,
    split_above: float,
    region_rows: int,
    overwrite: bool,
    quiet: bool,
) -> None:
    """Find roads in INPUT, a GeoTIFF (or any GDAL raster) of any size.

    Several INPUTs, glob patterns (quoted) and list files (@list.txt) each get
    their own output; --workers N or --scheduler ADDRESS runs them on Dask,
    where a raster above --split-above megapixels is split into row regions.

    The image is cut into overlapping tiles, run through the ResUNet in
    batches (on a GPU when TensorFlow sees one), and the tiles are blended back
    into one probability map on the input's grid: same size, CRS and transform.
    Memory depends on the image's width, not its area.

    By default probabilities are stored as uint8: value = probability x 254,
    255 = nodata (GDAL scale metadata lets QGIS show true probabilities).
    uint8 images are scaled by 1/255; 16-bit and float images get a 2-98
    percentile stretch over the whole raster.

    A model trained by 'roadseg train' records the ground sample distance
    (GSD, metres per pixel) of its training data. When INPUT's GSD is known
    (from its georeferencing, or --gsd) and differs from it by more than 5%,
    INPUT is read resampled to the model's GSD and the results are written
    back on INPUT's grid; the output tag ROADSEG_RESAMPLED_GSD says so.

    \b
    Examples:
      roadseg predict ortho.tif
      roadseg predict ortho.tif -o roads.tif --mask mask.tif --preview roads.png
      roadseg predict pan.tif --bands 1,1,1          # single-band imagery
      roadseg predict big.tif --batch-size 32 --quiet
      roadseg predict big.tif --resume     # again after a crash: continues
      roadseg predict ortho.tif --vectorize roads.gpkg    # centerlines too
      roadseg predict photo.png --gsd 0.3           # no georeferencing: state the GSD
      roadseg predict 'tiles/*.tif' --output-dir out --workers 2
      roadseg predict @tiles.txt --output-dir out --scheduler tcp://10.0.0.5:8786
      roadseg predict huge.tif --workers 2     # one big raster: split in row regions
    """
    from roadseg.predict import DEFAULT_MAX_MEMORY, PredictOptions

    _check_sizes(batch_size, tile_size, overlap)
    options = PredictOptions(
        tile_size=tile_size,
        overlap=overlap,
        batch_size=batch_size,
        max_memory=DEFAULT_MAX_MEMORY if max_memory is None else max_memory,
        engine=engine,
        bands=bands,
        threshold=threshold,
        mask_path=Path(mask_path) if mask_path else None,
        preview_path=Path(preview_path) if preview_path else None,
        as_float=as_float,
        precision=precision,
        tta=tta,
        overwrite=overwrite,
        progress=show_progress(quiet),
        resume=resume,
    )
    if not wants_batch(inputs, output_dir, workers, scheduler):
        _predict_one(Path(inputs[0]), output, model, options, gsd, resample, vector_path, quiet)
        return
    if gsd is not None:
        raise click.BadParameter(
            "states the GSD of one image; run each image on its own", param_hint="--gsd"
        )
    run_batch(
        inputs,
        options=options,
        model=model,
        output=output,
        output_dir=output_dir,
        mask=mask_path,
        preview=preview_path,
        vectorize=vector_path,
        workers=workers,
        scheduler=scheduler,
        split_above=split_above,
        region_rows=region_rows,
        resample=resample,
        quiet=quiet,
    )


def _check_sizes(batch_size: int | None, tile_size: int | None, overlap: int) -> None:
    """The checks of --batch-size, --tile-size and --overlap, in this order.

    Raises:
        click.BadParameter: the first option that is out of range.
    """
    if batch_size is not None and batch_size < 1:
        raise click.BadParameter("must be at least 1", param_hint="--batch-size")
    check_tile_size(tile_size)
    if overlap < 0 or overlap % 2:
        raise click.BadParameter("must be a non-negative even number", param_hint="--overlap")


def _predict_one(
    src: Path,
    output: str | None,
    model: str | None,
    options: PredictOptions,
    gsd: float | None,
    resample: bool,
    vector_path: str | None,
    quiet: bool,
) -> None:
    """Predict one raster in-process (with --vectorize, also its centerlines); report."""
    from roadseg.cli.tfimport import import_tensorflow_quietly
    from roadseg.model import load_model
    from roadseg.resample import predict_at_model_gsd

    out = Path(output) if output else src.with_name(f"{src.stem}_roads.tif")
    vectors = _vector_path(src, out, vector_path, options.overwrite)
    import_tensorflow_quietly()
    loaded = load_model(model)
    result = predict_at_model_gsd(src, out, loaded, options, gsd=gsd, resample=resample)
    if not quiet:
        _report(result)
    if vectors is not None:
        from roadseg.vectorize import VectorizeOptions, vectorize_raster

        vec = vectorize_raster(
            out,
            vectors,
            VectorizeOptions(
                threshold=result.threshold, overwrite=options.overwrite, progress=options.progress
            ),
        )
        if not quiet:
            click.echo(
                f"Wrote {vec.output}: {vec.lines} lines, {vec.length_m / 1000:.2f} km, "
                f"{vec.junctions} junctions",
                err=True,
            )


def _report(result: PredictResult) -> None:
    """What predict wrote, on stderr."""
    rate = result.tiles / result.seconds if result.seconds else 0.0
    click.echo(
        f"Wrote {result.output} ({result.tiles} tiles in {result.seconds:.1f} s, "
        f"{rate:.1f} tiles/s)",
        err=True,
    )
    if "ROADSEG_RESAMPLED_GSD" in result.tags:
        click.echo(
            f"  read at the model's {result.tags['ROADSEG_RESAMPLED_GSD']} m per pixel "
            f"(input: {float(result.tags['ROADSEG_INPUT_GSD']):.3g} m), "
            "written on the input's grid",
            err=True,
        )
    if result.mask:
        click.echo(f"Wrote {result.mask} (threshold {result.threshold:g})", err=True)
    if result.preview:
        click.echo(f"Wrote {result.preview}", err=True)


def _vector_path(src: Path, out: Path, value: str | None, overwrite: bool) -> Path | None:
    """The --vectorize output, checked before any pixel is predicted."""
    if value is None:
        return None
    from roadseg.raster_io import check_output
    from roadseg.vector_io import output_format

    path = Path(value) if value else src.with_name(f"{src.stem}_roads.gpkg")
    output_format(path)
    if path.resolve() == out.resolve():
        raise click.BadParameter(
            "must differ from the probability output", param_hint="--vectorize"
        )
    check_output(path, overwrite=overwrite, inputs=(src,), what="vector output")
    return path
