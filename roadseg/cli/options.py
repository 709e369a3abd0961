"""Options shared by several commands, as decorators (the rio CLI's habit), and
the small checks and callbacks that turn option values into library arguments.

Defaults that belong to the library are read from it by :class:`LibraryDefault`
when a command runs or shows its help, never copied here, and never imported
when the ``roadseg`` group starts (``roadseg --help`` stays instant).
"""

from __future__ import annotations

import importlib
import re
import sys
from collections.abc import Callable
from typing import Any, TypeVar

import click

F = TypeVar("F", bound=Callable[..., Any])

#: The names of roadseg.data.aoi_split.HALVES, for --half's choices without importing it.
HALF_NAMES = ("upper", "lower", "left", "right")
#: roadseg.engines.PREDICT_ENGINES, for --engine's choices without importing it.
ENGINE_NAMES = ("auto", "tensorflow", "onnxruntime", "openvino")
#: The usage error of ``--workers`` together with ``--scheduler``.
WORKERS_OR_SCHEDULER = "give --workers or --scheduler, not both"
#: The usage error of a tile size that the network cannot take.
TILE_SIZE_ERROR = "{} is not a multiple of 8 (the network halves the image three times)"


def library_value(ref: str) -> Any:
    """The library value named ``"module:name"`` or ``"module:Class.field"``.

    The module is imported now, so call this only where the value is needed.
    """
    module, _, path = ref.partition(":")
    value: Any = importlib.import_module(module)
    for name in path.split("."):
        value = getattr(value, name)
    return value


class LibraryDefault(click.Option):
    """An option whose default is a constant of the library.

    ``default_from`` names the constant for :func:`library_value`. It is read
    only when the command runs without the option or renders its ``--help``, so
    ``roadseg --help`` and the other commands start without importing its
    module. ``--help`` shows it as click shows any default.

    With ``shown`` (a function of the constant, returning text for ``--help``)
    the command gets None when the option is not given and the library applies
    its default itself, because None means more there (say "the preset's", or
    "as many tiles as a GPU holds").
    """

    def __init__(
        self,
        *args: Any,
        default_from: str,
        shown: Callable[[Any], str] | None = None,
        **kwargs: Any,
    ) -> None:
        kwargs["show_default"] = True
        super().__init__(*args, **kwargs)
        self.default_from = default_from
        self.shown = shown

    def get_default(self, ctx: click.Context, call: bool = True) -> Any:
        if self.shown is not None:
            return None
        return library_value(self.default_from)

    def get_help_record(self, ctx: click.Context) -> tuple[str, str] | None:
        if self.shown is not None:
            self.show_default = self.shown(library_value(self.default_from))
        return super().get_help_record(ctx)


overwrite_opt = click.option(
    "--overwrite", is_flag=True, help="Replace output files that already exist."
)
quiet_opt = click.option(
    "--quiet", "-q", is_flag=True, help="No progress bar and no summary; errors only."
)
model_opt = click.option(
    "--model",
    "-m",
    type=click.Path(dir_okay=False),
    default=None,
    help="Model file (.keras). Default: the model bundled with roadseg.",
)
workers_opt = click.option(
    "--workers",
    type=click.IntRange(min=1),
    default=None,
    metavar="N",
    help="Run on N local worker processes (a Dask LocalCluster), each limited to "
    "cores/N threads. Needs roadseg[dask].",
)
scheduler_opt = click.option(
    "--scheduler",
    metavar="ADDRESS",
    default=None,
    help="Run on a running Dask cluster, e.g. tcp://10.0.0.5:8786. Workers must see "
    "the input and output files (and the model) under the same paths. Needs roadseg[dask].",
)


def show_progress(quiet: bool) -> bool:
    """A progress bar only on a terminal, and never under --quiet."""
    return not quiet and sys.stderr.isatty()


def check_workers_or_scheduler(workers: int | None, scheduler: str | None) -> None:
    """Refuse ``--workers`` together with ``--scheduler``.

    Raises:
        click.BadParameter: both were given.
    """
    if workers is not None and scheduler is not None:
        raise click.BadParameter(WORKERS_OR_SCHEDULER, param_hint="--workers")


def check_tile_size(tile_size: int | None) -> None:
    """Refuse a ``--tile-size`` that is not a positive multiple of 8.

    Raises:
        click.BadParameter: the tile size cannot go through the network.
    """
    from roadseg.tiling import is_tile_size

    if tile_size is not None and not is_tile_size(tile_size):
        raise click.BadParameter(TILE_SIZE_ERROR.format(tile_size), param_hint="--tile-size")


def probability(ctx: click.Context, param: click.Parameter, value: float | None) -> float | None:
    """Click callback: a probability strictly between 0 and 1."""
    if value is not None and not 0.0 < value < 1.0:
        raise click.BadParameter(f"must lie between 0 and 1, got {value}")
    return value


def positive(ctx: click.Context, param: click.Parameter, value: float | None) -> float | None:
    """Click callback: a number above 0."""
    if value is not None and not value > 0:
        raise click.BadParameter(f"must be positive, got {value}")
    return value


def non_negative(ctx: click.Context, param: click.Parameter, value: float | None) -> float | None:
    """Click callback: a number of 0 or more."""
    if value is not None and not value >= 0:
        raise click.BadParameter(f"must be zero or more, got {value}")
    return value


def bands(ctx: click.Context, param: click.Parameter, value: str | None) -> tuple[int, ...] | None:
    """Click callback: 1-based band numbers such as ``1,2,3`` (see
    :func:`roadseg.preprocess.parse_bands`)."""
    from roadseg.preprocess import parse_bands

    try:
        return parse_bands(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None


def int_list(text: str, what: str, count: int | None = None) -> tuple[int, ...]:
    """Parse "1,2,3" into integers (``count`` of them when given)."""
    try:
        values = tuple(int(part) for part in text.split(","))
    except ValueError:
        raise click.BadParameter(f"{what} must be comma-separated integers, got {text!r}") from None
    if count is not None and len(values) != count:
        raise click.BadParameter(f"{what} needs {count} values, got {len(values)} in {text!r}")
    return values


def road_color(ctx: click.Context, param: click.Parameter, value: str | None) -> Any:
    """Click callback: an RGB road colour as R,G,B or #RRGGBB."""
    if value is None:
        return None
    text = value.strip()
    if re.fullmatch(r"#?[0-9a-fA-F]{6}", text):
        text = text.lstrip("#")
        return tuple(int(text[i : i + 2], 16) for i in (0, 2, 4))
    rgb = int_list(text, "--road-color", 3)
    if any(not 0 <= c <= 255 for c in rgb):
        raise click.BadParameter(f"colour values must lie in 0-255, got {value!r}")
    return rgb


_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgt]?)(i?b?)\s*$", re.IGNORECASE)


def parse_size(text: str) -> int:
    """Bytes from ``"1G"``, ``"512M"``, ``"1.5GB"``, ``"2GiB"`` or a plain number
    (powers of 1024 whatever the spelling, as ``ulimit`` and Docker read them).

    Raises:
        ValueError: not a size, or zero.
    """
    match = _SIZE.match(text)
    if not match:
        raise ValueError(f"{text!r} is not a size; write it like 1G, 512M or 2.5GB")
    number, unit = float(match.group(1)), match.group(2).lower()
    size = int(number * 1024 ** "_kmgt".index(unit or "_"))
    if size <= 0:
        raise ValueError(f"{text!r} is not a positive size")
    return size


def memory_size(ctx: click.Context, param: click.Parameter, value: str | None) -> int | None:
    """Click callback: a memory size (see :func:`parse_size`) in bytes."""
    if value is None:
        return None
    try:
        return parse_size(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None


# A road layer labelling rasters: ``roadseg train --roads`` and ``roadseg evaluate --roads``.
roads_opt = click.option(
    "--roads",
    type=click.Path(exists=True, dir_okay=False),
    default=None,
    help="Road layer labelling the --data rasters (GeoPackage, GeoJSON; other GDAL formats "
    'such as Shapefile with pip install "roadseg[vector]"): lines drawn as '
    "bands in metres (--road-width-m, --width-field, or the OpenStreetMap highway tag), "
    "polygons (road surfaces) as they are.",
)
_road_layer_opts = (
    roads_opt,
    click.option("--layer", default=None, help="The layer of --roads, when it has several."),
    click.option(
        "--width-field",
        default=None,
        metavar="FIELD",
        help="Attribute of --roads holding each line's width in metres.",
    ),
    click.option(
        "--width-table",
        type=click.Path(exists=True, dir_okay=False),
        default=None,
        help="JSON or CSV file of highway tag -> width in metres (0 or off: not drawn), "
        "over the default table (see the README).",
    ),
    click.option(
        "--aoi",
        type=click.Path(exists=True, dir_okay=False),
        default=None,
        help="Polygons where the road layer is complete: training crops come only from "
        "inside them, and evaluate counts only the pixels inside them. Default: each "
        "raster's footprint.",
    ),
    click.option(
        "--half",
        type=click.Choice(HALF_NAMES),
        default=None,
        help="With --roads: only this half of each raster (within --aoi when both are "
        "given); rows are cut at the middle, upper = the first rows (north on a north-up "
        "raster). Train on --half upper, score with 'roadseg evaluate --half lower'.",
    ),
)
#: The options that only make sense with --roads, by parameter name.
ROAD_LAYER_PARAMS = ("layer", "width_field", "width_table", "aoi", "half")


def engine_option(f: F) -> F:
    """``--engine``: what runs the network (predict, and evaluate with --model)."""
    return click.option(
        "--engine",
        type=click.Choice(ENGINE_NAMES),
        default="tensorflow",
        show_default=True,
        help="What runs the network. onnxruntime (float32 only) and openvino (bfloat16 on CPUs "
        'that have it) are optional: pip install "roadseg[onnx]" or "roadseg[openvino]". '
        "auto: openvino when installed, else tensorflow. The engines agree with TensorFlow "
        "float32 within the README's bounds, not bit for bit.",
    )(f)


def road_layer_options(f: F) -> F:
    """``--roads``, ``--layer``, ``--width-field``, ``--width-table``, ``--aoi`` and
    ``--half``, in this order."""
    for option in reversed(_road_layer_opts):
        f = option(f)
    return f


road_width_opt = click.option(
    "--road-width-m",
    cls=LibraryDefault,
    default_from="roadseg.data.types:DEFAULT_ROAD_WIDTH_M",
    type=float,
    callback=positive,
    metavar="M",
    help="Width of the road band drawn around SpaceNet centerlines, and around --roads "
    "lines when given (else their --width-field or highway tag; this width when they "
    "have neither).",
)
bands_opt = click.option(
    "--bands",
    callback=bands,
    default=None,
    help="Image bands that feed the model, 1-based, e.g. 1,2,3 or 1,1,1.",
)
gsd_opt = click.option(
    "--gsd",
    type=float,
    default=None,
    callback=positive,
    metavar="M",
    help="Ground sample distance of the data in metres, for images without georeferencing.",
)


def given(name: str) -> bool:
    """Whether the running command's parameter ``name`` was given by the user
    (on the command line or in the environment), not left at its default."""
    from click.core import ParameterSource

    source = click.get_current_context().get_parameter_source(name)
    return source in (ParameterSource.COMMANDLINE, ParameterSource.ENVIRONMENT)


def check_road_layer_options(roads: str | None, **values: Any) -> None:
    """Refuse the options of a road layer (``--aoi``, ``--half`` ...) without ``--roads``.

    Args:
        roads: the ``--roads`` value.
        values: the values of :data:`ROAD_LAYER_PARAMS`, by parameter name.

    Raises:
        click.UsageError: one was given without ``--roads``.
    """
    if roads is not None:
        return
    for name in ROAD_LAYER_PARAMS:
        if values.get(name) is not None:
            flag = "--" + name.replace("_", "-")
            raise click.UsageError(f"{flag} goes with --roads (a road layer labelling --data)")
