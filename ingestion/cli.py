"""Command line for the data layer: ``python -m ingestion --help``."""

from __future__ import annotations

import typer

app = typer.Typer(
    help="Fetch, store and inspect hourly candles; compute and publish features.",
    no_args_is_help=True,
    add_completion=False,
)


def _register_feature_commands() -> None:
    from ingestion import cli_features

    cli_features.register(app)


_register_feature_commands()
