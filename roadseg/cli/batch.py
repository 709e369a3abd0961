"""``roadseg predict`` over many rasters, in-process or on Dask.

The predict command hands over to :func:`run_batch` when it is given several
inputs, a glob pattern, a list file, ``--output-dir``, ``--workers`` or
``--scheduler``. The options shared with the single-raster path are parsed by
the predict command itself; this module adds the batch options and maps the
per-file ones (``-o``, ``--mask``, ``--preview``) to name patterns.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

import click

from roadseg.cli.options import (
    LibraryDefault,
    check_workers_or_scheduler,
    scheduler_opt,
    show_progress,
    workers_opt,
)
from roadseg.errors import OutputError, RoadsegError

F = TypeVar("F", bound=Callable[..., Any])

output_dir_opt = click.option(
    "--output-dir",
    type=click.Path(file_okay=False),
    default=None,
    help="Folder for the outputs of every input (created if missing). Default: beside each input.",
)
split_above_opt = click.option(
    "--split-above",
    cls=LibraryDefault,
    default_from="roadseg.regions:DEFAULT_SPLIT_ABOVE",
    shown=lambda pixels: f"{pixels / 1_000_000:g}",
    type=click.FloatRange(min=0),
    metavar="MPIX",
    help="With --workers or --scheduler: split a raster of more than MPIX megapixels into "
    "row regions predicted in parallel and assembled into one output, identical to an "
    "unsplit run. 0 splits every raster taller than one region.",
)
region_rows_opt = click.option(
    "--region-rows",
    cls=LibraryDefault,
    default_from="roadseg.regions:DEFAULT_REGION_ROWS",
    type=click.IntRange(min=256),
    metavar="N",
    help="Rows of one region of a split raster (a multiple of 256). Each region also "
    "computes up to one tile row above and below it.",
)


def batch_options(f: F) -> F:
    """``--output-dir``, ``--workers``, ``--scheduler``, ``--split-above`` and
    ``--region-rows``, as one decorator."""
    return output_dir_opt(workers_opt(scheduler_opt(split_above_opt(region_rows_opt(f)))))


def wants_batch(
    inputs: Sequence[str], output_dir: str | None, workers: int | None, scheduler: str | None
) -> bool:
    """Whether a predict call is a batch run rather than one raster in-process."""
    from roadseg.batch import is_pattern

    if len(inputs) != 1 or output_dir is not None or workers is not None or scheduler:
        return True
    text = inputs[0]
    if Path(text).exists():
        return text.lower().endswith(".txt")
    return is_pattern(text)


def _name_pattern(value: str | None, option: str) -> str | None:
    """A per-file option (-o, --mask, --preview) as a name pattern with {stem}."""
    if value is None:
        return None
    if "{stem}" not in value:
        raise click.BadParameter(
            f"{value!r} names one file; with several inputs give a name pattern with "
            "{stem}, e.g. '{stem}_mask.tif'",
            param_hint=option,
        )
    return value


def run_batch(
    inputs: Sequence[str],
    *,
    options: Any,
    model: str | None,
    output: str | None = None,
    output_dir: str | None = None,
    mask: str | None = None,
    preview: str | None = None,
    vectorize: str | None = None,
    workers: int | None = None,
    scheduler: str | None = None,
    split_above: float | None = None,
    region_rows: int | None = None,
    resample: bool = True,
    quiet: bool = False,
) -> None:
    """Predict every input; report on stderr; raise if any raster failed.

    Args:
        inputs: paths, glob patterns, list files (``@list.txt``), as typed.
        options: :class:`roadseg.predict.PredictOptions` built by the predict
            command (mask and preview paths are set per input here).
        model: model file, or None for the bundled one.
        output, mask, preview: name patterns with ``{stem}`` (the input's name
            without extension); a plain file name is refused.
        output_dir: folder for all outputs; created if missing.
        vectorize: refused (``--vectorize`` takes one input).
        workers, scheduler: where to run (see :func:`roadseg.distributed.run_jobs`).
        split_above: on Dask, split rasters of more megapixels than this
            (None: :data:`roadseg.regions.DEFAULT_SPLIT_ABOVE` pixels).
        region_rows: rows of one region of a split raster (None:
            :data:`roadseg.regions.DEFAULT_REGION_ROWS`).
        resample: read inputs at the model's GSD when it records one.
        quiet: no progress bar and no summary.

    Raises:
        click.BadParameter: an option that cannot apply to several inputs.
        RoadsegError: bad inputs or outputs, missing Dask, or failed rasters.
    """
    from dataclasses import replace

    from roadseg.batch import OUTPUT_NAME, plan_jobs
    from roadseg.distributed import run_jobs

    check_workers_or_scheduler(workers, scheduler)
    if region_rows is not None and region_rows % 256:
        lower = max(256, region_rows // 256 * 256)
        raise click.BadParameter(
            f"{region_rows} is not a multiple of 256 (the output's block height); "
            f"use {lower} or {lower + 256}",
            param_hint="--region-rows",
        )
    if vectorize is not None:
        raise click.BadParameter(
            "works with one input; run 'roadseg vectorize' on each output",
            param_hint="--vectorize",
        )
    output_name = _name_pattern(output, "--output") or OUTPUT_NAME
    mask_name = _name_pattern(mask, "--mask")
    preview_name = _name_pattern(preview, "--preview")
    if output_dir is not None:
        try:
            os.makedirs(output_dir, exist_ok=True)
        except OSError as exc:
            raise OutputError(f"cannot create the output folder {output_dir} ({exc})") from None
    jobs = plan_jobs(
        inputs,
        output_dir=output_dir,
        output_name=output_name,
        mask_name=mask_name,
        preview_name=preview_name,
    )
    options = replace(options, mask_path=None, preview_path=None, progress=False)
    result = run_jobs(
        jobs,
        model,
        options,
        workers=workers,
        scheduler=scheduler,
        progress=show_progress(quiet),
        resample=resample,
        split_above=None if split_above is None else round(split_above * 1_000_000),
        region_rows=region_rows,
    )
    for failed in result.failed:
        click.echo(f"Failed: {failed.job.input}: {failed.error}", err=True)
    done, skipped = result.count("predicted"), result.count("skipped")
    if not quiet:
        rate = result.tiles / result.seconds if result.seconds else 0.0
        parts = [f"Predicted {done} of {len(jobs)} rasters"]
        if skipped:
            parts.append(f"{skipped} already done")
        if done:
            parts.append(
                f"{result.tiles} tiles in {result.seconds:.1f} s, {rate:.1f} tiles/s, "
                f"{result.where}"
            )
        click.echo("; ".join(parts), err=True)
    if result.failed:
        raise RoadsegError(
            f"{len(result.failed)} of {len(jobs)} rasters failed (listed above); "
            "run the same command again to do only what is left"
        )
