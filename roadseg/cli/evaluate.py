"""``roadseg evaluate``: score a road prediction against a truth mask."""

from __future__ import annotations

import dataclasses
import enum
import json
import math
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import click

from roadseg.cli.options import (
    LibraryDefault,
    bands_opt,
    check_road_layer_options,
    engine_option,
    given,
    gsd_opt,
    model_opt,
    overwrite_opt,
    probability,
    road_color,
    road_layer_options,
    road_width_opt,
    show_progress,
)

if TYPE_CHECKING:  # pragma: no cover
    from roadseg.data.road_data import RoadLabels
    from roadseg.metrics import EvaluationResult
    from roadseg.vector_metrics import NetworkEvaluation

#: Largest tolerance accepted; beyond this "relaxed" stops meaning "the same road".
MAX_RHO = 100.0


class Mode(enum.Enum):
    """What ``roadseg evaluate`` scores; :func:`choose_mode` decides."""

    DATASET = "a model, predicting every image of a dataset folder (--data DIR)"
    ROADS = "a model, predicting rasters labelled by a road layer (--data RASTERS --roads LAYER)"
    FOLDERS = "every prediction in one folder against its truth in another"
    NETWORK = "a road network (or raster) against vector truth"
    RASTERS = "one prediction raster against one truth mask"


def choose_mode(
    pred: str | None,
    truth: str | None,
    data: str | None,
    model: str | None,
    road_color: tuple[int, int, int] | None,
    road_value: int | None,
    roads: str | None = None,
) -> Mode:
    """The mode that the arguments ask for, or a usage error.

    --data RASTERS with --roads LAYER scores a model on rasters labelled by a
    road layer; --data DIR scores a model on a dataset; otherwise PRED and
    TRUTH are two folders, or TRUTH is a vector file (.geojson, .json, .gpkg),
    or both are rasters.

    Raises:
        click.UsageError: the arguments fit no mode (exit 2).
    """
    from roadseg.vector_metrics import VECTOR_SUFFIXES

    if roads is not None:
        if data is None:
            raise click.UsageError(
                "--roads labels the rasters of --data; give --data (a raster, a folder, "
                "a glob, a VRT or @list.txt)"
            )
        if pred is not None or truth is not None:
            raise click.UsageError("give PRED TRUTH or --data with --roads, not both")
        if road_color is not None or road_value is not None:
            raise click.UsageError(
                "--road-color and --road-value read mask datasets; with --roads the road "
                "layer is the truth"
            )
        return Mode.ROADS
    if data is not None:
        if pred is not None or truth is not None:
            raise click.UsageError("give PRED TRUTH or --data DIR, not both")
        if road_color is not None and road_value is not None:
            raise click.BadParameter("give --road-color or --road-value, not both")
        return Mode.DATASET
    if pred is None or truth is None:
        raise click.UsageError(
            "give PRED and TRUTH (a prediction and its truth), or --data DIR to score a model"
        )
    if model is not None:
        raise click.UsageError("--model goes with --data DIR")
    if Path(pred).is_dir() and Path(truth).is_dir():
        return Mode.FOLDERS
    if Path(truth).suffix.lower() in VECTOR_SUFFIXES:
        return Mode.NETWORK
    return Mode.RASTERS


@click.command(short_help="Relaxed precision/recall, IoU and F1 of a prediction.")
@click.argument("pred", type=click.Path(), required=False)
@click.argument("truth", type=click.Path(), required=False)
@click.option(
    "--threshold",
    cls=LibraryDefault,
    default_from="roadseg.metrics:DEFAULT_THRESHOLD",
    type=float,
    callback=probability,
    help="Probability at or above which a PRED pixel counts as road.",
)
@click.option(
    "--rho",
    cls=LibraryDefault,
    default_from="roadseg.metrics:DEFAULT_RHO",
    type=click.FloatRange(0.0, MAX_RHO),
    help="Tolerance of the relaxed metrics, in pixels (Euclidean). 0 = strict.",
)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object instead of a table.")
@click.option(
    "--curve",
    "curve_path",
    type=click.Path(dir_okay=False),
    default=None,
    help="Also write every metric at every threshold to this CSV file.",
)
@click.option(
    "--buffer",
    "buffer_m",
    type=click.FloatRange(0.0, 1000.0, min_open=True),
    default=2.0,
    show_default=True,
    help="Vector TRUTH only: how far (metres) a line may lie from the other network and "
    "still count as matched, for completeness, correctness and quality.",
)
@click.option(
    "--data",
    type=str,
    default=None,
    help="Score a model on a dataset folder (any layout 'roadseg train' knows) instead of "
    "PRED/TRUTH: every image is predicted and compared with its mask. With --roads: a "
    "raster, a folder of rasters, a glob ('tiles/*.tif'), a VRT or @list.txt.",
)
@model_opt
@road_layer_options
@road_width_opt
@bands_opt
@gsd_opt
@click.option(
    "--network/--no-network",
    default=True,
    show_default=True,
    help="With --roads: also vectorize the predictions and score the network against the "
    "lines (completeness, correctness, APLS).",
)
@click.option(
    "--split",
    type=click.Choice(["auto", "test", "val", "train", "all"]),
    default="auto",
    show_default=True,
    help="With --data: which pairs. auto = the layout's test split, else its own validation "
    "split, else every pair.",
)
@click.option(
    "--road-color",
    callback=road_color,
    default=None,
    metavar="R,G,B",
    help="With --data: road class colour of multi-class colour masks.",
)
@click.option(
    "--road-value",
    type=click.IntRange(min=0),
    default=None,
    metavar="N",
    help="With --data: road class value of multi-class index masks.",
)
@overwrite_opt
@engine_option
@click.option("--quiet", "-q", is_flag=True, help="No progress bar and no 'Wrote' note.")
def evaluate(
    pred: str | None,
    truth: str | None,
    threshold: float,
    rho: float,
    as_json: bool,
    curve_path: str | None,
    buffer_m: float,
    data: str | None,
    model: str | None,
    roads: str | None,
    layer: str | None,
    width_field: str | None,
    width_table: str | None,
    aoi: str | None,
    half: str | None,
    road_width_m: float,
    bands: tuple[int, ...] | None,
    gsd: float | None,
    network: bool,
    split: str,
    road_color: tuple[int, int, int] | None,
    road_value: int | None,
    overwrite: bool,
    engine: str,
    quiet: bool,
) -> None:
    """Compare PRED, a road prediction, with TRUTH, a road mask of the same grid
    or a road network (GeoJSON/GeoPackage centerlines).

    \b
    Metrics (road pixels at --threshold):
      IoU, F1             overlap of predicted and true road pixels
      precision, recall   strict: a pixel is right only where the truth has road
      relaxed precision   share of predicted road pixels within --rho pixels
                          of a true road pixel
      relaxed recall      share of true road pixels within --rho pixels of a
                          predicted road pixel
      breakeven           the value at which relaxed precision equals relaxed
                          recall as the threshold varies, and that threshold

    PRED and TRUTH may also be two folders: files are matched by name
    (a_roads.tif with a.tif or a_mask.tif), each pair is scored, and the
    counts are pooled over the set.

    Road masks are a few pixels wide and annotators place them a pixel or two
    off, so the road-extraction literature (Mnih & Hinton 2010; the ResUNet
    paper, Zhang et al. 2018) reports the relaxed metrics with rho = 3 pixels.
    rho is in pixels, not metres: at 1 m resolution 3 px is 3 m.

    PRED may be a probability GeoTIFF from 'roadseg predict' (uint8 scaled
    by 1/254, or float32), any uint8 raster (value/255), or a 0/1 or 0/255
    mask. TRUTH is road where > 0. Nodata pixels in either are ignored
    (a nodata value of 0 is not: in a mask 0 means "no road").
    PNG and JPEG work too; the two rasters must have the same size.

    With vector TRUTH (.geojson, .json, .gpkg LineStrings), PRED is a road
    network (.gpkg/.geojson from 'roadseg vectorize') or a raster that is
    vectorized on the fly with vectorize's defaults. Reported, in metres
    whatever the CRS: completeness (share of true length within --buffer of
    PRED), correctness (share of PRED length within --buffer of the truth),
    quality (Wiedemann et al. 1998), junctions matched within 4 m, and APLS
    (SpaceNet's average path length similarity).

    \b
    Examples:
      roadseg evaluate tile_roads.tif tile_mask.tif
      roadseg evaluate tile_roads.gpkg centerlines.geojson --buffer 3
      roadseg evaluate --model my.keras --data deepglobe/ --json > scores.json

    With --data (and --model, default: the bundled model), every image of the
    dataset is predicted as 'roadseg predict' would and scored against its
    mask; the report is pooled over all pixels (as the field reports a test
    set) and lists each image. The threshold defaults to the model's.

    With --data RASTERS --roads LAYER, the rasters (one, a folder, a glob, a
    VRT or @list.txt) are predicted as 'roadseg predict' runs them and scored
    against the road layer, burned on each raster's grid exactly as
    'roadseg train --roads' draws its masks (--road-width-m, --width-field,
    --width-table). Only pixels inside --aoi and --half (default: each
    raster's footprint) count, never nodata (only that part of a raster and a
    margin are predicted); the pixel metrics are pooled
    over the rasters, and include the best F1 over all thresholds. The
    predictions are also vectorized and their network scored against the
    lines inside the same area (--no-network skips it).

    \b
    More examples:
      roadseg evaluate tile_roads.tif tile_mask.tif --rho 0 --threshold 0.4
      roadseg evaluate tile_roads.tif tile_mask.tif --json > scores.json
      roadseg evaluate tile_roads.tif tile_mask.tif --curve pr_curve.csv
      roadseg evaluate --model mine.keras --data ortho.tif --roads roads.gpkg --half lower
      roadseg evaluate --data 'tiles/*.tif' --roads osm.gpkg --aoi area.gpkg --json
    """
    check_road_layer_options(
        roads, layer=layer, width_field=width_field, width_table=width_table, aoi=aoi, half=half
    )
    mode = choose_mode(pred, truth, data, model, road_color, road_value, roads)
    if gsd is not None and mode is not Mode.ROADS:
        raise click.UsageError("--gsd goes with --data RASTERS --roads LAYER")
    if given("engine") and mode not in (Mode.ROADS, Mode.DATASET):
        raise click.UsageError("--engine goes with --data (it runs the model)")
    # PRED's own threshold (a model's, or vectorize's) unless --threshold was given.
    own = threshold if given("threshold") else None
    if mode is Mode.ROADS:
        if given("split"):
            raise click.UsageError(
                "--split chooses pairs of a dataset folder; with --roads limit the area "
                "with --aoi or --half"
            )
        from roadseg.data.road_data import RoadLabels
        from roadseg.data.roads import WidthRule

        rule = WidthRule.from_options(
            width_m=road_width_m if given("road_width_m") else None,
            field=width_field,
            table=width_table,
            fallback_m=road_width_m,
        )
        labels = RoadLabels(
            Path(cast(str, roads)),
            layer=layer,
            rule=rule,
            aoi=Path(aoi) if aoi else None,
            half=half,
        )
        _evaluate_roads(
            cast(str, data),
            model,
            labels,
            threshold=own,
            rho=rho,
            buffer_m=buffer_m,
            network=network,
            bands=bands,
            gsd=gsd,
            as_json=as_json,
            curve_path=curve_path,
            overwrite=overwrite,
            engine=engine,
            quiet=quiet,
        )
        return
    if mode is Mode.DATASET:
        data = cast(str, data)
        if not Path(data).is_dir():
            raise click.BadParameter(
                f"{data} is not a dataset folder; give a folder of image/mask pairs, or a "
                "road layer labelling these rasters with --roads",
                param_hint="--data",
            )
        rule_ = (road_color, road_value, road_width_m)
        _evaluate_data(data, model, split, rule_, bands, own, rho, as_json, engine, quiet)
        return
    pred, truth = cast(str, pred), cast(str, truth)  # choose_mode refused None
    if mode is Mode.FOLDERS:
        _evaluate_folders(pred, truth, threshold, rho, as_json, quiet)
    elif mode is Mode.NETWORK:
        _evaluate_network(pred, truth, own, buffer_m, as_json)
    else:
        _evaluate_rasters(pred, truth, threshold, rho, as_json, curve_path, overwrite, quiet)


def _evaluate_rasters(
    pred: str,
    truth: str,
    threshold: float,
    rho: float,
    as_json: bool,
    curve_path: str | None,
    overwrite: bool,
    quiet: bool,
) -> None:
    """One prediction raster against one truth mask (and the --curve CSV)."""
    from roadseg.metrics import evaluate_rasters, write_curve_csv
    from roadseg.raster_io import check_output

    if curve_path is not None:  # fail before the work, not after it
        check_output(curve_path, overwrite=overwrite, inputs=(pred, truth), what="curve CSV")
    result = evaluate_rasters(
        pred, truth, threshold=threshold, rho=rho, progress=show_progress(quiet)
    )
    if curve_path is not None:
        write_curve_csv(result.curve, curve_path, overwrite=overwrite)
    if as_json:
        click.echo(json.dumps({"pred": pred, "truth": truth, **result.to_dict()}, indent=2))
    else:
        click.echo(format_table(result, {"pred": pred, "truth": truth}))
    if curve_path is not None and not quiet:
        click.echo(f"Wrote {curve_path} ({len(result.curve)} thresholds)", err=True)


def _evaluate_data(
    data: str,
    model_path: str | None,
    split: str,
    label: tuple[tuple[int, int, int] | None, int | None, float],
    bands: tuple[int, ...] | None,
    threshold: float | None,
    rho: float,
    as_json: bool,
    engine: str,
    quiet: bool,
) -> None:
    """Predict and score every image of a dataset split (``label``: road colour,
    road value, SpaceNet line width)."""
    from roadseg.cli.tfimport import import_tensorflow_quietly
    from roadseg.data import LabelRule
    from roadseg.evaluate_dataset import evaluate_dataset
    from roadseg.model import load_model
    from roadseg.predict import PredictOptions

    import_tensorflow_quietly()
    loaded = load_model(model_path)
    result = evaluate_dataset(
        loaded,
        data,
        split=split,
        rule=LabelRule(*label),
        bands=bands,
        threshold=threshold,
        rho=rho,
        options=PredictOptions(precision="auto", engine=engine),
        progress=show_progress(quiet),
    )
    if as_json:
        report = {"model": str(loaded.path), "data": data, **result.to_dict()}
        click.echo(json.dumps(report, indent=2))
        return
    sources = {
        "model": loaded.path.name,
        "data": f"{data} ({result.layout}, {result.split} split, {len(result.images)} images)",
    }
    click.echo(format_table(result.overall, sources))
    click.echo("")
    click.echo("\n".join(_per_image_rows([(s.image.name, s.result) for s in result.images])))


def _evaluate_roads(
    data: str,
    model_path: str | None,
    labels: RoadLabels,
    *,
    threshold: float | None,
    rho: float,
    buffer_m: float,
    network: bool,
    bands: tuple[int, ...] | None,
    gsd: float | None,
    as_json: bool,
    curve_path: str | None,
    overwrite: bool,
    engine: str,
    quiet: bool,
) -> None:
    """Predict rasters and score them against a road layer (and the --curve CSV)."""
    from roadseg.cli.tfimport import import_tensorflow_quietly
    from roadseg.evaluate_roads import evaluate_roads
    from roadseg.metrics import write_curve_csv
    from roadseg.model import load_model
    from roadseg.predict import PredictOptions
    from roadseg.raster_io import check_output

    if curve_path is not None:  # fail before the work, not after it
        check_output(curve_path, overwrite=overwrite, what="curve CSV")
    import_tensorflow_quietly()
    loaded = load_model(model_path)
    result = evaluate_roads(
        loaded,
        data,
        labels,
        threshold=threshold,
        rho=rho,
        network=network,
        buffer_m=buffer_m,
        gsd=gsd,
        options=PredictOptions(precision="auto", bands=bands, engine=engine),
        progress=show_progress(quiet),
    )
    if curve_path is not None:
        write_curve_csv(result.overall.curve, curve_path, overwrite=overwrite)
    if as_json:
        report = {"model": str(loaded.path), "data": data, "roads": str(labels.roads)}
        click.echo(json.dumps({**report, **result.to_dict()}, indent=2))
    else:
        area = f"{labels.half} half" if labels.half else "whole rasters"
        if labels.aoi is not None:
            area = f"{area} within {labels.aoi.name}"
        sources = {
            "model": loaded.path.name,
            "data": f"{data} ({len(result.rasters)} raster(s), {area})",
            "roads": result.labels,
        }
        best = (result.best_f1, result.best_f1_threshold)
        lines = [format_table(result.overall, sources, best_f1=best)]
        if result.network is not None:
            n = result.network
            c = n.centerlines
            lines += [
                "",
                f"network, vectorized at threshold {result.overall.threshold:g}, inside the area:",
                f"pred   {n.pred_lines} lines, {c.pred_length_m / 1000:.3f} km",
                f"truth  {n.truth_lines} lines, {c.truth_length_m / 1000:.3f} km",
                *network_rows(n),
            ]
        if len(result.rasters) > 1:
            lines += ["", *_per_image_rows([(s.raster.name, s.result) for s in result.rasters])]
        click.echo("\n".join(lines))
    for note in result.notes:
        if not quiet:
            click.echo(f"Note: {note}", err=True)
    if curve_path is not None and not quiet:
        click.echo(f"Wrote {curve_path} ({len(result.overall.curve)} thresholds)", err=True)


def _per_image_rows(scores: list[tuple[str, EvaluationResult]]) -> list[str]:
    """One row per image or raster: IoU, F1, relaxed precision and recall."""
    name_w = max(len(name) for name, _ in scores) + 2
    rows = [f"{'image':<{name_w}}{'IoU':>8}{'F1':>8}{'relaxed P':>11}{'relaxed R':>11}"]
    for name, r in scores:
        rows.append(
            f"{name:<{name_w}}{_num(r.iou):>8}{_num(r.f1):>8}"
            f"{_num(r.relaxed_precision):>11}{_num(r.relaxed_recall):>11}"
        )
    return rows


def _evaluate_folders(
    pred: str, truth: str, threshold: float, rho: float, as_json: bool, quiet: bool
) -> None:
    """Every prediction in one folder against its truth in another."""
    from roadseg.evaluate_dataset import evaluate_folders

    result = evaluate_folders(
        pred, truth, threshold=threshold, rho=rho, progress=show_progress(quiet)
    )
    if as_json:
        click.echo(json.dumps({"pred": pred, "truth": truth, **result.to_dict()}, indent=2))
        return
    c = result.pooled
    click.echo(
        f"pred   {pred}\ntruth  {truth}\n{len(result.pairs)} pairs, pooled at "
        f"threshold {threshold:g}, rho {rho:g} px:\n"
    )
    for name, value in (
        ("IoU", c.iou),
        ("F1", c.f1),
        ("precision", c.precision),
        ("recall", c.recall),
        ("relaxed precision", c.relaxed_precision),
        ("relaxed recall", c.relaxed_recall),
    ):
        click.echo(f"{name:<20}{_num(value)}")
    click.echo("")
    name_w = max(len(p.name) for p, _, _ in result.pairs) + 2
    click.echo(f"{'pred':<{name_w}}{'IoU':>8}{'F1':>8}{'relaxed P':>11}{'relaxed R':>11}")
    for p, _, r in result.pairs:
        click.echo(
            f"{p.name:<{name_w}}{_num(r.iou):>8}{_num(r.f1):>8}"
            f"{_num(r.relaxed_precision):>11}{_num(r.relaxed_recall):>11}"
        )


def _evaluate_network(
    pred: str, truth: str, threshold: float | None, buffer_m: float, as_json: bool
) -> None:
    """Centerline, junction and APLS scores against vector ground truth."""
    from roadseg.vector_metrics import evaluate_centerlines
    from roadseg.vectorize import VectorizeOptions

    result = evaluate_centerlines(
        pred, truth, buffer_m=buffer_m, options=VectorizeOptions(threshold=threshold)
    )
    if as_json:
        report = {"pred": pred, "truth": truth, **dataclasses.asdict(result)}
        click.echo(json.dumps(report, indent=2))
        return
    c = result.centerlines
    source = "vectorized from the raster" if result.pred_from_raster else "lines"
    rows = [
        f"pred   {pred} ({result.pred_lines} {source}, {c.pred_length_m / 1000:.3f} km)",
        f"truth  {truth} ({result.truth_lines} lines, {c.truth_length_m / 1000:.3f} km)",
        "",
        *network_rows(result),
    ]
    click.echo("\n".join(rows))


def network_rows(result: NetworkEvaluation) -> list[str]:
    """The network scores, one row each: completeness, correctness, quality,
    junctions and APLS."""
    c, j, a = result.centerlines, result.junctions, result.apls
    return [
        f"{name:<28}{value}"
        for name, value in (
            (f"completeness (buffer {c.buffer_m:g} m)", _num(c.completeness)),
            (f"correctness (buffer {c.buffer_m:g} m)", _num(c.correctness)),
            ("quality", _num(c.quality)),
            (
                f"junctions (within {j.radius_m:g} m)",
                f"{j.matched_truth} of {j.truth_junctions} true matched, "
                f"{j.matched_pred} of {j.pred_junctions} predicted",
            ),
            ("APLS", _num(a.apls)),
        )
    ]


def _num(value: float) -> str:
    return "n/a" if math.isnan(value) else f"{value:.4f}"


def format_table(
    result: EvaluationResult,
    sources: dict[str, Any],
    *,
    best_f1: tuple[float, float] | None = None,
) -> str:
    """The human-readable report: where the numbers come from, then the numbers
    (and the best F1 over all thresholds with the threshold of it, when given)."""
    rho = f"{result.rho:g} px"
    counts = result.counts
    lines = [f"{key:<7}{value}" for key, value in sources.items()]
    lines.append(
        f"pixels {counts.total:,} compared, {result.nodata:,} nodata ignored; "
        f"{counts.tp + counts.fn:,} true road, {counts.tp + counts.fp:,} predicted road"
    )
    lines.append("")
    rows = [
        (f"IoU (threshold {result.threshold:g})", result.iou),
        ("F1", result.f1),
        ("precision", result.precision),
        ("recall", result.recall),
        (f"relaxed precision (rho {rho})", result.relaxed_precision),
        (f"relaxed recall (rho {rho})", result.relaxed_recall),
    ]
    width = max(len(name) for name, _ in rows) + 2
    lines += [f"{name:<{width}}{_num(value)}" for name, value in rows]
    breakeven = f"{'breakeven':<{width}}{_num(result.breakeven)}"
    if math.isnan(result.breakeven):
        breakeven += "  (relaxed precision never reaches relaxed recall)"
    else:
        breakeven += f"  at threshold {result.breakeven_threshold:.3f}"
    lines.append(breakeven)
    if best_f1 is not None:
        value, at = best_f1
        best = f"{'best F1':<{width}}{_num(value)}"
        if not math.isnan(value):
            best += f"  at threshold {at:.3f}"
        lines.append(best)
    return "\n".join(lines)
