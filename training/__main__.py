"""``python -m training``: train, backtest and manage registered models."""

from training.cli import app

app()
