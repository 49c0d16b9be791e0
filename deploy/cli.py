"""Commands that run candlecast as a whole: ``candlecast demo`` and ``candlecast serve``."""

from __future__ import annotations

import os

import typer

from candlecast.cli import stage_app

app = stage_app("Run candlecast: the offline demo and the local prediction server.")


@app.command()
def demo(
    source: str = typer.Option("sample", help="sample (offline, synthetic) or coinbase (live)."),
    symbol: str = typer.Option("BTC-USD", help="Coinbase product id."),
) -> None:
    """Run every stage on one machine (candles → features → train → serve) and print a forecast."""
    from deploy.demo import run

    run(source, symbol)


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
