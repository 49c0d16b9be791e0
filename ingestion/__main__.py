"""``python -m ingestion``: candle and feature jobs."""

from ingestion.cli import app

app()
