"""CANDLECAST_API_WORKERS: how many API worker processes ``bentoml serve`` starts."""

from __future__ import annotations

import os

import pytest
from pydantic import ValidationError

from candlecast.settings import Settings, get_settings, reset_settings


def test_two_workers_by_default_one_on_a_single_core(monkeypatch):
    monkeypatch.delenv("CANDLECAST_API_WORKERS", raising=False)
    assert Settings().api_workers == min(2, os.cpu_count() or 1)
    monkeypatch.setattr(os, "cpu_count", lambda: 1)
    assert Settings().api_workers == 1


def test_the_environment_sets_them_and_nonsense_is_refused(monkeypatch):
    monkeypatch.setenv("CANDLECAST_API_WORKERS", "3")
    reset_settings()
    assert get_settings().api_workers == 3
    for bad in ("0", "two"):
        monkeypatch.setenv("CANDLECAST_API_WORKERS", bad)
        with pytest.raises(ValidationError, match="api_workers"):
            Settings()
    reset_settings()
