"""Options shared by several commands, as decorators (the rio CLI's habit)."""

from __future__ import annotations

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
