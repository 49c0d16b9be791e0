"""Command line for the data layer: ``python -m ingestion --help`` (also ``candlecast``).

Exit codes: 0 success, 2 bad input (dates, symbols, unknown product, bad CSV
rows), 1 runtime failure (exchange unreachable after retries, invalid data from
the exchange, real/synthetic conflict, a corrupt file). Expected errors print one
clear message, never a traceback (``candlecast.cli.errors``).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import typer
from rich.markup import escape
from rich.progress import Progress
from rich.table import Table

from candlecast.cli import (
    DATE_HELP,
    SYMBOL_HELP,
    errors,
    out,
    parse_symbol,
    parse_symbols,
    parse_when,
    progress,
    stage_app,
)
from candlecast.settings import get_settings
from ingestion.cli_features import features, update
from ingestion.cli_performance import performance
from ingestion.gaps import missing_hours, summarize_gaps
from ingestion.store import CandleStore

log = logging.getLogger(__name__)
app = stage_app("Fetch, store and inspect hourly candles; compute and publish features.")


def _store() -> CandleStore:
    return CandleStore(get_settings().candles_dir)


def _advance(bars: Progress, task: int) -> Callable[[int, int], None]:
    def advance(done: int, total: int) -> None:
        bars.update(task, completed=done, total=total)

    return advance


@app.command()
def backfill(
    symbol: list[str] = typer.Option(..., "--symbol", "-s", help=SYMBOL_HELP + " Repeatable."),
    start: str = typer.Option(..., help="First hour to fetch. " + DATE_HELP),
    end: str | None = typer.Option(None, help="End (exclusive; default: now). " + DATE_HELP),
) -> None:
    """Fetch closed hourly candles from Coinbase into the store (idempotent, resumable)."""
    from ingestion.backfill import backfill as run_backfill

    symbols, first, last = parse_symbols(symbol), parse_when(start), parse_when(end)
    if last is not None and last <= first:
        raise typer.BadParameter("--end must be after --start", param_hint="--end")
    if first >= pd.Timestamp.now(tz="UTC").floor("h"):
        raise typer.BadParameter(
            "--start is in the future (no closed candles)", param_hint="--start"
        )
    store, results = _store(), []
    try:
        with errors(), progress("pages") as bars:
            for name in symbols:
                task = bars.add_task(name, total=None)
                advance = _advance(bars, task)
                results.append(run_backfill(store, name, first, last, progress=advance))
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
    with errors():
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
    with errors():
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
    with errors():
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


app.command("features")(features)
app.command("update")(update)
app.command("performance")(performance)
