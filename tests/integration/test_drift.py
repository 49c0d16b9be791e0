"""Drift end to end: candles -> feature dataset -> a stored champion -> a scored log -> update.

A synthetic GARCH market whose hourly returns are tripled over its last eight days
(prices ``p0 * (p / p0) ** 3``), a lasso champion fit on the calm part (its training
window ends nine days before ``END``), and forecasts logged and scored as the live loop
does. Real DuckDB, real parquet, the real BentoML store; expected samples are selected
by hand from the feature dataset, not through the code under test.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
from scipy.stats import ks_2samp
from typer.testing import CliRunner

from candlecast import artifacts, cli, drift, model_store
from candlecast.cli import build_app
from candlecast.contract import CHAMPION, ModelSpec
from candlecast.errors import CorruptFileError
from candlecast.performance import report
from candlecast.prediction_log import PredictionLog
from candlecast.settings import get_settings
from tests.fakes.homes import candlecast_home

pytestmark = pytest.mark.integration
SYMBOL = "DRIFT-USD"  # a symbol no other test stores a model for
END = pd.Timestamp("2024-07-01", tz="UTC")
H = pd.Timedelta(hours=1)
WILD_FROM = END - pd.Timedelta(days=8)  # close times after this: returns x 3
TRAIN_START, TRAIN_END = END - pd.Timedelta(days=73), END - pd.Timedelta(days=9)
STATIONARY = ("log_return_1h", "log_return_4h", "volatility_24h", "rsi_14", "log_volume_rel_24h")
FEATURES = (*STATIONARY, "close", "hour_sin")


@dataclass(frozen=True)
class Built:
    root: Path
    tag: str
    features: pd.DataFrame  # the whole feature dataset of SYMBOL
    before: list[dict]  # performance.report() before any drift was computed
    reports: dict[str, drift.DriftReport]  # update()'s, by model


def wild_candles() -> pd.DataFrame:
    from ingestion.sample import synthetic_candles
    from ingestion.validate import validate_candles

    candles = synthetic_candles(SYMBOL, 75 * 24, seed=5, end=END)
    wild = (candles["time"] + H) > WILD_FROM
    anchor = candles.loc[~wild, "close"].iloc[-1]
    for column in ("open", "high", "low", "close"):
        candles.loc[wild, column] = (anchor * (candles.loc[wild, column] / anchor) ** 3).round(2)
    return validate_candles(candles)


def register_champion(features: pd.DataFrame) -> str:
    """A lasso fit on the training window to the next hour's log return."""
    from sklearn.linear_model import Lasso
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from training.models import Fitted
    from training.registry import Decision, register

    rows = labelled(features)
    rows = rows[rows["event_timestamp"].between(TRAIN_START, TRAIN_END)]
    y = np.log(rows["next_close"] / rows["close"])
    pipeline = make_pipeline(StandardScaler(), Lasso(alpha=1e-5))
    pipeline.fit(rows[list(FEATURES)].to_numpy(), y.to_numpy())
    model_spec = ModelSpec(
        family="lasso",
        symbol=SYMBOL,
        feature_service="price_model_v2",
        features=FEATURES,
        train_start=TRAIN_START.isoformat(),
        train_end=TRAIN_END.isoformat(),
        cut=(TRAIN_END + H).isoformat(),
    )
    return register(Fitted("lasso", pipeline), model_spec, Decision(CHAMPION, "drift test"))


def labelled(features: pd.DataFrame) -> pd.DataFrame:
    """Feature rows with the close one hour later, all features present."""
    nxt = features[["event_timestamp", "close"]].rename(columns={"close": "next_close"})
    rows = features.merge(nxt.assign(event_timestamp=nxt["event_timestamp"] - H))
    return rows.dropna(subset=[*FEATURES, "next_close"]).reset_index(drop=True)


def log_forecasts(candles: pd.DataFrame, tag: str) -> None:
    from ingestion.store import CandleStore
    from tests.fakes.predictions import forecast_rows

    rows = forecast_rows(candles[candles["time"] >= END - pd.Timedelta(days=20)])
    rows.loc[rows["model"] == "lasso", "model_version"] = tag
    predictions = PredictionLog(get_settings().predictions_dir)
    predictions.append(rows)
    predictions.score(CandleStore(get_settings().candles_dir))


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Built]:
    from ingestion.feature_dataset import FeatureDataset
    from ingestion.feature_jobs import compute_job
    from ingestion.store import CandleStore

    root = tmp_path_factory.mktemp("drift-home")
    with candlecast_home(root):
        candles = wild_candles()
        CandleStore(get_settings().candles_dir).write(candles)
        compute_job([SYMBOL])
        features = FeatureDataset(get_settings().features_dir).read(SYMBOL)
        tag = register_champion(features)
        log_forecasts(candles, tag)
        before = report(SYMBOL, "all", now=END)
        reports = {r.model: r for r in drift.update([SYMBOL], now=END)}
        yield Built(root, tag, features, before, reports)


def in_window(features: pd.DataFrame, start, end, closed="both") -> pd.DataFrame:
    return features[features["event_timestamp"].between(start, end, inclusive=closed)]


def test_update_reports_every_champion_and_persistence(built):
    assert set(built.reports) == {"lasso", "naive"}
    lasso = built.reports["lasso"]
    assert (lasso.symbol, lasso.model_version) == (SYMBOL, built.tag)
    assert (lasso.reference_start, lasso.reference_end) == (TRAIN_START, TRAIN_END)
    assert lasso.reason is None


def test_tripled_returns_are_major_input_drift_and_price_levels_are_skipped(built):
    lasso = built.reports["lasso"]
    assert set(lasso.inputs) == set(STATIONARY)
    assert lasso.skipped == {
        "close": "price level: not stationary",
        "hour_sin": "calendar: set by the clock",
    }
    reference = in_window(built.features, TRAIN_START, TRAIN_END)
    recent = in_window(built.features, END - drift.WINDOW, END, closed="right")
    for name in ("log_return_1h", "volatility_24h"):
        c = lasso.inputs[name]
        want = ks_2samp(reference[name].dropna(), recent[name].dropna())
        assert (c.n_reference, c.n_recent) == (reference[name].notna().sum(), 168)
        assert c.ks_statistic == pytest.approx(want.statistic)
        assert c.psi > drift.MAJOR and c.ks_pvalue < 1e-6
    data = lasso.to_dict()
    assert data["verdict"] == "major"
    assert data["verdict_feature"] in STATIONARY
    assert data["ks_rejected_share"] >= 0.4


def test_live_errors_are_compared_with_the_models_errors_on_its_training_window(built):
    errors = built.reports["lasso"].errors
    assert errors.n_recent == 168  # every target hour of the window, scored
    assert errors.psi is not None and errors.ks_pvalue < drift.KS_ALPHA
    # the cached reference: the stored model's forecast against the next close, by hand
    cached = pq.read_table(drift.reference_path(built.tag)).to_pandas()
    rows = labelled(built.features)
    rows = rows[rows["event_timestamp"].between(TRAIN_START, TRAIN_END)].reset_index(drop=True)
    pipeline = artifacts.load("lasso", model_store.get(built.tag).path)  # scaling: identity
    predicted = rows["close"] * np.exp(pipeline.predict(rows[list(FEATURES)].to_numpy()))
    by_hand = (predicted - rows["next_close"]).abs() / rows["close"]
    assert cached["event_timestamp"].tolist() == rows["event_timestamp"].tolist()
    np.testing.assert_allclose(cached["relative_error"], by_hand, rtol=1e-12)
    assert errors.n_reference == len(rows) - 1  # its last target hour is after TRAIN_END


def test_the_cached_reference_is_reused_without_loading_the_model(built, monkeypatch):
    def no_load(tag):
        raise AssertionError(f"{tag} loaded again")

    monkeypatch.setattr(model_store, "get", no_load)
    with candlecast_home(built.root):
        spec = model_store.champion("lasso", SYMBOL).spec
        again = drift.compute(spec, now=END)
    assert again.to_dict() == built.reports["lasso"].to_dict()


def test_persistence_compares_its_errors_with_the_history_before_the_window(built):
    naive = built.reports["naive"]
    assert naive.model_version == "naive"
    assert naive.inputs == {} and naive.skipped == {"close": "price level: not stationary"}
    recent_start = END - drift.WINDOW
    history = in_window(built.features, recent_start - drift.REFERENCE_CAP, recent_start)
    assert naive.errors.n_reference == len(history) - 1  # each with its next hour
    assert naive.errors.n_recent == 168
    assert naive.to_dict()["verdict"] == "major"  # returns tripled, so did its errors


def test_report_carries_the_latest_drift_beside_the_figures(built):
    assert built.before and all(row["drift"] is None for row in built.before)
    with candlecast_home(built.root):
        loaded = drift.load()
        rows = report(SYMBOL, "all", now=END)
    assert set(loaded) == {(SYMBOL, "lasso", built.tag), (SYMBOL, "naive", "naive")}
    for row in rows:
        assert row["drift"] == loaded[(row["symbol"], row["model"], row["model_version"])]
    unchanged = [{k: v for k, v in row.items() if k != "drift"} for row in rows]
    assert unchanged == [{k: v for k, v in row.items() if k != "drift"} for row in built.before]


def test_cli_shows_drift_as_a_column_and_in_json(built, monkeypatch):
    app = build_app()
    monkeypatch.setattr(cli.out, "width", 250)  # piped output is 140 wide: cells would wrap
    with candlecast_home(built.root):
        table = CliRunner().invoke(app, ["performance", "--window", "all"])
        as_json = CliRunner().invoke(app, ["performance", "--window", "all", "--json"])
    assert table.exit_code == 0, table.output
    lasso = built.reports["lasso"].to_dict()
    cell = f"PSI {lasso['verdict_psi']:.2f} major ({lasso['verdict_feature']})"
    lasso_row = next(line for line in table.output.splitlines() if "lasso *" in line)
    assert f"│ {cell} │" in lasso_row
    assert "it never swaps a model" in table.output
    rows = json.loads(as_json.stdout)
    assert {r["model"]: r["drift"]["verdict"] for r in rows} == {"lasso": "major", "naive": "major"}


def test_update_keeps_other_symbols_and_rewrites_a_corrupt_file(home):
    path = home / "drift" / "latest.json"
    path.parent.mkdir(parents=True)
    path.write_text("{torn")
    with pytest.raises(CorruptFileError, match="delete it; the next cycle rewrites it"):
        drift.load()
    (sol,) = drift.update(["sol-usd"], now=END)  # no champion, no features: persistence only
    assert (sol.model, sol.errors.reason) == ("naive", "too few recent rows (0 < 24)")
    drift.update(["ETH-USD"], now=END)
    assert {key[0] for key in drift.load()} == {"SOL-USD", "ETH-USD"}


def test_a_corrupt_drift_file_is_one_error_line_in_performance(home):
    from ingestion.sample import synthetic_candles
    from tests.fakes.predictions import forecast_rows

    PredictionLog(get_settings().predictions_dir).append(
        forecast_rows(synthetic_candles(SYMBOL, 48, seed=0, end=END))
    )
    path = home / "drift" / "latest.json"
    path.parent.mkdir(parents=True)
    path.write_text('{"reports": 3}')
    result = CliRunner().invoke(build_app(), ["performance", "--window", "all"])
    assert result.exit_code == 1, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), result.output
    assert str(path) in lines[0] and "delete it; the next cycle rewrites it" in lines[0]
