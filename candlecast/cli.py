"""The ``candlecast`` console script and the helpers every candlecast CLI shares.

Each stage keeps its own Typer app (``ingestion.cli``, ``training.cli``,
``deploy.cli``), built with :func:`stage_app`, so ``python -m ingestion`` and
``python -m training`` keep working. The ``candlecast`` script merges them: stages
announce their app under the ``candlecast.commands`` entry-point group in
``pyproject.toml``, so this core module never imports a stage.

Conventions for every command: ``--help`` everywhere; ``-v/--verbose`` shows
debug logs and third-party warnings; exit 0 on success, 2 for bad input or
missing data (the message names the command that makes it), 1 when a
dependency fails; an expected error is one ``error:`` line, never a traceback.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from importlib.metadata import entry_points

import pandas as pd
import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from candlecast import logs
from candlecast.errors import EXIT_BAD_INPUT, EXIT_FAILURE, BadInput, Failure
from candlecast.symbols import normalize_symbol
from candlecast.times import utc

ENTRY_POINTS = "candlecast.commands"
#: Stages in pipeline order, so ``candlecast --help`` reads like the data flow.
STAGE_ORDER = ("ingestion", "training", "deploy")
log = logging.getLogger("candlecast")

# Piped output (logs, CI, files) keeps whole table cells instead of 80 squeezed columns.
out = Console() if sys.stdout.isatty() else Console(width=140)
err = Console(stderr=True)

SYMBOL_HELP = "Coinbase product id, e.g. BTC-USD."
DATE_HELP = "UTC date `2024-01-01` or ISO-8601 time `2024-01-01T06:00` (offsets converted to UTC)."
VERBOSE = typer.Option(False, "--verbose", "-v", help="Debug logs and third-party warnings.")


def setup(verbose: bool = VERBOSE) -> None:
    """Configure logging once for this entry point (the apps' callback)."""
    logs.configure(verbose=verbose)


def stage_app(help_text: str) -> typer.Typer:
    """A stage's Typer app with the shared ``--verbose`` callback."""
    app = typer.Typer(help=help_text, no_args_is_help=True, add_completion=False)
    app.callback()(setup)
    return app


def fail(message: str, code: int) -> typer.Exit:
    """Print one ``error:`` line; return the Exit to raise (``raise fail(...)``)."""
    err.print(f"[bold red]error:[/] {escape(message)}", soft_wrap=True)
    log.debug("exit %s: %s", code, message)
    return typer.Exit(code=code)


def exit_code(exc: BaseException) -> int | None:
    """The exit code of an expected failure, or None for a bug (which keeps its traceback)."""
    if isinstance(exc, BadInput):
        return EXIT_BAD_INPUT
    if isinstance(exc, Failure):
        return EXIT_FAILURE
    if isinstance(exc, ValueError | LookupError | FileNotFoundError):
        return EXIT_BAD_INPUT
    bento_errors = sys.modules.get("bentoml.exceptions")  # loaded only if BentoML ran
    if bento_errors and isinstance(exc, bento_errors.BentoMLException):
        return EXIT_BAD_INPUT  # unknown tag, model already imported, bad file
    return None


@contextmanager
def errors() -> Iterator[None]:
    """Expected failures become one message and their exit code (see :func:`exit_code`)."""
    try:
        yield
    except typer.Exit:
        raise
    except Exception as exc:
        code = exit_code(exc)
        if code is None:
            raise
        raise fail(str(exc), code) from None


def parse_when(text: str | None) -> pd.Timestamp | None:
    """A CLI date/time as a UTC timestamp; naive input is UTC."""
    if text is None:
        return None
    try:
        return utc(text)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None


def parse_symbol(text: str) -> str:
    try:
        return normalize_symbol(text)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None


def parse_symbols(values: list[str] | None) -> list[str]:
    """Symbols of a repeatable option, normalised and de-duplicated in order."""
    return list(dict.fromkeys(parse_symbol(v) for v in values or []))


def progress(unit: str = "") -> Progress:
    """The progress bar every long job shows on stderr (so piped stdout stays clean)."""
    return Progress(
        TextColumn("[bold]{task.description:<12}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn(unit),
        TimeElapsedColumn(),
        console=err,
    )


def build_app() -> typer.Typer:
    """The root app: every stage's commands, found through the entry points."""
    app = typer.Typer(
        help="candlecast: next-hour crypto price forecasts from exchange candles, "
        "backed by a Feast feature store and BentoML.",
        no_args_is_help=True,
        add_completion=False,
    )
    app.callback()(setup)

    def order(point) -> tuple[int, str]:
        rank = STAGE_ORDER.index(point.name) if point.name in STAGE_ORDER else len(STAGE_ORDER)
        return rank, point.name

    points = sorted(entry_points(group=ENTRY_POINTS), key=order)
    stages = [point.load() for point in points] or source_stages()
    for stage in stages:
        # The stage's commands join the root directly (its own callback is this one).
        app.registered_commands.extend(stage.registered_commands)
    return app


def source_stages() -> list[typer.Typer]:
    """The stage apps found beside this package when it is not installed (the Bento).

    A Bento carries the source tree but no package metadata, so no entry points:
    ``python -m candlecast live`` in the image still finds ``deploy.cli``.
    """
    from importlib import import_module

    apps = []
    for name in STAGE_ORDER:
        try:
            apps.append(import_module(f"{name}.cli").app)
        except ModuleNotFoundError as exc:
            if exc.name not in (name, f"{name}.cli"):
                raise
    return apps


def main() -> None:
    """Entry point of the ``candlecast`` console script."""
    build_app()(prog_name="candlecast")
