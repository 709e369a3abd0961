"""Turning library errors into one-line CLI messages."""

from __future__ import annotations

from typing import Any

import click

from roadseg.errors import RoadsegError


class RoadsegGroup(click.Group):
    """A click group that reports :class:`RoadsegError` as ``Error: message``
    with exit code 1, and KeyboardInterrupt as exit 130, never a traceback."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except RoadsegError as exc:
            raise click.ClickException(one_line(exc)) from None
        except MemoryError:
            raise click.ClickException(
                "ran out of memory; lower --batch-size (and --tile-size)"
            ) from None
        except KeyboardInterrupt:
            click.echo("Aborted.", err=True)
            ctx.exit(130)


def one_line(exc: BaseException) -> str:
    """The exception's message on one line."""
    text = " ".join(str(exc).split())
    return text or type(exc).__name__
