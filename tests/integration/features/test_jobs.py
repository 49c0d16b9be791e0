"""Feature jobs: incremental extension, feast apply contents, CLI commands and Feast CLI flow."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from candlecast import feast_store
from candlecast.feature_catalog import V3_GROUPS
from candlecast.settings import PROJECT_ROOT, get_settings, reset_settings
from ingestion.cli import app
from ingestion.feature_dataset import FeatureDataset
from ingestion.feature_jobs import compute_job
from ingestion.features import FEATURE_COLUMNS, V1_FEATURES, V2_FEATURES, compute_features
from ingestion.sample import synthetic_candles
from ingestion.store import CandleStore
from tests.conftest import Market
from tests.integration.features.helpers import assert_rows_equal

pytestmark = pytest.mark.integration
#: Per market: how many candles the first incremental run gets (synthetic: the rest starts
#: right after a gap) and an old window of candles that arrives late.
FIRST_RUN = {"real": 3000, "synthetic": 1386}  # synthetic: 13:00 | gap | 16:00
LATE = {
    "real": ("2024-02-01", "2024-02-01 05:00"),
    "synthetic": ("2024-05-01", "2024-05-01 05:00"),
}


def run_cli(*args: str):
    return CliRunner(env={"COLUMNS": "200"}).invoke(app, list(args))


def sorted_rows(table) -> pd.DataFrame:
    return table.to_pandas().sort_values(["symbol", "event_timestamp"], ignore_index=True)


def stored(home: Path) -> pd.DataFrame:
    return FeatureDataset(home / "features").read()


def test_incremental_runs_equal_one_full_run_and_rerun_changes_nothing(home, market: Market):
    candles, first = market.candles, FIRST_RUN[market.name]
    store = CandleStore(home / "candles")
    store.write(candles.iloc[:first])
    assert compute_job()[0].full
    store.write(candles.iloc[first:])
    [second] = compute_job()
    assert (second.full, second.count) == (False, len(candles) - first)
    full = sorted_rows(compute_features(candles))
    result = stored(home)
    assert list(result["event_timestamp"]) == list(full["event_timestamp"])
    assert_rows_equal(result, full, FEATURE_COLUMNS)
    files = {p: p.stat().st_mtime_ns for p in (home / "features").rglob("*.parquet")}
    assert compute_job()[0].count == 0
    assert {p: p.stat().st_mtime_ns for p in (home / "features").rglob("*.parquet")} == files


def test_filling_an_old_gap_recomputes_the_symbol(home, market: Market):
    candles = market.candles
    gap = candles["time"].between(*LATE[market.name])
    assert gap.sum() == 6
    store = CandleStore(home / "candles")
    store.write(candles[~gap])
    compute_job()
    store.write(candles[gap])
    [run] = compute_job()
    assert run.full
    assert_rows_equal(stored(home), sorted_rows(compute_features(candles)), FEATURE_COLUMNS)


def test_a_regenerated_sample_leaves_no_stale_feature_rows(home):
    """Re-sampling an hour later replaces the candles; the full recompute must drop old rows."""
    from ingestion.sample import write_sample

    store = CandleStore(home / "candles")
    end = pd.Timestamp("2024-03-01", tz="UTC")
    write_sample(store, "BTC-USD", hours=200, seed=3, end=end)
    compute_job()
    write_sample(store, "BTC-USD", hours=200, seed=3, end=end + pd.Timedelta(hours=5))
    [first] = compute_job()
    [second] = compute_job()
    assert first.full and not second.full and second.count == 0
    expected = sorted_rows(compute_features(store.read("BTC-USD")))
    assert_rows_equal(stored(home), expected, FEATURE_COLUMNS)


def test_the_job_keeps_no_symbols_rows_once_they_are_stored(home, monkeypatch):
    """Each symbol's rows are dropped when written, so memory is one symbol's, not S."""
    import gc
    import weakref

    from ingestion import feature_jobs
    from ingestion.sample import write_sample

    store, end = CandleStore(home / "candles"), pd.Timestamp("2024-03-01", tz="UTC")
    for seed, name in enumerate(["BTC-USD", "ETH-USD", "SOL-USD"]):
        write_sample(store, name, hours=200, seed=seed, end=end)
    tables = []
    real = feature_jobs.extend_features

    def watched(*args, **kwargs):
        gc.collect()  # the rows of the symbols before this one are gone already
        assert [t() for t in tables] == [None] * len(tables)
        result = real(*args, **kwargs)
        tables.append(weakref.ref(result.rows))
        return result

    monkeypatch.setattr(feature_jobs, "extend_features", watched)
    results = compute_job()
    gc.collect()
    assert [t() for t in tables] == [None, None, None]
    counts = stored(home).groupby("symbol").size()
    assert {(r.symbol, r.count, r.full) for r in results} == {
        (name, int(n), True) for name, n in counts.items()
    }


def test_extensions_of_one_symbol_are_serialised(home):
    """`features` and the hourly `update` may overlap: the second waits for the first."""
    import threading

    from ingestion.feature_dataset import extend_features
    from ingestion.sample import write_sample

    store = CandleStore(home / "candles")
    write_sample(store, "BTC-USD", hours=100, seed=3, end=pd.Timestamp("2024-03-01", tz="UTC"))
    dataset = FeatureDataset(home / "features")
    runs = []
    worker = threading.Thread(
        target=lambda: runs.append(extend_features(store, dataset, "BTC-USD"))
    )
    with dataset.locked("BTC-USD"):
        worker.start()
        worker.join(timeout=1.0)
        assert worker.is_alive() and not runs  # blocked on the lock
    worker.join(timeout=60)
    assert len(runs) == 1 and runs[0].count == 100


def test_apply_registers_services_with_ordered_features(home):
    feast_store.apply()
    assert feast_store.feature_names("price_model_v1") == list(V1_FEATURES)
    assert feast_store.feature_names("price_model_v2") == list(V2_FEATURES)
    for group, features in V3_GROUPS.items():  # each ablation service: v2, then its group
        assert feast_store.feature_names(f"price_model_v3_{group}") == [*V2_FEATURES, *features]
    every_group = [name for features in V3_GROUPS.values() for name in features]
    assert feast_store.feature_names("price_model_v3") == [*V2_FEATURES, *every_group]
    refs = feast_store.feature_refs("price_model_v1")
    assert refs[0] == "price_features_v1:open" and len(refs) == 68
    source = feast_store.get_store().get_data_source("price_features_source")
    assert source.path == str(home / "features" / "*" / "*.parquet")
    view = feast_store.get_store().get_feature_view("price_features_v2")
    assert view.ttl == pd.Timedelta(minutes=75)
    with pytest.raises(ValueError, match="unknown feature service"):
        feast_store.feature_names("price_model_v9")


def test_features_command_rejects_bad_and_unknown_symbols(home):
    bad = run_cli("features", "--symbol", "bitcoin")
    assert bad.exit_code == 2 and "invalid symbol" in bad.output
    unknown = run_cli("features", "--symbol", "ETH-USD")
    assert unknown.exit_code == 2 and "no candles stored for ETH-USD" in unknown.output


def test_update_command_fetches_new_candles_and_publishes_them_online(home, fake_coinbase):
    market = synthetic_candles("BTC-USD", 60, seed=5)
    CandleStore(home / "candles").write(market.iloc[:50])
    fake_coinbase.set_candles("BTC-USD", market)
    result = run_cli("update", "--symbol", "BTC-USD")
    assert result.exit_code == 0, result.output
    assert (
        "fetch -> online in" in result.output and "no gaps in the fetched window" in result.output
    )
    latest = market["time"].max() + pd.Timedelta(hours=1)
    online = feast_store.online_features("BTC-USD", "price_model_v2")
    assert online.event_timestamp == latest
    assert online.age_seconds() < 3600
    assert stored(home)["event_timestamp"].max() == latest
    again = run_cli("update", "--symbol", "BTC-USD")
    assert again.exit_code == 0 and len(stored(home)) == 60


def test_update_reports_gaps_in_what_it_fetched(home, fake_coinbase):
    market = synthetic_candles("BTC-USD", 60, seed=5)
    CandleStore(home / "candles").write(market.iloc[:50])
    fake_coinbase.set_candles("BTC-USD", market.drop(index=[54, 55]))
    result = run_cli("update", "--symbol", "BTC-USD")
    assert result.exit_code == 0, result.output
    assert "1 gap, 2 missing hours" in result.output
    assert len(CandleStore(home / "candles").read("BTC-USD")) == 58  # never filled


def test_update_on_an_empty_store_seeds_the_served_symbols(home, fake_coinbase, monkeypatch):
    """A fresh volume (the Pi's first boot): the job fetches the last day and goes online."""
    monkeypatch.setenv("CANDLECAST_SERVE_SYMBOLS", "BTC-USD")
    reset_settings()
    market = synthetic_candles("BTC-USD", 100, seed=7)
    fake_coinbase.set_candles("BTC-USD", market)
    result = run_cli("update")
    assert result.exit_code == 0, result.output
    stored_candles = CandleStore(home / "candles").read("BTC-USD")
    assert stored_candles["time"].max() == market["time"].max()
    assert 24 < len(stored_candles) <= 26  # the lookback one full feature row needs, no more
    online = feast_store.online_features("BTC-USD", "price_model_v1")
    assert online.event_timestamp == market["time"].max() + pd.Timedelta(hours=1)


def test_update_refuses_a_symbol_holding_the_synthetic_market(home, fake_coinbase):
    """Live candles appended to a synthetic series would be a market that never existed."""
    from ingestion.sample import write_sample

    store = CandleStore(home / "candles")
    write_sample(store, "BTC-USD", hours=48, seed=1)
    before = store.read("BTC-USD")
    fake_coinbase.set_candles("BTC-USD", synthetic_candles("BTC-USD", 60, seed=5))
    result = run_cli("update", "--symbol", "BTC-USD")
    assert result.exit_code == 1
    assert "holds synthetic candles" in result.output
    pd.testing.assert_frame_equal(store.read("BTC-USD"), before)


FEAST_FLOW = [
    ["apply"],
    ["materialize", "2024-01-01T00:00:00", "2024-06-30T00:00:00"],
    ["materialize-incremental", "2024-07-02T00:00:00"],
]


def check_flow_result(home: Path) -> None:
    online = feast_store.online_features("BTC-USD", "price_model_v1")
    assert online.event_timestamp == pd.Timestamp("2024-07-01 00:00", tz="UTC")
    schema = pq.read_schema(next((home / "features").rglob("*.parquet")))
    assert str(schema.field("event_timestamp").type) == "timestamp[us, tz=UTC]"


def test_documented_feast_cli_flow_in_process(home, market: Market, monkeypatch):
    """The README flow with Feast's own CLI (click app, in-process to skip its 10 s import)."""
    from click.testing import CliRunner as ClickRunner
    from feast.cli.cli import cli as feast_cli

    monkeypatch.chdir(PROJECT_ROOT)  # feast apply chdirs into the repo; restored after
    assert run_cli("load-csv", str(market.csv), "--symbol", "BTC-USD").exit_code == 0
    assert run_cli("features").exit_code == 0
    get_settings().export_env()
    for args in FEAST_FLOW:
        done = ClickRunner().invoke(feast_cli, ["-c", "feature_repo", *args])
        assert done.exit_code == 0, done.output
        monkeypatch.chdir(PROJECT_ROOT)
    check_flow_result(home)


@pytest.mark.slow
def test_documented_feast_cli_flow_as_subprocesses(home, market: Market):
    """Same flow as separate processes, exactly as a user types it (about a minute)."""
    env = {**os.environ, "CANDLECAST_HOME": str(home)}

    def run(*cmd: str) -> None:
        done = subprocess.run(cmd, cwd=PROJECT_ROOT, env=env, capture_output=True, text=True)
        assert done.returncode == 0, done.stdout + done.stderr

    run(sys.executable, "-m", "ingestion", "load-csv", str(market.csv), "--symbol", "BTC-USD")
    run(sys.executable, "-m", "ingestion", "features")
    for args in FEAST_FLOW:
        run(str(Path(sys.executable).parent / "feast"), "-c", "feature_repo", *args)
    check_flow_result(home)
