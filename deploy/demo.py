"""``candlecast demo`` (``make demo``): the whole pipeline, ending in printed predictions.

It runs the same documented ``candlecast`` commands a user would (so the README
cannot drift from what works), for BTC-USD and ETH-USD side by side: candles →
features + Feast online store → training and registry per symbol → one
``bentoml serve`` for both symbols → a forecast table per symbol through the
Python client. The default source is the bundled deterministic synthetic market
(each symbol its own seed and price level), so the demo needs no network;
``--source coinbase`` backfills live Coinbase candles instead. It sits with the
other ways of running candlecast (``deploy.serve``, the image), above every stage
it drives.
"""

from __future__ import annotations

import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta

import typer
from rich.console import Console
from rich.table import Table

console = Console()
#: Each step runs the console script with this interpreter (``python -m candlecast``).
CLI = ["-m", "candlecast"]

DEMO_HOURS = 2400
DEMO_MODELS = "lasso,cnn"
DEMO_SYMBOLS = ("BTC-USD", "ETH-USD")


def symbol_flags(symbols: list[str]) -> list[str]:
    """``--symbol A --symbol B``: the repeatable option of ``backfill`` and ``features``."""
    return [arg for symbol in symbols for arg in ("--symbol", symbol)]


def candle_commands(source: str, symbols: list[str]) -> list[tuple[str, list[str]]]:
    """The ingestion commands that fill the candle store for ``source``, titled.

    ``sample`` gives the i-th symbol seed i (BTC-USD 0, ETH-USD 1): two markets, not one
    path twice; each starts at its own price (``ingestion.sample.START_PRICES``).
    """
    if source == "sample":
        return [
            (
                f"candles (sample) {symbol}",
                [*CLI, "sample", "--symbol", symbol, "--hours", str(DEMO_HOURS), "--seed", str(i)],
            )
            for i, symbol in enumerate(symbols)
        ]
    if source == "coinbase":
        start = (datetime.now(UTC) - timedelta(hours=DEMO_HOURS)).strftime("%Y-%m-%dT%H:00")
        return [
            (
                f"candles (coinbase) {', '.join(symbols)}",
                [*CLI, "backfill", *symbol_flags(symbols), "--start", start],
            )
        ]
    raise typer.BadParameter(f"unknown source {source!r}: choose sample or coinbase")


def pipeline(source: str, symbols: list[str]) -> list[tuple[str, list[str]]]:
    """The demo's steps, each a titled ``python`` argument list: one training per symbol
    (one ``train`` per symbol: its models and champions are that symbol's)."""
    return [
        *candle_commands(source, symbols),
        ("candle store status", [*CLI, "status"]),
        (
            "features → offline parquet → Feast online store",
            [*CLI, "features", *symbol_flags(symbols), "--materialize"],
        ),
        *(
            (
                f"train, evaluate walk-forward, register: {symbol}",
                [*CLI, "train", "--symbol", symbol, "--models", DEMO_MODELS],
            )
            for symbol in symbols
        ),
    ]


def run_step(title: str, args: list[str]) -> None:
    console.rule(f"[bold]{title}")
    console.print(f"$ candlecast {' '.join(args[len(CLI) :])}", style="dim")
    started = time.perf_counter()
    code = subprocess.call([sys.executable, *args])
    if code != 0:
        console.print(f"[bold red]demo stopped: step '{title}' exited with {code}")
        raise typer.Exit(code)
    console.print(f"[green]done in {time.perf_counter() - started:.1f} s")


def serve_and_predict(symbols: list[str], keep_serving: bool = False, port: int = 3000) -> None:
    """Start one BentoML service for every symbol, print each symbol's forecast by every
    model, then stop it, or with ``keep_serving`` leave it (and its dashboard) up on
    ``port`` until Ctrl-C."""
    from deploy.serve import free_port, serve_in_background

    console.rule("[bold]serve and predict")
    # the service loads each of these symbols' champions and reads each one's own features
    served = {"CANDLECAST_SERVE_SYMBOLS": ",".join(symbols)}
    with serve_in_background(port=port if keep_serving else free_port(), env=served) as client:
        for symbol in symbols:
            default = client.predict(symbol)
            models = ("naive", *DEMO_MODELS.split(","))
            print_forecast(symbol, default, [client.predict(symbol, model=m) for m in models])
        if keep_serving:
            console.print(
                f"[bold]Dashboard: {client.base_url}/[/]  (API docs: /docs; Ctrl-C stops)"
            )
            wait_for_interrupt()
            return
    console.print(
        f"[bold]Dashboard: http://127.0.0.1:{port}/[/] once served: `make demo SERVE=1` keeps "
        f"the service up after the demo; `candlecast serve --port {port}` serves this state again"
    )


def wait_for_interrupt() -> None:
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        console.print("stopping the service")


def print_forecast(symbol: str, default, by_model: list) -> None:
    console.print(prediction_table(by_model, default.model, symbol))
    console.print(
        f"[bold]{symbol}[/] closed at [bold]{default.current_price:,.2f}[/] "
        f"({default.as_of:%Y-%m-%d %H:%M} UTC). Forecast for {default.target_time:%H:%M} UTC "
        f"by the default model [bold]{default.model}[/]: "
        f"[bold]{default.predicted_price:,.2f}[/] ({default.predicted_change_pct:+.3f} %)"
        + (" [red](features are stale)[/]" if default.stale else "")
    )


def prediction_table(predictions: list, default_model: str, symbol: str = "") -> Table:
    """One row per model with its walk-forward MAE ratio, so nobody over-reads a forecast."""
    title = "next-hour forecasts (ratio < 1 means better than naive on the backtest)"
    table = Table(title=f"{symbol} {title}" if symbol else title)
    for column in ("model", "version", "predicted", "change %", "MAE / persistence"):
        table.add_column(column, justify="right" if column != "model" else "left")
    for p in predictions:
        ratio = "-" if p.mae_ratio_vs_persistence is None else f"{p.mae_ratio_vs_persistence:.4f}"
        name = f"{p.model} (default)" if p.model == default_model else p.model
        table.add_row(
            name,
            p.model_version.rsplit(":", 1)[-1],  # the tag's version; the name is the family
            f"{p.predicted_price:,.2f}",
            f"{p.predicted_change_pct:+.3f}",
            ratio,
        )
    return table


def run(
    source: str = "sample",
    symbols: list[str] | None = None,
    keep_serving: bool = False,
    port: int = 3000,
) -> None:
    """Run every stage of candlecast for ``symbols`` (default BTC-USD and ETH-USD) and print
    each one's forecasts and the dashboard's URL."""
    from candlecast.settings import get_settings

    names = list(symbols or DEMO_SYMBOLS)
    for title, args in pipeline(source, names):
        run_step(title, args)
    home = get_settings().home
    console.print(
        f"State is in {home}. To explore it: export CANDLECAST_HOME={home} "
        f"BENTOML_HOME={home / 'bentoml'} CANDLECAST_SERVE_SYMBOLS={','.join(names)}"
    )
    serve_and_predict(names, keep_serving, port)
