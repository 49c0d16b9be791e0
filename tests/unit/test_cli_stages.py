"""The root CLI finds the stages' commands with and without package metadata."""

from __future__ import annotations

from importlib.metadata import entry_points

from candlecast.cli import ENTRY_POINTS, source_stages


def _names(apps) -> set[str]:
    return {c.name or c.callback.__name__ for app in apps for c in app.registered_commands}


def test_the_source_tree_gives_the_same_commands_as_the_entry_points():
    """A Bento has no entry points: ``python -m candlecast live`` must still work there."""
    installed = _names(point.load() for point in entry_points(group=ENTRY_POINTS))
    assert {"live", "backfill", "train", "performance", "models"} <= installed
    assert _names(source_stages()) == installed
