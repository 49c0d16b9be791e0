"""The prediction log on real parquet and DuckDB: idempotent appends, scoring, live figures.

Candles come from the synthetic market through the real candle store; forecasts from
``tests.fakes.predictions``. Every expected figure is recomputed by hand from the
logged rows and the stored candles, not through the code under test.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from candlecast.errors import CorruptFileError
from candlecast.metrics import forecast_metrics, wilson_band
from candlecast.performance import UnknownWindowError, performance
from candlecast.prediction_log import (
    KEY,
    PREDICTION_SCHEMA,
    PredictionLog,
    PredictionRowError,
)
from candlecast.settings import PROJECT_ROOT, get_settings
from ingestion.sample import synthetic_candles
from ingestion.store import CandleStore
from tests.fakes.predictions import forecast_rows, version_of

H = pd.Timedelta(hours=1)
END = pd.Timestamp("2024-07-03", tz="UTC")  # candles 2024-06-01 .. 2024-07-02 23:00 (open)
HOURS = 768


@pytest.fixture
def candles(home: Path) -> pd.DataFrame:
    return synthetic_candles("BTC-USD", HOURS, seed=7, end=END)


@pytest.fixture
def predictions(home: Path) -> PredictionLog:
    return PredictionLog(get_settings().predictions_dir)


@pytest.fixture
def store(home: Path) -> CandleStore:
    return CandleStore(get_settings().candles_dir)


def files_state(root: Path) -> dict[str, tuple[bytes, int]]:
    return {
        str(p.relative_to(root)): (p.read_bytes(), p.stat().st_mtime_ns)
        for p in sorted(root.rglob("*.parquet"))
    }


def by_hand(rows: pd.DataFrame, candles: pd.DataFrame) -> pd.DataFrame:
    """Logged rows joined with the close of the candle that closes at their target hour."""
    closes = candles.assign(target_time=candles["time"] + H)[["target_time", "close"]]
    return rows.merge(closes, on="target_time", how="inner")


# --- storage -------------------------------------------------------------------------


def test_layout_schema_and_duckdb_glob(home, predictions, candles):
    predictions.append(forecast_rows(candles))
    assert sorted(p.relative_to(home).as_posix() for p in predictions.files()) == [
        "predictions/BTC-USD/2024-06.parquet",
        "predictions/BTC-USD/2024-07.parquet",
    ]
    for path in predictions.files():
        assert pq.read_schema(path).equals(PREDICTION_SCHEMA)
        months = pq.read_table(path).column("target_time").to_pandas().dt.strftime("%Y-%m")
        assert set(months) == {path.stem}
    glob = f"{home}/predictions/*/*.parquet"
    with duckdb.connect() as con:
        sql = "SELECT count(*), count(DISTINCT symbol) FROM read_parquet(?)"
        count, symbols = con.execute(sql, [glob]).fetchone()
    assert (count, symbols) == (2 * HOURS, 1)  # no hive `symbol` column from the folders
    frame = predictions.read()
    assert list(frame.columns) == PREDICTION_SCHEMA.names
    assert (frame["target_time"] == frame["as_of"] + H).all()
    assert frame[["actual_close", "abs_error", "persistence_abs_error"]].isna().all().all()
    assert not frame.duplicated(KEY).any()


def test_append_twice_changes_nothing(predictions, candles):
    rows = forecast_rows(candles)
    first = predictions.append(rows)
    assert (first.offered, first.new, first.existing) == (len(rows), len(rows), 0)
    logged, state = predictions.read(), files_state(predictions.root)
    again = predictions.append(rows)
    assert (again.new, again.existing) == (0, len(rows))
    pd.testing.assert_frame_equal(predictions.read(), logged)
    assert files_state(predictions.root) == state  # not even rewritten


def test_the_first_forecast_issued_for_an_hour_is_the_one_on_record(predictions, candles):
    rows = forecast_rows(candles.iloc[:48])
    predictions.append(rows)
    later = rows.assign(
        predicted_price=rows["predicted_price"] * 1.01, issued_at=rows["issued_at"] + 30 * H
    )
    result = predictions.append(pd.concat([later, forecast_rows(candles.iloc[48:50])]))
    assert (result.new, result.existing) == (4, len(rows))
    logged = predictions.read()
    pd.testing.assert_series_equal(
        logged["predicted_price"].iloc[: len(rows)].reset_index(drop=True),
        rows.sort_values(["as_of", "model"])["predicted_price"].reset_index(drop=True),
        check_names=False,
    )
    # within one batch, the earliest issued_at of a key wins, whatever the order
    batch = forecast_rows(candles.iloc[60:61])
    retry = batch.assign(predicted_price=1.0, issued_at=batch["issued_at"] - H)
    predictions.append(pd.concat([batch, retry]))
    stored = predictions.read(since=batch["as_of"].iloc[0] + H)
    assert (stored.loc[stored["as_of"] == batch["as_of"].iloc[0], "predicted_price"] == 1.0).all()


def test_rows_are_checked_before_anything_is_written(predictions, candles):
    rows = forecast_rows(candles.iloc[:3])
    bad = [
        (rows.assign(model="arima"), "unknown model"),
        (rows.assign(target_time=rows["as_of"] + 2 * H), "target_time must be as_of + 1 h"),
        (rows.assign(as_of=rows["as_of"] + pd.Timedelta(minutes=1)), "on the hour"),
        (rows.assign(predicted_price=np.nan), "predicted_price is empty"),
        (rows.assign(current_price=-1.0), "current_price must be a finite price"),
        (rows.drop(columns=["is_default"]), "missing columns ['is_default']"),
        (rows.assign(colour="red"), "unknown columns ['colour']"),
    ]
    for frame, message in bad:
        with pytest.raises(PredictionRowError, match=re.escape(message)):
            predictions.append(frame)
    assert predictions.files() == []
    # dicts work too, and model_trained_until may be left out
    record = rows.drop(columns=["model_trained_until"]).iloc[0].to_dict()
    assert predictions.append([record]).new == 1


def test_a_corrupt_month_stops_reads_and_writes_naming_it(predictions, candles):
    predictions.append(forecast_rows(candles.iloc[:-48]))
    _, july = predictions.files()
    july.write_bytes(july.read_bytes()[:100])
    state = files_state(predictions.root)
    with pytest.raises(CorruptFileError) as read_error:
        predictions.read()
    assert read_error.value.path == july
    assert "is corrupt or unreadable" in str(read_error.value)
    assert "its forecasts cannot be re-issued" in str(read_error.value)
    with pytest.raises(CorruptFileError) as write_error:  # touches both months
        predictions.append(forecast_rows(candles, seed=1))
    assert write_error.value.path == july
    assert files_state(predictions.root) == state  # june untouched too
    with pytest.raises(CorruptFileError):
        predictions.score(CandleStore(get_settings().candles_dir))
    assert files_state(predictions.root) == state


def test_a_corrupt_file_of_one_symbol_stops_scoring_every_symbol(predictions, store, candles):
    eth = synthetic_candles("ETH-USD", 48, seed=3, end=END)
    store.write(pd.concat([candles, eth]))
    predictions.append(pd.concat([forecast_rows(candles), forecast_rows(eth)]))
    [bad] = predictions.files("ETH-USD")
    bad.write_bytes(b"not a parquet file")
    state = files_state(predictions.root)
    with pytest.raises(CorruptFileError) as error:
        predictions.score(store)
    assert error.value.path == bad
    assert files_state(predictions.root) == state  # BTC-USD, read fine, is not scored either


# --- scoring -------------------------------------------------------------------------


def test_score_fills_closed_hours_and_leaves_gap_hours_null(predictions, store, candles):
    gaps = candles.index[[100, 101, 500]]
    store.write(candles.drop(index=gaps).iloc[:-24])  # the last day is not stored yet
    rows = forecast_rows(candles.drop(index=gaps))
    predictions.append(rows)

    result = predictions.score(store)
    logged = predictions.read()
    # forecast from the candle before each gap (none from a gap candle: it has no close)
    gap_targets = set(candles.loc[gaps, "time"] + H) & set(rows["as_of"] + H)
    assert len(gap_targets) == 2
    last_close = candles["time"].iloc[-25] + H
    assert sorted(t for _, t in result.missing) == sorted(gap_targets)
    scored = logged[logged["actual_close"].notna()]
    expected = by_hand(logged.drop(columns="actual_close"), store.read("BTC-USD"))
    assert len(scored) == len(expected) == result.scored
    merged = scored.merge(expected[[*KEY, "close"]], on=KEY)
    np.testing.assert_array_equal(merged["actual_close"], merged["close"])
    np.testing.assert_allclose(
        merged["abs_error"], (merged["predicted_price"] - merged["close"]).abs()
    )
    np.testing.assert_allclose(
        merged["persistence_abs_error"], (merged["current_price"] - merged["close"]).abs()
    )
    unscored = logged[logged["actual_close"].isna()]
    assert set(unscored["target_time"]) - gap_targets == set(
        unscored.loc[unscored["target_time"] > last_close, "target_time"]
    )
    assert result.waiting == int((unscored["target_time"] > last_close).sum())
    assert logged.loc[logged["target_time"].isin(gap_targets), "abs_error"].isna().all()

    state = files_state(predictions.root)
    rerun = predictions.score(store)
    assert rerun.scored == 0 and rerun.missing == result.missing
    assert files_state(predictions.root) == state  # idempotent: nothing rewritten

    store.write(candles)  # the last day (and the gap hours: a late backfill) arrives
    final = predictions.score(store)
    assert final.missing == [] and final.waiting == 2  # lasso and naive for the next hour
    assert final.scored == len(unscored) - 2


def test_score_never_touches_a_scored_row(predictions, store, candles):
    store.write(candles)
    predictions.append(forecast_rows(candles))
    predictions.score(store)
    before = predictions.read()
    before = before[before["actual_close"].notna()].reset_index(drop=True)
    store.write(synthetic_candles("BTC-USD", 30, seed=9, end=END + 30 * H))
    predictions.append(forecast_rows(store.read("BTC-USD").iloc[-30:]))
    assert predictions.score(store).scored == 2 + 29 * 2  # last hour's, then all but the newest
    after = predictions.read()
    pd.testing.assert_frame_equal(after.iloc[: len(before)], before)


def test_read_filters_by_symbol_and_since(predictions, candles):
    eth = synthetic_candles("ETH-USD", 100, seed=3, end=END)
    predictions.append(pd.concat([forecast_rows(candles), forecast_rows(eth)]))
    assert predictions.symbols() == ["BTC-USD", "ETH-USD"]
    assert set(predictions.read("eth-usd")["symbol"]) == {"ETH-USD"}
    since = pd.Timestamp("2024-07-02T12:00", tz="UTC")
    recent = predictions.read("BTC-USD", since=since)
    assert recent["target_time"].min() == since
    assert len(recent) == 2 * (int((END + H - since) / H) + 1)  # both ends inclusive
    assert predictions.read("SOL-USD").empty


# --- a killed writer -----------------------------------------------------------------

CHILD = """
import sys
import numpy as np, pandas as pd
from candlecast.prediction_log import PredictionLog
from ingestion.sample import synthetic_candles
from tests.fakes.predictions import forecast_rows
candles = synthetic_candles("BTC-USD", 3000, seed=0, end=pd.Timestamp("2024-07-01", tz="UTC"))
rows = forecast_rows(candles, models=("lasso", "lgbm", "cnn", "lstm", "naive"))
hours = rows["as_of"].rank(method="dense").astype(int) - 1
log = PredictionLog(sys.argv[1])
for i in range(0, 3000, 40):
    log.append(rows[(hours >= max(0, i - 40)) & (hours < i + 40)])  # re-offers the last batch
    print(i + 40, flush=True)
"""


@pytest.mark.integration
def test_a_kill_9_mid_append_neither_duplicates_nor_loses_a_row(predictions):
    candles = synthetic_candles("BTC-USD", 3000, seed=0, end=pd.Timestamp("2024-07-01", tz="UTC"))
    rows = forecast_rows(candles, models=("lasso", "lgbm", "cnn", "lstm", "naive"))
    proc = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(predictions.root)],
        cwd=PROJECT_ROOT,
        env={**os.environ, "PYTHONPATH": str(PROJECT_ROOT)},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    done = 0
    while done < 600:  # a fifth of the hours logged
        line = proc.stdout.readline()
        assert line, proc.communicate()
        done = int(line)
    folder, deadline = predictions.root / "BTC-USD", time.monotonic() + 60
    while not any(entry.name.endswith(".tmp") for entry in os.scandir(folder)):
        assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
    # kill as a temp file is being written: the kill lands mid-write (or just after)
    proc.send_signal(signal.SIGKILL)
    proc.communicate()
    assert proc.returncode == -signal.SIGKILL

    for path in predictions.files():  # every file whole and readable
        pq.read_table(path).cast(PREDICTION_SCHEMA)
    logged = predictions.read()
    assert not logged.duplicated(KEY).any()
    confirmed = rows[rows["as_of"] < candles["time"].iloc[done] + H]
    assert len(logged) >= len(confirmed)  # every confirmed append survived
    assert len(logged) < len(rows)
    expected = rows.set_index(["model", "as_of"])["predicted_price"]
    got = logged.set_index(["model", "as_of"])["predicted_price"]
    pd.testing.assert_series_equal(got, expected.loc[got.index])  # no torn or foreign rows

    result = predictions.append(rows)  # the restart offers everything again
    assert result.existing == len(logged) and result.new == len(rows) - len(logged)
    final = predictions.read()
    assert len(final) == len(rows) and not final.duplicated(KEY).any()
    assert not list(predictions.root.rglob("*.tmp"))  # orphans of the killed writer removed


# --- live performance ----------------------------------------------------------------

NOW = END + 30 * H  # 2024-07-04 06:00: the log's last target hour is 2024-07-03 01:00


@pytest.fixture
def scored(predictions, store, candles) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Lasso v1 (then v2 for the last 3 days) and naive on every hour; lgbm on one week.

    Three hours have no candle; the last forecast of each model is not scored yet.
    """
    gaps = candles.index[[700, 701, 740]]
    store.write(candles.drop(index=gaps))
    rows = forecast_rows(candles)
    v2 = rows["as_of"] > END - 72 * H
    rows.loc[v2 & (rows["model"] == "lasso"), "model_version"] = version_of("lasso", "BTC-USD", 2)
    week = candles[(candles["time"] >= END - 14 * 24 * H) & (candles["time"] < END - 7 * 24 * H)]
    predictions.append(pd.concat([rows, forecast_rows(week, ("lgbm",), seed=5)]))
    predictions.score(store)
    return predictions.read(), store.read("BTC-USD")


def figures(frame: pd.DataFrame, **group) -> dict:
    [row] = [r for r in frame if all(r[k] == v for k, v in group.items())]
    return row


def test_mae_matches_a_recomputation_from_the_log_and_the_candles(scored):
    logged, stored = scored
    rows = performance(logged, "all", NOW)
    assert [(r["model"], r["model_version"]) for r in rows] == [
        ("lasso", version_of("lasso", "BTC-USD", 1)),
        ("lasso", version_of("lasso", "BTC-USD", 2)),
        ("lgbm", version_of("lgbm", "BTC-USD", 1)),
        ("naive", "naive"),
    ]
    for r in rows:
        mine = logged[
            (logged["model"] == r["model"]) & (logged["model_version"] == r["model_version"])
        ]
        hand = by_hand(mine.drop(columns="actual_close"), stored)
        assert r["n"] == len(hand) and r["unscored"] == len(mine) - len(hand)
        mae = (hand["predicted_price"] - hand["close"]).abs().mean()
        naive_mae = (hand["current_price"] - hand["close"]).abs().mean()
        assert r["mae"] == pytest.approx(mae, rel=1e-12)
        assert r["persistence_mae"] == pytest.approx(naive_mae, rel=1e-12)
        assert r["mae_ratio_vs_persistence"] == pytest.approx(mae / naive_mae, rel=1e-12)
        ups = np.sign(hand["close"] - hand["current_price"])
        calls = np.sign(hand["predicted_price"] - hand["current_price"])
        hits = np.where(calls == 0, 0.5, (calls == ups).astype(float)).sum()
        assert r["directional_accuracy"] == pytest.approx(hits / len(hand))
        assert r["directional_accuracy_ci95"] == pytest.approx(
            list(wilson_band(round(hits), len(hand)))
        )
        worst = hand.loc[(hand["predicted_price"] - hand["close"]).abs().idxmax()]
        assert r["worst_target_time"] == worst["target_time"].isoformat()
        assert r["worst_abs_error"] == pytest.approx(abs(worst["predicted_price"] - worst["close"]))
    assert figures(rows, model="naive")["mae_ratio_vs_persistence"] == 1.0
    assert figures(rows, model="naive")["directional_accuracy"] == 0.5


def test_persistence_mae_is_on_each_models_own_hours(scored):
    logged, _ = scored
    rows = performance(logged, "all", NOW)
    lgbm, naive = figures(rows, model="lgbm"), figures(rows, model="naive")
    week = logged[(logged["model"] == "lgbm") & logged["actual_close"].notna()]
    assert lgbm["n"] == len(week) < naive["n"]
    assert lgbm["persistence_mae"] == pytest.approx(week["persistence_abs_error"].mean())
    assert lgbm["persistence_mae"] != pytest.approx(naive["persistence_mae"])
    same = forecast_metrics(week["actual_close"], week["current_price"], week["current_price"])
    assert lgbm["persistence_mae"] == pytest.approx(same["mae"])


def test_windows_count_target_hours_up_to_now(scored):
    logged, _ = scored
    last_scored = END  # target of the forecast from the last stored candle but one
    now = last_scored + pd.Timedelta(minutes=30)
    day = {r["model_version"]: r for r in performance(logged, "24h", now)}
    v2 = day[version_of("lasso", "BTC-USD", 2)]
    # (now - 24 h, now]: 24 target hours; the gap at END - 27 h is before, END + 1 h after
    assert v2["n"] == 24 and v2["first_target_time"] == (END - 23 * H).isoformat()
    assert version_of("lgbm", "BTC-USD", 1) not in day and len(day) == 2  # v1 is older
    week = {r["model_version"]: r for r in performance(logged, "7d", now)}
    # v2 forecasts target END - 70 h .. END + 1 h: 71 up to now, 3 of them gap hours
    assert week[version_of("lasso", "BTC-USD", 2)]["n"] == 71 - 3
    assert week[version_of("lasso", "BTC-USD", 2)]["unscored"] == 3
    assert version_of("lgbm", "BTC-USD", 1) in week  # its last hour is exactly 7 d ago
    assert figures(performance(logged, "7d", now), model="lgbm")["n"] == 1
    month = figures(performance(logged, "30d", now), model="naive")
    assert month["n"] == 30 * 24 - 3 and month["unscored"] == 3
    everything = figures(performance(logged, "all", now), model="naive")
    assert everything["n"] == HOURS - 1 - 3  # the last target hour is after `now`
    assert performance(logged, "24h", END - 400 * 24 * H) == []
    with pytest.raises(UnknownWindowError, match="unknown window '5d': expected one of 24h"):
        performance(logged, "5d", now)


def test_a_model_with_no_scored_hour_reports_n_zero(predictions, candles):
    predictions.append(forecast_rows(candles.iloc[:5]))
    [row, _] = performance(predictions.read(), "all", END)
    assert row["n"] == 0 and row["unscored"] == 5 and row["mae"] is None
    assert row["directional_accuracy_ci95"] is None and row["worst_target_time"] is None


def test_files_written_before_the_interval_columns_read_as_null_and_merge(
    predictions: PredictionLog, candles: pd.DataFrame, store: CandleStore
):
    """A log from before forecasts carried intervals keeps working, untouched until written."""
    from candlecast.prediction_log import INTERVAL_COLUMNS

    old = forecast_rows(candles.iloc[:3])
    predictions.append(old)
    path = predictions.files()[0]
    table = pq.read_table(path)
    pq.write_table(table.drop_columns(INTERVAL_COLUMNS), path)  # as an older release wrote it
    frame = predictions.read()
    assert len(frame) == 6 and frame[INTERVAL_COLUMNS].isna().all().all()
    newer = forecast_rows(candles.iloc[3:4]).assign(lower_80=1.0, upper_80=2.0, p_up=0.5)
    assert predictions.append(newer).new == 2
    frame = predictions.read()
    assert frame["p_up"].notna().sum() == 2 and len(frame) == 8
    store.write(candles)
    assert predictions.score(store).scored == 8
