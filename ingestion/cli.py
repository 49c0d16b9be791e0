"""Command line for the data layer: ``python -m ingestion --help``.

Exit codes: 0 success, 2 bad input (dates, symbols, unknown product, bad CSV
rows), 1 runtime failure (exchange unreachable after retries, invalid data from
the exchange, real/synthetic conflict). Expected errors print one clear
message, never a traceback.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pandas as pd
import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from ingestion.gaps import missing_hours, summarize_gaps
from ingestion.settings import get_settings
from ingestion.store import CandleStore, InvalidSymbolError, normalize_symbol

app = typer.Typer(
    help="Fetch, store and inspect hourly candles; compute and publish features.",
    no_args_is_help=True,
    add_completion=False,
)
# Piped output (logs, CI, files) keeps whole table cells instead of 80 squeezed columns.
out = Console() if sys.stdout.isatty() else Console(width=140)
err = Console(stderr=True)

SYMBOL_HELP = "Coinbase product id, e.g. BTC-USD."
DATE_HELP = "UTC date `2024-01-01` or ISO-8601 time `2024-01-01T06:00` (offsets converted to UTC)."


def parse_when(text: str | None) -> pd.Timestamp | None:
    """A CLI date/time as a UTC timestamp; naive input is UTC."""
    if text is None:
        return None
    try:
        stamp = pd.Timestamp(text)
    except (ValueError, TypeError):
        raise typer.BadParameter(f"{text!r} is not a date (use 2024-01-01 or ISO-8601)") from None
    if stamp is pd.NaT:
        raise typer.BadParameter(f"{text!r} is not a date")
    return stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")


def parse_symbol(text: str) -> str:
    try:
        return normalize_symbol(text)
    except InvalidSymbolError as exc:
        raise typer.BadParameter(str(exc)) from None


def _symbols(values: list[str]) -> list[str]:
    return list(dict.fromkeys(parse_symbol(v) for v in values))


def _store() -> CandleStore:
    return CandleStore(get_settings().candles_dir)


def fail(message: str, code: int) -> typer.Exit:
    err.print(f"[bold red]error:[/] {escape(message)}", soft_wrap=True)
    return typer.Exit(code=code)


@contextmanager
def _errors() -> Iterator[None]:
    """Map expected failures to a message and exit code (2 bad input, 1 runtime)."""
    from ingestion.coinbase import CoinbaseError, UnknownSymbolError
    from ingestion.csv_import import CsvImportError
    from ingestion.sample import SyntheticConflictError
    from ingestion.validate import CandleValidationError

    try:
        yield
    except (UnknownSymbolError, CsvImportError) as exc:
        raise fail(str(exc), 2) from None
    except (CoinbaseError, CandleValidationError, SyntheticConflictError) as exc:
        raise fail(str(exc), 1) from None


def _progress() -> Progress:
    return Progress(
        TextColumn("{task.description:<10}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("pages"),
        TimeElapsedColumn(),
        console=err,
    )


def _advance(bars: Progress, task: int) -> Callable[[int, int], None]:
    def update(done: int, total: int) -> None:
        bars.update(task, completed=done, total=total)

    return update


@app.command()
def backfill(
    symbol: list[str] = typer.Option(..., "--symbol", "-s", help=SYMBOL_HELP + " Repeatable."),
    start: str = typer.Option(..., help="First hour to fetch. " + DATE_HELP),
    end: str | None = typer.Option(None, help="End (exclusive; default: now). " + DATE_HELP),
) -> None:
    """Fetch closed hourly candles from Coinbase into the store (idempotent, resumable)."""
    from ingestion.backfill import backfill as run_backfill

    symbols, first, last = _symbols(symbol), parse_when(start), parse_when(end)
    if last is not None and last <= first:
        raise typer.BadParameter("--end must be after --start", param_hint="--end")
    if first >= pd.Timestamp.now(tz="UTC").floor("h"):
        raise typer.BadParameter(
            "--start is in the future (no closed candles)", param_hint="--start"
        )
    store, results = _store(), []
    try:
        with _errors(), _progress() as bars:
            for name in symbols:
                task = bars.add_task(name, total=None)
                progress = _advance(bars, task)
                results.append(run_backfill(store, name, first, last, progress=progress))
    finally:
        if results:  # symbols finished before a failure are stored: say so
            _print_backfill(results)


def _print_backfill(results: list) -> None:
    table = Table(title="backfill")
    for column in [
        "symbol",
        "from (UTC)",
        "to",
        "fetched",
        "new",
        "already stored",
        "gaps",
        "requests",
    ]:
        table.add_column(column)
    for r in results:
        gaps = f"{len(r.gaps)} ({missing_hours(r.gaps)} h)"
        table.add_row(
            r.symbol,
            f"{r.window.start:%Y-%m-%d %H:%M}",
            f"{r.window.end:%Y-%m-%d %H:%M}",
            str(r.fetched),
            str(r.new),
            str(r.existing),
            gaps,
            str(r.requests),
        )
    out.print(table)
    for r in results:
        if r.gaps:
            out.print(
                f"{r.symbol}: {escape(summarize_gaps(r.gaps))} (reported, not filled)",
                soft_wrap=True,
            )


@app.command("load-csv")
def load_csv(
    path: Path = typer.Argument(..., help="CSV with header time,low,high,open,close,volume."),
    symbol: str = typer.Option(..., "--symbol", "-s", help=SYMBOL_HELP),
) -> None:
    """Import a Coinbase-format candle CSV; any bad row aborts with nothing stored."""
    from ingestion.csv_import import load_csv as run_load_csv

    name = parse_symbol(symbol)
    with _errors():
        result = run_load_csv(_store(), path, name)
    out.print(
        f"{result.symbol}: {result.rows} candles read from {escape(str(path))}, "
        f"{result.write.new} new, {result.write.existing} already stored; "
        f"{escape(summarize_gaps(result.gaps))}",
        soft_wrap=True,
    )


@app.command()
def sample(
    symbol: str = typer.Option("BTC-USD", "--symbol", "-s", help=SYMBOL_HELP),
    hours: int = typer.Option(2000, min=1, max=200_000, help="Number of hourly candles."),
    seed: int = typer.Option(0, help="Random seed; same seed, hours and end = same candles."),
    end: str | None = typer.Option(None, help="End (exclusive; default: now). " + DATE_HELP),
) -> None:
    """Store a deterministic SYNTHETIC market (GARCH volatility, volume ~ |return|)."""
    from ingestion.sample import write_sample

    name, stop = parse_symbol(symbol), parse_when(end)
    with _errors():
        result = write_sample(_store(), name, hours, seed, stop)
    if result.replaced:
        out.print(f"replaced earlier synthetic {name} candles (seed {result.replaced.get('seed')})")
    out.print(
        f"[bold yellow]SYNTHETIC[/] {name}: {hours} generated candles (seed {seed}) "
        f"{result.first:%Y-%m-%d %H:%M} .. {result.last:%Y-%m-%d %H:%M} UTC, "
        f"{result.write.new} new, {result.write.existing} already stored. Not market data.",
        soft_wrap=True,
    )


@app.command()
def status(
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
) -> None:
    """Per symbol: first/last candle, count, gaps, freshness, synthetic or real."""
    from ingestion.status import store_status

    settings = get_settings()
    rows = store_status(_store())
    if as_json:
        out.print_json(json.dumps([r.as_dict() for r in rows]))
        return
    if not rows:
        out.print(f"no candles stored under {escape(str(settings.candles_dir))}")
        return
    table = Table(title=f"candles in {settings.candles_dir}")
    for column in ["symbol", "source", "first", "last", "count", "gaps", "age"]:
        table.add_column(column)
    for r in rows:
        stale = r.age.total_seconds() > settings.stale_after_seconds
        age = f"{r.age.total_seconds() / 3600:.1f} h" + (" [red](stale)[/]" if stale else "")
        source = "[yellow]SYNTHETIC[/]" if r.synthetic else "exchange/csv"
        gaps = f"{len(r.gaps)} ({missing_hours(r.gaps)} h)"
        table.add_row(
            r.symbol,
            source,
            f"{r.first:%Y-%m-%d %H:%M}",
            f"{r.last:%Y-%m-%d %H:%M}",
            str(r.count),
            gaps,
            age,
        )
    out.print(table)
    for r in rows:
        if r.gaps:
            out.print(f"{r.symbol}: {escape(summarize_gaps(r.gaps))}", soft_wrap=True)


def _register_feature_commands() -> None:
    from ingestion import cli_features

    cli_features.register(app)


_register_feature_commands()
