"""``roadseg train``: train or fine-tune a road model on image/mask pairs."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from roadseg.cli.options import (
    LibraryDefault,
    bands_opt,
    check_road_layer_options,
    check_tile_size,
    given,
    gsd_opt,
    int_list,
    overwrite_opt,
    positive,
    quiet_opt,
    road_color,
    road_layer_options,
    road_width_opt,
    show_progress,
)
from roadseg.precision import PRECISIONS

if TYPE_CHECKING:  # pragma: no cover
    from roadseg.data import LabelRule
    from roadseg.train import EpochReport, RunStart, TrainConfig, TrainResult

#: The names of roadseg.train.PRESETS, for --preset's choices without importing it.
PRESET_NAMES = ("default", "paper", "finetune")


def _filters(ctx: click.Context, param: click.Parameter, value: str | None) -> Any:
    if value is None:
        return None
    widths = int_list(value, "--filters", 4)
    if any(w < 1 for w in widths):
        raise click.BadParameter(f"widths must be positive, got {value!r}")
    return widths


def _per_preset(field: str, none: str = "") -> Callable[[Mapping[str, Any]], str]:
    """--help's default of an option that each preset of roadseg.train.PRESETS sets."""

    def shown(presets: Mapping[str, Any]) -> str:
        values = {name: getattr(preset, field) for name, preset in presets.items()}
        text = (none if v is None else f"{v:g}" for v in values.values())
        return "; ".join(f"{name} preset: {t}" for name, t in zip(values, text, strict=True))

    return shown


def _lr_shown(presets: Mapping[str, Any]) -> str:
    from roadseg.train import FINE_TUNE_LR

    return f"{_per_preset('lr')(presets)}; {FINE_TUNE_LR:g} with --init and the default preset"


def _gsd_range(
    ctx: click.Context, param: click.Parameter, value: str | None
) -> tuple[float, float] | None:
    if value is None:
        return None
    try:
        lo, hi = (float(v) for v in value.split(","))
    except ValueError:
        raise click.BadParameter(
            f"expected two numbers LO,HI such as 0.3,1.2, got {value!r}"
        ) from None
    if not 0 < lo <= hi:
        raise click.BadParameter(f"need 0 < LO <= HI metres per pixel, got {value}")
    return lo, hi


@click.command(short_help="Train or fine-tune a road model on image/mask pairs.")
@click.option(
    "--data",
    "data",
    type=str,
    default=None,
    help="Dataset folder (see the layouts above). Required unless --resume. With --roads: "
    "a raster, a folder of rasters, a glob ('tiles/*.tif'), a VRT or @list.txt.",
)
@road_layer_options
@click.option(
    "--val-block-m",
    cls=LibraryDefault,
    default_from="roadseg.train:TrainConfig.val_block_m",
    type=float,
    callback=positive,
    metavar="M",
    help="With --roads: validation is a seeded choice of square blocks this many metres "
    "wide; training and validation crops never share a pixel.",
)
@click.option(
    "--output",
    "-o",
    cls=LibraryDefault,
    default_from="roadseg.train:TrainConfig.output",
    type=click.Path(dir_okay=False, path_type=str),
    help="Model file to write.",
)
@click.option(
    "--run-dir",
    type=click.Path(file_okay=False),
    default=None,
    help="Checkpoints, logs and curves. Default: <output stem>_run/ beside the output.",
)
@click.option(
    "--preset",
    cls=LibraryDefault,
    default_from="roadseg.train_config:FINE_TUNE_PRESET",
    shown=lambda name: f"{name} with --init, else default",
    type=click.Choice(PRESET_NAMES),
    help="default: BCE+Dice, Adam, cosine schedule, augmentation, early stopping on the "
    "validation loss. paper: the ResUNet paper exactly (MSE, SGD with the learning rate "
    "cut tenfold in steps, no augmentation). finetune, for a model given with --init on a "
    "CPU: the default recipe at a lower learning rate in a few short epochs, stopped when "
    "validation F1 (on the spatial blocks with --roads) has not risen for --patience "
    "epochs, the best epoch kept. Each preset's numbers are the defaults shown below.",
)
@click.option(
    "--epochs",
    cls=LibraryDefault,
    default_from="roadseg.train:PRESETS",
    shown=_per_preset("epochs"),
    type=click.IntRange(min=1),
)
@click.option(
    "--batch-size",
    cls=LibraryDefault,
    default_from="roadseg.train:PRESETS",
    shown=_per_preset("batch_size"),
    type=click.IntRange(min=1),
)
@click.option(
    "--steps-per-epoch",
    cls=LibraryDefault,
    default_from="roadseg.train:PRESETS",
    shown=_per_preset("steps_per_epoch", none="one pass over the training pixels"),
    type=click.IntRange(min=1),
    help="Batches per epoch.",
)
@click.option(
    "--val-steps",
    cls=LibraryDefault,
    default_from="roadseg.train:TrainConfig.val_steps",
    type=click.IntRange(min=1),
    help="Validation batches per epoch (the same crops every epoch).",
)
@click.option(
    "--lr",
    cls=LibraryDefault,
    default_from="roadseg.train:PRESETS",
    shown=_lr_shown,
    type=float,
    callback=positive,
    help="Initial learning rate.",
)
@click.option(
    "--filters",
    cls=LibraryDefault,
    default_from="roadseg.model:DEFAULT_FILTERS",
    shown=lambda widths: ",".join(map(str, widths)) + ", the paper's; or the --init model's",
    callback=_filters,
    help="Four encoder widths; 16,32,64,128 is 16x cheaper (the bundled model's width).",
)
@click.option(
    "--tile-size",
    cls=LibraryDefault,
    default_from="roadseg.train:DEFAULT_TILE",
    shown=lambda tile: f"the --init model's, else {tile}",
    type=int,
    help="Crop side in pixels, a multiple of 8.",
)
@click.option(
    "--precision",
    cls=LibraryDefault,
    default_from="roadseg.train:TrainConfig.precision",
    type=click.Choice(PRECISIONS),
    help="auto: bfloat16 on a CPU with AVX-512-BF16/AMX, float16 on a GPU, else float32.",
)
@click.option(
    "--init",
    "init",
    default=None,
    metavar="MODEL",
    help="Fine-tune from this model file, or 'default' for the bundled model.",
)
@click.option(
    "--resume",
    is_flag=True,
    help="Continue the interrupted run in the run folder (epoch, optimizer, schedule).",
)
@click.option(
    "--seed",
    cls=LibraryDefault,
    default_from="roadseg.train:TrainConfig.seed",
    type=int,
    help="Seed of split, crops, weights.",
)
@click.option(
    "--road-color",
    callback=road_color,
    default=None,
    metavar="R,G,B",
    help="Road class colour in multi-class colour masks, e.g. 110,193,228 or #6EC1E4.",
)
@click.option(
    "--road-value",
    type=click.IntRange(min=0),
    default=None,
    metavar="N",
    help="Road class value in multi-class index masks.",
)
@gsd_opt
@click.option(
    "--gsd-range",
    callback=_gsd_range,
    default=None,
    metavar="LO,HI",
    help="Train at ground sample distances drawn from LO..HI metres per pixel (each crop "
    "resized from its image's GSD), so the model finds roads at every scale in the range; "
    "it records their geometric mean as its GSD and predict reads inputs at it. "
    "Example: 0.3,1.2.",
)
@click.option(
    "--normalization",
    type=click.Choice(["auto", "percentile"]),
    default=None,
    help="How pixels become model inputs, stored in the model. auto: uint8 /255, other "
    "types a 2-98 percentile stretch per band; percentile: the stretch for every type, "
    "which removes brightness, contrast and colour-balance differences between sensors. "
    "Default: the --init model's, else auto.",
)
@road_width_opt
@bands_opt
@click.option(
    "--val-fraction",
    cls=LibraryDefault,
    default_from="roadseg.train:TrainConfig.val_fraction",
    type=click.FloatRange(0.0, 1.0, min_open=True, max_open=True),
    help="Share of pairs held out when the layout has no validation split.",
)
@click.option(
    "--patience",
    cls=LibraryDefault,
    default_from="roadseg.train:PRESETS",
    shown=_per_preset("patience"),
    type=click.IntRange(min=0),
    help="Stop after this many epochs without a better validation loss (validation F1 "
    "with the finetune preset) and keep the best epoch; 0 = never.",
)
@click.option("--no-augment", is_flag=True, help="No flips, rotations, scale or colour changes.")
@click.option(
    "--check",
    is_flag=True,
    help="Only list what was found (pairs, splits, sizes, problems); train nothing.",
)
@overwrite_opt
@quiet_opt
def train(
    data: str | None,
    roads: str | None,
    layer: str | None,
    width_field: str | None,
    width_table: str | None,
    aoi: str | None,
    half: str | None,
    val_block_m: float,
    output: str,
    run_dir: str | None,
    preset: str | None,
    epochs: int | None,
    batch_size: int | None,
    steps_per_epoch: int | None,
    val_steps: int,
    lr: float | None,
    filters: tuple[int, ...] | None,
    tile_size: int | None,
    precision: str,
    init: str | None,
    resume: bool,
    seed: int,
    road_color: tuple[int, int, int] | None,
    road_value: int | None,
    gsd: float | None,
    gsd_range: tuple[float, float] | None,
    normalization: str | None,
    road_width_m: float,
    bands: tuple[int, ...] | None,
    val_fraction: float,
    patience: int | None,
    no_augment: bool,
    check: bool,
    overwrite: bool,
    quiet: bool,
) -> None:
    """Train a road model on image/mask pairs and write it as a .keras file.

    \b
    Layouts recognised in --data, without flags:
      images/ + masks/       matching file names (GeoTIFF, PNG, JPEG), at any
                             depth: train/images, images/train, 'Tile 1/images'
      side by side           <name>.tif + <name>_mask.tif (roadseg.synthetic's output)
      DeepGlobe Road         <id>_sat.jpg + <id>_mask.png
      Massachusetts Roads    sat/*.tiff + map/*.tif, or train/ + train_labels/,
                             val/ + val_labels/, test/ + test_labels/
      SpaceNet 3             PS-RGB/*_img<N>.tif + geojson_roads/*_img<N>.geojson
                             (lines drawn --road-width-m wide)

    Masks may be 0/255 or 0/1, one band or RGB. For multi-class masks say
    which class is road with --road-color or --road-value; --check shows the
    colours found. The layout's validation split is used if it has one, else
    a seeded one (whole folders such as 'Tile 3' when the data comes in
    folders of neighbouring images).

    Training reads random crops from disk (never the whole dataset), keeps
    checkpoints of the last and best epoch in the run folder, a CSV log and
    curves.png, and at the end stores the threshold that maximises F1 on the
    validation crops, the validation metrics and a description of the data
    in the model file.

    \b
    Examples:
      roadseg train --data mydata --check
      roadseg train --data deepglobe/train --init default -o deepglobe.keras
      roadseg train --data dubai --road-color 110,193,228 --gsd 1.5 --filters 16,32,64,128
      roadseg train --data mass_roads --preset paper -o paper.keras
      roadseg train --data deepglobe/train -o deepglobe.keras --resume
      roadseg train --data ortho.tif --roads osm_roads.gpkg --init default --check
      roadseg train --data ortho.tif --roads osm_roads.gpkg --init default --half upper
    """
    from roadseg.data import LabelRule

    _check_options(road_color, road_value, tile_size, data, resume, init, output, roads)
    check_road_layer_options(
        roads, layer=layer, width_field=width_field, width_table=width_table, aoi=aoi, half=half
    )
    rule = LabelRule(road_color, road_value, road_width_m)
    if check and data is None:
        raise click.UsageError("--check needs --data DIR")
    if check and roads is None:
        _check_dataset(data or ".", rule, bands, gsd, val_fraction, seed, tile_size)
        return

    from roadseg.train import TrainConfig

    config = TrainConfig(
        data=Path(data) if data is not None else Path("."),
        output=Path(output),
        run_dir=Path(run_dir) if run_dir else None,
        preset=preset,
        epochs=epochs,
        batch_size=batch_size,
        steps_per_epoch=steps_per_epoch,
        val_steps=val_steps,
        lr=lr,
        filters=filters,
        tile_size=tile_size,
        precision=precision,
        init=init,
        seed=seed,
        road_color=road_color,
        road_value=road_value,
        road_width_m=road_width_m,
        gsd=gsd,
        gsd_range=gsd_range,
        normalization=normalization,
        bands=bands,
        val_fraction=val_fraction,
        patience=patience,
        augment=False if no_augment else None,
        overwrite=overwrite,
        roads=Path(roads) if roads else None,
        layer=layer,
        roads_width_m=road_width_m if given("road_width_m") else None,
        width_field=width_field,
        width_table=Path(width_table) if width_table else None,
        aoi=Path(aoi) if aoi else None,
        val_block_m=val_block_m,
        half=half,
    )
    if check:
        _check_roads(config, Path(roads) if roads else Path(), tile_size, init)
        return

    from roadseg.cli.tfimport import import_tensorflow_quietly
    from roadseg.train import train as run_training

    import_tensorflow_quietly()
    result = run_training(
        config,
        resume=resume,
        progress=show_progress(quiet),
        on_start=None if quiet else _echo_start,
        on_epoch=None if quiet else _echo_epoch,
    )
    if not quiet:
        _echo_result(result)


def _check_options(
    road_color: tuple[int, int, int] | None,
    road_value: int | None,
    tile_size: int | None,
    data: str | None,
    resume: bool,
    init: str | None,
    output: str,
    roads: str | None = None,
) -> None:
    """The checks that need several options, or the file system, in this order.

    Raises:
        click.UsageError: the first option that cannot be used.
    """
    if road_color is not None and road_value is not None:
        raise click.BadParameter("give --road-color or --road-value, not both")
    check_tile_size(tile_size)
    if data is None and not resume:
        raise click.UsageError("--data DIR is required (the folder of image/mask pairs)")
    if data is not None and roads is None and Path(data).is_file():
        raise click.BadParameter(
            f"{data} is a file; give the folder of image/mask pairs, or a road layer with "
            "--roads to train on this raster",
            param_hint="--data",
        )
    if init is not None and init != "default" and not Path(init).is_file():
        raise click.BadParameter(
            f"{init} does not exist; give a model file or 'default'", param_hint="--init"
        )
    if not output.endswith(".keras"):
        raise click.BadParameter(f"{output} must end in .keras", param_hint="--output")


def _check_dataset(
    data: str,
    rule: LabelRule,
    bands: tuple[int, ...] | None,
    gsd: float | None,
    val_fraction: float,
    seed: int,
    tile_size: int | None,
) -> None:
    """--check: list what the dataset holds; train nothing.

    Raises:
        DatasetError: the scan found problems (exit 1, after the listing).
    """
    from roadseg.data import scan_dataset
    from roadseg.errors import DatasetError
    from roadseg.train import DEFAULT_TILE

    report = scan_dataset(
        data,
        rule=rule,
        bands=bands,
        model_bands=len(bands) if bands else 3,
        gsd=gsd,
        val_fraction=val_fraction,
        seed=seed,
        tile_size=tile_size or DEFAULT_TILE,
    )
    click.echo(report.describe())
    if report.errors:
        raise DatasetError(
            f"{len(report.errors)} problem(s) in {data}; fix them and run --check again"
        )


def _check_roads(config: TrainConfig, roads: Path, tile_size: int | None, init: str | None) -> None:
    """--check with --roads: per raster CRS, GSD, road length, share, crops, problems.

    Raises:
        DatasetError: problems were found (exit 1, after the listing).
    """
    from roadseg.errors import DatasetError
    from roadseg.model import read_model_info
    from roadseg.train import DEFAULT_TILE, scan_roads
    from roadseg.train_plan import resolve_init

    init_path = resolve_init(init)
    info = read_model_info(init_path) if init_path is not None else None
    tile = tile_size or (info.tile_size if info is not None else None) or DEFAULT_TILE
    bands = len(config.bands) if config.bands else (info.bands if info is not None else 3)
    found = scan_roads(config, roads, tile_size=tile, model_bands=bands)
    click.echo(found.describe())
    if found.report.errors:
        raise DatasetError(
            f"{len(found.report.errors)} problem(s) in {config.data} with {roads.name}; "
            "fix them and run --check again"
        )


def _echo_start(start: RunStart) -> None:
    plan = start.plan
    report = start.report
    click.echo(f"Data: {report.summary()}", err=True)
    for note in report.notes:
        click.echo(f"Note: {note}", err=True)
    widths = ",".join(str(f) for f in plan.filters)
    precision = plan.policy.replace("mixed_", "")
    line = (
        f"Training a {widths} ResUNet ({plan.preset.name} preset, {precision}) on "
        f"{plan.tile} px crops: {plan.epochs} epochs x {plan.steps_per_epoch} steps x "
        f"batch {plan.batch_size}"
    )
    if start.initial_epoch:
        line += f", resuming after epoch {start.initial_epoch}"
    if plan.init_info:
        line += f", from {Path(plan.init_info['path']).name}"
    line += f", lr {plan.lr:g}"
    if plan.patience:
        line += f"; stops after {plan.patience} epochs without a better {plan.preset.monitor}"
    click.echo(line, err=True)
    click.echo(f"Run folder: {start.run_dir}", err=True)


def _fmt(value: float | None) -> str:
    return "-" if value is None or not math.isfinite(value) else f"{value:.4f}"


def _duration(seconds: float) -> str:
    """``2m05s``, ``1h02m`` or ``40s``."""
    seconds = round(seconds)
    if seconds >= 3600:
        return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
    if seconds >= 60:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds}s"


def _echo_epoch(epoch: EpochReport) -> None:
    logs = epoch.logs
    baseline = epoch.epoch == 0  # the --init model, scored before a fine-tune starts
    parts = [f"epoch {epoch.epoch}/{epoch.epochs}" + (" (the --init model)" if baseline else "")]
    if not baseline:
        parts.append(f"loss {_fmt(logs.get('loss'))}")
    parts += [
        f"val_loss {_fmt(logs.get('val_loss'))}",
        f"val_f1 {_fmt(logs.get('val_f1'))}",
        f"val_iou {_fmt(logs.get('val_iou'))}",
        f"{_duration(epoch.seconds)}",
    ]
    if baseline:
        click.echo(" | ".join(parts), err=True)
        return
    if epoch.stopping:
        parts.append("early stop")
    elif epoch.epoch < epoch.epochs:
        parts.append(f"ETA {_duration(epoch.eta_seconds)}")
    click.echo(" | ".join(parts) + (" *best*" if epoch.best else ""), err=True)


def _echo_result(result: TrainResult) -> None:
    m = result.metrics

    def f(key: str) -> str:
        value = m.get(key)
        return "-" if value is None else f"{value:.3f}"

    stop = " (early stop)" if result.stopped_early else ""
    kept = f"kept epoch {result.best_epoch}"
    if result.best_epoch == 0 and result.epochs_done:
        kept += " (the --init model: no epoch beat it on validation)"
    click.echo(f"Trained {result.epochs_done} epochs{stop}; {kept}", err=True)
    click.echo(
        f"Validation ({m.get('crops')} crops) at threshold {result.info.threshold:g}: "
        f"F1 {f('f1')}, IoU {f('iou')}, precision {f('precision')}, recall {f('recall')}, "
        f"relaxed P/R {f('relaxed_precision')}/{f('relaxed_recall')}",
        err=True,
    )
    if result.skipped:
        click.echo(
            f"Skipped {sum(result.skipped.values())} failed reads of {len(result.skipped)} "
            f"file(s); see {result.run_dir / 'skipped.csv'}",
            err=True,
        )
    click.echo(f"Wrote {result.model_path}", err=True)
