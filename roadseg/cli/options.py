"""Options shared by several commands, as decorators (the rio CLI's habit)."""

from __future__ import annotations

import re
import sys
from collections.abc import Callable
from typing import Any, TypeVar

import click

F = TypeVar("F", bound=Callable[..., Any])

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


def show_progress(quiet: bool) -> bool:
    """A progress bar only on a terminal, and never under --quiet."""
    return not quiet and sys.stderr.isatty()


def probability(ctx: click.Context, param: click.Parameter, value: float | None) -> float | None:
    """Click callback: a probability strictly between 0 and 1."""
    if value is not None and not 0.0 < value < 1.0:
        raise click.BadParameter(f"must lie between 0 and 1, got {value}")
    return value


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
