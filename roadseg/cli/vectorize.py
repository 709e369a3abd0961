"""``roadseg vectorize``: road centerlines from a road mask or probability GeoTIFF."""

from __future__ import annotations

from pathlib import Path

import click

from roadseg.cli.options import (
    LibraryDefault,
    check_workers_or_scheduler,
    non_negative,
    overwrite_opt,
    probability,
    quiet_opt,
    scheduler_opt,
    show_progress,
    workers_opt,
)


@click.command(short_help="Road centerlines (GeoPackage/GeoJSON) from a road mask.")
@click.argument("input_path", metavar="INPUT", type=click.Path(dir_okay=False))
@click.option(
    "--output",
    "-o",
    type=click.Path(dir_okay=False),
    default=None,
    help="Vector file to write: .gpkg (GeoPackage, in the raster's CRS) or .geojson "
    "(WGS84 longitude/latitude). Default: <input stem>_roads.gpkg beside the input "
    "(<stem>.gpkg when the stem already ends in _roads).",
)
@click.option(
    "--threshold",
    "-t",
    type=float,
    default=None,
    callback=probability,
    help="Probability at which a pixel is road (probability input only). Default: the "
    "threshold roadseg predict stored in the file, else 0.5.",
)
@click.option(
    "--low",
    type=float,
    default=None,
    callback=probability,
    help="Hysteresis: also keep pixels down to this probability when they are connected "
    "to a pixel at or above --threshold (faint stretches of a road that is clear elsewhere).",
)
@click.option(
    "--min-area",
    cls=LibraryDefault,
    default_from="roadseg.vectorize:VectorizeOptions.min_area_m2",
    type=float,
    callback=non_negative,
    metavar="M2",
    help="Drop blobs of road smaller than this many square metres (speckle); thin "
    "blobs 10 m or longer stay.",
)
@click.option(
    "--holes",
    cls=LibraryDefault,
    default_from="roadseg.vectorize:VectorizeOptions.hole_area_m2",
    type=float,
    callback=non_negative,
    metavar="M2",
    help="Fill holes in the road mask smaller than this many square metres (cars, shadows).",
)
@click.option(
    "--spur",
    cls=LibraryDefault,
    default_from="roadseg.vectorize:VectorizeOptions.spur_m",
    type=float,
    callback=non_negative,
    metavar="M",
    help="Prune side branches reaching less than this many metres beyond the road's "
    "edge, and drop fragments shorter than this.",
)
@click.option(
    "--merge",
    cls=LibraryDefault,
    default_from="roadseg.vectorize:VectorizeOptions.merge_m",
    type=float,
    callback=non_negative,
    metavar="M",
    help="Merge junctions closer than this many metres (or inside each other's road "
    "surface) into one.",
)
@click.option(
    "--gap",
    cls=LibraryDefault,
    default_from="roadseg.vectorize:VectorizeOptions.gap_m",
    type=float,
    callback=non_negative,
    metavar="M",
    help="Bridge gaps up to this many metres between road ends that point at each "
    "other (or at another road); 0 turns bridging off.",
)
@click.option(
    "--simplify",
    cls=LibraryDefault,
    default_from="roadseg.vectorize:VectorizeOptions.simplify_m",
    type=float,
    callback=non_negative,
    metavar="M",
    help="Douglas-Peucker tolerance in metres; 0 keeps a vertex at every pixel.",
)
@click.option(
    "--chunk-size",
    cls=LibraryDefault,
    default_from="roadseg.vectorize:VectorizeOptions.chunk_size",
    type=int,
    metavar="PX",
    help="Process the raster in square chunks of this many pixels (a multiple of 8, at "
    "least 64); memory grows with its square, the result does not change.",
)
@workers_opt
@scheduler_opt
@overwrite_opt
@quiet_opt
def vectorize(
    input_path: str,
    output: str | None,
    threshold: float | None,
    low: float | None,
    min_area: float,
    holes: float,
    spur: float,
    merge: float,
    gap: float,
    simplify: float,
    chunk_size: int,
    workers: int | None,
    scheduler: str | None,
    overwrite: bool,
    quiet: bool,
) -> None:
    """Turn INPUT, a road mask or road probability GeoTIFF, into road centerlines.

    INPUT is what roadseg predict writes (probabilities, or its --mask), or any
    single-band mask where non-zero means road. The mask is cleaned (speckle
    dropped, small holes filled), thinned to a one-pixel skeleton and turned into
    a graph of junctions and road lines; spurs are pruned, split junctions merged
    and short gaps bridged. Lines are noded at junctions and carry length_m,
    width_m and, for probability input, prob_mean and prob_min. All lengths are in
    metres on the ground, also for rasters in degrees.

    Large rasters are processed in chunks with bounded memory; the result is the
    same as in one piece. The defaults suit 0.3-1 m imagery. With --workers N
    (local processes) or --scheduler ADDRESS (a running Dask cluster) the chunks
    are cleaned and thinned as Dask tasks; the result is the same, bit for bit.

    \b
    Examples:
      roadseg vectorize ortho_roads.tif                  # -> ortho_roads.gpkg
      roadseg vectorize mask.tif -o roads.geojson        # WGS84 for the web
      roadseg vectorize ortho_roads.tif -t 0.6 --low 0.3 # hysteresis
      roadseg vectorize mask.tif --gap 20 --spur 10 --simplify 1 -o roads.gpkg
      roadseg vectorize big_mask.tif --workers 4         # 4 local processes
    """
    from roadseg.vectorize import VectorizeOptions, default_output_path, vectorize_raster

    if threshold is not None and low is not None and low > threshold:
        raise click.BadParameter(
            f"{low} is above --threshold {threshold}; hysteresis needs low <= threshold",
            param_hint="--low",
        )
    if chunk_size < 64 or chunk_size % 8:
        raise click.BadParameter(
            f"{chunk_size} is not a multiple of 8 of at least 64", param_hint="--chunk-size"
        )
    check_workers_or_scheduler(workers, scheduler)
    options = VectorizeOptions(
        threshold=threshold,
        low=low,
        min_area_m2=min_area,
        hole_area_m2=holes,
        spur_m=spur,
        merge_m=merge,
        gap_m=gap,
        simplify_m=simplify,
        chunk_size=chunk_size,
        overwrite=overwrite,
        progress=show_progress(quiet),
    )
    src = Path(input_path)
    out = Path(output) if output else default_output_path(src)
    result = vectorize_raster(src, out, options, workers=workers, scheduler=scheduler)
    if not quiet:
        what = f"probabilities >= {result.threshold:g}" if result.kind == "probability" else "mask"
        where = "" if result.where == "in-process" else f", {result.where}"
        click.echo(
            f"Wrote {result.output}: {result.lines} lines, {result.length_m / 1000:.2f} km, "
            f"{result.junctions} junctions (from {what}, {result.seconds:.1f} s{where})",
            err=True,
        )
