"""Commands that run candlecast as a whole: ``candlecast demo`` and ``candlecast serve``."""

from __future__ import annotations

import os

import pandas as pd
import typer

from candlecast.cli import parse_symbols, stage_app

app = stage_app("Run candlecast: the offline demo and the local prediction server.")


@app.command()
def demo(
    source: str = typer.Option("sample", help="sample (offline, synthetic) or coinbase (live)."),
    symbol: list[str] | None = typer.Option(
        None,
        "--symbol",
        "-s",
        help="Coinbase product id. Repeatable; default: BTC-USD and ETH-USD.",
    ),
    serve: bool = typer.Option(
        False, "--serve", help="Keep the API and its dashboard running afterwards (Ctrl-C stops)."
    ),
    port: int = typer.Option(3000, help="Port of the kept service (--serve)."),
) -> None:
    """Run every stage on one machine (candles → features → train → serve) for each symbol and
    print each one's forecasts and the dashboard's URL."""
    from deploy.demo import run

    run(source, parse_symbols(symbol) or None, serve, port)


@app.command()
def serve(
    port: int = typer.Option(3000, help="Port to listen on."),
    host: str = typer.Option("127.0.0.1", help="Address to bind (0.0.0.0 to serve the LAN)."),
    development: bool = typer.Option(
        False, "--development", help="Fused layout: the model services run in the API process."
    ),
) -> None:
    """Serve the HTTP API from $CANDLECAST_HOME's features and champions (`bentoml serve`).

    BENTOML_HOME defaults under $CANDLECAST_HOME here, before BentoML starts: a bare
    `bentoml serve` would read ~/bentoml and find no champions.
    """
    from candlecast.settings import PROJECT_ROOT, get_settings
    from deploy.serve import serve_command

    get_settings().export_env()
    cmd = serve_command(port, host, fused=development)
    os.chdir(PROJECT_ROOT)
    os.execv(cmd[0], cmd)


def parse_duration(text: str) -> pd.Timedelta | None:
    """``24h``, ``90m``, ``7d``; ``0``/``off`` for never."""
    value = text.strip().lower()
    if value in ("0", "off", "never", "none"):
        return None
    try:
        length = pd.Timedelta(value)
    except ValueError:
        raise typer.BadParameter(f"{text!r} is not a duration such as 24h, 90m or 7d") from None
    if length <= pd.Timedelta(0):
        raise typer.BadParameter(f"{text!r} must be positive (or 0 for never)")
    return length


@app.command()
def live(
    once: bool = typer.Option(False, "--once", help="Run one cycle now and exit."),
    replay: tuple[str, str] | None = typer.Option(
        None,
        "--replay",
        metavar="START END",
        help="Replay the cycle hour by hour over a past period (UTC), on a simulated clock.",
    ),
    symbol: list[str] = typer.Option(
        None, "--symbol", "-s", help="Symbol to run (repeatable; default CANDLECAST_SERVE_SYMBOLS)."
    ),
    retrain_every: str = typer.Option("24h", help="Scheduled retrain interval (0: never)."),
    early_window: str = typer.Option(
        "72h", help="Retrain early when a champion's live MAE ratio > 1 over this window (0: off)."
    ),
    max_wait: float = typer.Option(
        900.0, help="Seconds to poll for the hour's candle before giving up on it until next cycle."
    ),
    publish_delay: float = typer.Option(5.0, help="Seconds after the hour a cycle starts."),
    eval_days: int = typer.Option(28, help="Walk-forward days of each retrain."),
    max_epochs: int = typer.Option(60, help="Keras epoch cap of each retrain (early stopped)."),
    history_days: int = typer.Option(
        60, help="Days of candles fetched before training a first champion (a new home)."
    ),
    drift: bool = typer.Option(True, help="Compute input and error drift each cycle."),
    healthcheck: bool = typer.Option(
        False, "--healthcheck", help="Exit 0 if the loop's heartbeat is fresh, else 1."
    ),
    max_age: float = typer.Option(600.0, help="Healthcheck: oldest acceptable heartbeat (s)."),
    serve_port: int = typer.Option(
        None, "--serve", help="Also serve the API on 127.0.0.1:PORT while the loop runs."
    ),
) -> None:
    """Run candlecast by itself: every hour fetch the closed candle, publish its features,
    forecast with every served model, log and score the forecasts, retrain when due.

    Stops cleanly on SIGTERM. One loop per CANDLECAST_HOME (a second one refuses
    to start). --replay START END runs the same cycle over past hours, the clock
    set to each hour's close, so a new install gets an honest track record.
    """
    from candlecast.cli import errors, out, parse_symbols, parse_when
    from deploy import live as loop

    with errors():
        if healthcheck:  # the container's healthcheck: kept light (no BentoML, no Feast)
            out.print(loop.check_heartbeat(max_age))
            return
        from bentos.registry import served_families, served_symbols
        from deploy.cycle import LiveConfig
        from deploy.schedule import RetrainPolicy

        policy = RetrainPolicy(
            every=parse_duration(retrain_every),
            early_window=parse_duration(early_window),
            eval_days=eval_days,
            max_epochs=max_epochs,
        )
        config = LiveConfig(
            symbols=parse_symbols(symbol) or served_symbols(),
            families=served_families(),
            publish_delay=publish_delay,
            max_wait=max_wait,
            retrain=policy,
            drift=drift,
            history_days=history_days,
        )
        if replay:
            start, end = parse_when(replay[0]), parse_when(replay[1])
            reports = loop.replay(config, start, end, history_days=history_days)
            logged = sum(r.logged for r in reports)
            out.print(f"replayed {len(reports)} hours: {logged} forecasts logged")
        elif once:
            report = loop.run_once(config)
            out.print_json(data=report.summary())
        else:
            loop.run_forever(config, serve_port=serve_port)
