"""Training fanned out on a real local Ray cluster: the serial run's results, and faults.

Two synthetic symbols of their own (RAYA-USD, RAYB-USD: their model names are used by no
other test in the session's model store), features through Feast (local profile), one
weekly fold, lasso and lgbm. The fault test SIGKILLs the real worker process running
one unit (found by its task's process title) while it trains.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from tests.fakes.homes import candlecast_home
from tests.fakes.ray_cluster import ray_cluster, task_pids  # noqa: F401 (fixture)

pytestmark = [pytest.mark.integration, pytest.mark.ray]
SYMBOLS = ("RAYA-USD", "RAYB-USD")
FAMILIES = ("lasso", "lgbm")
END = pd.Timestamp("2024-07-01", tz="UTC")


@pytest.fixture(scope="module")
def two_symbols(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A home with 900 synthetic hours of each symbol, features computed and applied."""
    from candlecast import feast_store
    from candlecast.settings import get_settings
    from ingestion.feature_jobs import compute_job
    from ingestion.sample import write_sample
    from ingestion.store import CandleStore

    root = tmp_path_factory.mktemp("ray-training-home")
    with candlecast_home(root):
        store = CandleStore(get_settings().candles_dir)
        for seed, symbol in enumerate(SYMBOLS, start=7):
            write_sample(store, symbol, 900, seed, END, 100.0 * seed)
        compute_job(list(SYMBOLS))
        feast_store.apply()
        yield root


def jobs(home: Path) -> list:
    """Every (symbol, family) unit: last week walk-forward, cut at the data end."""
    from candlecast.feature_catalog import DEFAULT_SERVICE
    from training.dataset import load_dataset
    from training.models import FitConfig
    from training.train import data_end, plan_family

    units = []
    with candlecast_home(home):
        for symbol in SYMBOLS:
            data = load_dataset(symbol, DEFAULT_SERVICE)
            cut = data_end(data)
            start = cut - pd.Timedelta(days=7)
            units += [plan_family(data, f, cut, start, FitConfig()) for f in FAMILIES]
    return units


def test_ray_units_fit_exactly_what_serial_units_fit(ray_cluster, two_symbols):  # noqa: F811
    """Same metrics, same walk-forward predictions, same spec (what is registered), same
    decision, and the final models answer the same, bit for bit."""
    from training.executor import run_units
    from training.train import fit_family

    units = jobs(two_symbols)
    labels = [u.label for u in units]
    serial = run_units(fit_family, units, labels, "serial")
    on_ray = run_units(fit_family, units, labels, "ray")
    assert len(serial) == len(on_ray) == len(SYMBOLS) * len(FAMILIES)
    for unit, a, b in zip(units, serial, on_ray, strict=True):
        assert (
            (a.family, a.spec.symbol)
            == (b.family, b.spec.symbol)
            == (unit.family, unit.data.symbol)
        )
        assert b.spec.to_metadata() == a.spec.to_metadata(), unit.label
        assert b.decision == a.decision
        assert b.summary["metrics"] == a.summary["metrics"]
        pd.testing.assert_frame_equal(b.evaluation.predictions, a.evaluation.predictions)
        x = unit.data.frame[unit.data.features].to_numpy()
        np.testing.assert_array_equal(b.fitted.predict(x), a.fitted.predict(x))
    assert len({a.spec.data_fingerprint for a in serial}) == len(SYMBOLS)  # two real datasets


def test_a_backtest_on_ray_reports_what_the_serial_one_does(ray_cluster, two_symbols):  # noqa: F811
    """Each family a Ray task: the same walk-forward predictions, so the same report."""
    from training.backtest import report, run_backtest

    unit = jobs(two_symbols)[0]
    data, start = unit.data, unit.test_start - pd.Timedelta(days=7)  # two weekly folds
    args = (data, list(FAMILIES), start, unit.cut, unit.cfg)
    serial, on_ray = run_backtest(*args), run_backtest(*args, executor="ray")
    assert list(on_ray) == list(serial) == list(FAMILIES)
    for family in FAMILIES:
        assert len(serial[family].folds) == 2
        pd.testing.assert_frame_equal(on_ray[family].predictions, serial[family].predictions)
    want, got = report(data, serial), report(data, on_ray)
    for payload in (want, got):
        for entry in payload["models"].values():
            entry.pop("fit_seconds")  # wall time, the one figure that may differ
    assert got == want


def test_a_worker_killed_mid_training_fails_its_unit_and_keeps_the_others(
    ray_cluster,  # noqa: F811
    two_symbols,
):
    """``candlecast train`` on Ray, RAYB-USD's lgbm worker SIGKILLed while it trains:
    exit 1 naming RAYB-USD lgbm; the other three units registered as champions, RAYB-USD
    has no lgbm version at all, and every stored version loads."""
    from candlecast import model_store
    from training.cli import app
    from training.registry import load_fitted

    victim = "train RAYB-USD lgbm"
    killed: list[int] = []
    stop = threading.Event()

    def kill_when_running() -> None:
        while not stop.is_set() and not killed:
            for pid in task_pids(victim):
                os.kill(pid, signal.SIGKILL)
                killed.append(pid)
            time.sleep(0.02)

    killer = threading.Thread(target=kill_when_running, daemon=True)
    killer.start()
    args = ["train", *[a for s in SYMBOLS for a in ("-s", s)], "-m", ",".join(FAMILIES)]
    with candlecast_home(two_symbols):
        result = CliRunner().invoke(app, [*args, "--executor", "ray"])
    stop.set()
    killer.join()
    assert killed, "the victim's worker was never seen running"
    assert result.exit_code == 1, result.output
    assert "RAYB-USD lgbm: its Ray worker died" in result.output
    assert "1 of 4 training units failed" in result.output
    for symbol in SYMBOLS:
        for family in FAMILIES:
            champion = model_store.champion(family, symbol)
            if (symbol, family) == ("RAYB-USD", "lgbm"):
                assert champion is None and not model_store.raw_versions(family, symbol)
                continue
            assert champion is not None, (symbol, family)
            assert f"{champion.tag} -> champion" in result.output
            fitted, spec = load_fitted(champion.tag)
            assert (fitted.family, spec.symbol) == (family, symbol)
