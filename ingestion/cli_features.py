"""Feature commands (``features``, ``update``), registered onto the ingestion CLI."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    """Attach the feature commands to ``app`` (filled in by the feature stage)."""
