"""Feature commands (``features``, ``update``) of the ingestion CLI, as plain functions."""

from __future__ import annotations

import logging

import typer
from rich.markup import escape
from rich.progress import Progress
from rich.table import Table

from candlecast.cli import err, errors, fail, out, parse_symbols
from ingestion.gaps import summarize_gaps

log = logging.getLogger(__name__)

SYMBOL_HELP = "Coinbase product id, e.g. BTC-USD. Repeatable; default: every stored symbol."


def features(
    symbol: list[str] = typer.Option(None, "--symbol", "-s", help=SYMBOL_HELP),
    full: bool = typer.Option(False, help="Recompute every row instead of extending."),
    materialize: bool = typer.Option(
        False, help="Also `feast apply` and put each symbol's newest feature row online."
    ),
) -> None:
    """Compute or extend the feature dataset ($CANDLECAST_HOME/features) from the candles.

    Idempotent: only rows after the latest feature row are computed (24 h look-back);
    a symbol whose older candle history changed is recomputed in full.
    """
    from candlecast import feast_store
    from candlecast.settings import get_settings
    from ingestion.feature_jobs import compute_job, materialize_all
    from ingestion.store import CandleStore

    with errors():
        names = parse_symbols(symbol) or CandleStore(get_settings().candles_dir).symbols()
    if not names:
        raise fail("no candles stored; run backfill, load-csv or sample first", 2)
    results = []
    with errors(), Progress(*Progress.get_default_columns(), console=err, transient=True) as bars:
        task = bars.add_task("features", total=len(names))
        for name in names:
            results += compute_job([name], full=full)
            bars.advance(task)
    table = Table(title="features")
    for column in ["symbol", "new rows", "mode"]:
        table.add_column(column)
    for r in results:
        table.add_row(r.symbol, str(r.count), "full" if r.full else "incremental")
    out.print(table)
    if materialize:
        with errors():
            feast_store.apply()
            windows = materialize_all(parse_symbols(symbol) or None)
        if windows:
            out.print(
                f"materialized the newest rows: {windows[0][0]:%Y-%m-%d %H:%M} .. "
                f"{windows[-1][1]:%Y-%m-%d %H:%M} UTC ({len(windows)} windows)"
            )


def update(
    symbol: list[str] = typer.Option(None, "--symbol", "-s", help=SYMBOL_HELP),
) -> None:
    """Real-time step (run hourly): fetch closed candles -> store -> features -> online store.

    Prints the freshness: close time of the latest candle and seconds from fetch to online.
    Applies the Feast repo itself when it has not been applied. Without --symbol: every
    stored symbol, or CANDLECAST_SERVE_SYMBOLS on an empty store (the last day is fetched).
    """
    from ingestion.feature_jobs import update_job

    with errors():
        results = update_job(parse_symbols(symbol) or None)
    table = Table(title="update")
    for column in ["symbol", "fetched", "new", "feature rows", "latest close (UTC)", "age", "s"]:
        table.add_column(column)
    for r in results:
        latest = "-" if r.latest_close is None else f"{r.latest_close:%Y-%m-%d %H:%M}"
        age = r.age_seconds()
        table.add_row(
            r.symbol,
            str(r.fetched),
            str(r.new_candles),
            str(r.feature_rows),
            latest,
            "-" if age is None else f"{age / 60:.0f} min",
            f"{r.seconds_to_online:.2f}",
        )
    out.print(table)
    for r in results:
        out.print(
            f"{escape(r.symbol)}: latest candle closed {r.latest_close} UTC; "
            f"fetch -> online in {r.seconds_to_online:.2f} s; "
            f"{escape(summarize_gaps(r.gaps))} in the fetched window (reported, not filled)",
            soft_wrap=True,
        )
