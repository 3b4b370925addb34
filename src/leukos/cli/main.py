"""The leukos command line: a thin adapter that parses, calls the core and renders.

Exit codes: 0 ok; 2 user error (message, no traceback); anything else is a bug and keeps its
traceback.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import TypeVar

import typer

from leukos import __version__
from leukos.errors import LeukosUserError

app = typer.Typer(
    name="leukos",
    help="Decision support for extreme leukocytosis. Supports, does not replace, clinical judgement; not a medical device.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

EXIT_USER_ERROR = 2
T = TypeVar("T")


def user_errors(fn: Callable[..., T]) -> Callable[..., T]:
    """Decorator: show a LeukosUserError as a message on stderr and exit 2, without a traceback."""
    import functools

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except LeukosUserError as exc:
            from rich.console import Console

            Console(stderr=True, highlight=False).print(f"[bold red]error:[/] {exc.message}", markup=True)
            raise typer.Exit(EXIT_USER_ERROR) from None

    return wrapper


def _version(value: bool) -> None:
    if value:
        typer.echo(f"leukos {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Show the version."),
) -> None:
    """leukos: hyperleukocytosis, leukostasis, TLS, DIC, lab artefacts, leukapheresis."""


def register() -> None:
    """Import the command modules so that they attach themselves to ``app``."""
    from leukos.cli import commands  # noqa: F401


def run() -> None:
    register()
    try:
        app()
    except LeukosUserError as exc:  # raised outside a decorated command (e.g. settings)
        print(f"error: {exc.message}", file=sys.stderr)
        sys.exit(EXIT_USER_ERROR)
