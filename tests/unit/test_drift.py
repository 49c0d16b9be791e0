"""Drift statistics on hand-made feature frames, and the drift file.

The samples are drawn here with a seeded generator, so what "the same distribution"
and "three times the scale" mean is visible in the test. Reads go through a real
feature dataset (parquet files in a temporary home) and real DuckDB.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from candlecast import drift
from candlecast.contract import ModelSpec, naive_spec
from candlecast.errors import CorruptFileError
from candlecast.feature_catalog import FEATURE_COLUMNS, FEATURE_SCHEMA, PRICE_FEATURES
from candlecast.settings import get_settings

END = pd.Timestamp("2024-07-01", tz="UTC")
STATIONARY = ["log_return_1h", "log_return_4h", "volatility_24h", "rsi_14", "log_volume_rel_24h"]
LEVELS = ["close", "price_3_hour_ago", "pr_24hr_mavg", "volume", "volume_24hr_mavg", "hour_sin"]


def features(hours: int, seed: int, scale: float = 1.0, price: float = 40_000.0) -> pd.DataFrame:
    """Hourly rows ending at END: stationary features i.i.d., returns scaled by ``scale``."""
    rng = np.random.default_rng(seed)
    stamps = pd.date_range(end=END, periods=hours, freq="h", tz="UTC")
    return pd.DataFrame(
        {
            "event_timestamp": stamps,
            "log_return_1h": rng.normal(0, 0.005 * scale, hours),
            "log_return_4h": rng.normal(0, 0.01 * scale, hours),
            "volatility_24h": rng.gamma(4, 0.00125, hours),
            "rsi_14": rng.uniform(20, 80, hours),
            "log_volume_rel_24h": rng.normal(0, 0.4, hours),
            "close": price * np.exp(rng.normal(0, 0.01, hours)),
            "price_3_hour_ago": price * np.exp(rng.normal(0, 0.01, hours)),
            "pr_24hr_mavg": np.full(hours, price),
            "volume": rng.lognormal(6, 0.5, hours) * price / 40_000,
            "volume_24hr_mavg": np.full(hours, 400.0 * price / 40_000),
            "hour_sin": np.sin(2 * np.pi * stamps.hour / 24),
        }
    )


def write_dataset(frame: pd.DataFrame, symbol: str = "BTC-USD") -> None:
    """Write ``frame`` as the feature dataset lays it out: one file per UTC month."""
    full = frame.assign(symbol=symbol)
    for column in FEATURE_COLUMNS:
        if column not in full:
            full[column] = np.nan
    months = full["event_timestamp"].dt.strftime("%Y-%m")
    for month, part in full.groupby(months):
        path = get_settings().features_dir / symbol / f"{month}.parquet"
        path.parent.mkdir(parents=True, exist_ok=True)
        table = pa.Table.from_pandas(part[FEATURE_SCHEMA.names], preserve_index=False)
        pq.write_table(table.cast(FEATURE_SCHEMA), path)


# --- the statistics ------------------------------------------------------------------


def test_every_catalogue_feature_has_a_kind_and_price_levels_are_not_compared():
    assert set(FEATURE_COLUMNS) <= set(drift.KINDS)
    for name in (*PRICE_FEATURES, "open", "high", "low", "pr_24hr_mstd", "upper_shadow"):
        assert drift.skip_reason(name) == "price level: not stationary"
    assert drift.skip_reason("volume_7_hour_ago") == "raw volume: not stationary"
    assert drift.skip_reason("dow_cos") == "calendar: set by the clock"
    assert drift.skip_reason("ret_1h") == "not in the feature catalogue"
    for name in ("percentage_return_24_hour", "log_return_24h", "volatility_6h", "rsi"):
        assert drift.skip_reason(name) is None


def test_no_drift_when_recent_rows_come_from_the_same_distribution():
    reference, recent = features(2160, seed=1), features(168, seed=2)
    inputs, skipped = drift.compare_frames(reference, recent, STATIONARY)
    assert set(inputs) == set(STATIONARY) and skipped == {}
    for name, c in inputs.items():
        assert (c.n_reference, c.n_recent) == (2160, 168)
        assert c.psi < drift.MODERATE, name
        assert c.ks_pvalue > drift.KS_ALPHA, name


def test_sampling_noise_above_psi_01_is_not_a_verdict_without_a_significant_ks():
    """168 rows of the reference's own distribution: PSI 0.114 by chance, KS p 0.51."""
    inputs, _ = drift.compare_frames(features(2160, seed=1), features(168, seed=3), STATIONARY)
    assert inputs["log_volume_rel_24h"].psi > drift.MODERATE
    report = drift.DriftReport("BTC-USD", "lasso", "m:v1", END, drift.WINDOW, inputs=inputs)
    assert report.max_psi == ("log_volume_rel_24h", inputs["log_volume_rel_24h"].psi)
    assert report.verdict == ("none", None, None)
    assert report.ks_alpha == drift.KS_ALPHA / len(STATIONARY)


def test_major_drift_when_a_return_features_scale_triples():
    reference, recent = features(2160, seed=1), features(168, seed=2, scale=3.0)
    inputs, _ = drift.compare_frames(reference, recent, STATIONARY)
    for name in ("log_return_1h", "log_return_4h"):
        assert inputs[name].psi > drift.MAJOR
        assert inputs[name].ks_pvalue < 1e-6
    assert inputs["volatility_24h"].psi < drift.MODERATE  # not scaled
    report = drift.DriftReport("BTC-USD", "lasso", "m:v1", END, drift.WINDOW, inputs=inputs)
    assert report.verdict == ("major", "log_return_4h", inputs["log_return_4h"].psi)
    assert report.ks_rejected_share == 2 / len(STATIONARY)


def test_price_levels_raw_volume_and_the_calendar_are_never_compared():
    """The price doubled and volume followed: huge level shifts, none of them drift."""
    reference, recent = features(2160, seed=1), features(168, seed=2, price=80_000.0)
    inputs, skipped = drift.compare_frames(reference, recent, [*LEVELS, *STATIONARY])
    assert set(inputs) == set(STATIONARY)
    assert set(skipped) == set(LEVELS)
    assert all(c.psi < drift.MODERATE for c in inputs.values())


def test_too_few_rows_give_nulls_with_a_reason():
    reference = features(2160, seed=1)
    few_recent = drift.compare_frames(reference, features(23, seed=2), STATIONARY)[0]
    few_reference = drift.compare_frames(features(99, seed=3), features(168, seed=2), STATIONARY)[0]
    for found, reason in (
        (few_recent, "too few recent rows (23 < 24)"),
        (few_reference, "too few reference rows (99 < 100)"),
    ):
        for c in found.values():
            assert (c.psi, c.ks_statistic, c.ks_pvalue) == (None, None, None)
            assert c.reason == reason
    nan_only = drift.compare(np.full(500, np.nan), np.full(500, np.nan))
    assert nan_only.reason == "too few recent rows (0 < 24)"


def test_psi_is_the_formula_over_reference_deciles():
    reference = np.arange(1000, dtype=float)  # deciles: 100 rows each
    recent = np.concatenate([np.full(50, 50.0), np.full(50, 950.0)])  # half in the first, half last
    expected = 2 * (0.5 - 0.1) * np.log(0.5 / 0.1) + 8 * (1e-4 - 0.1) * np.log(1e-4 / 0.1)
    assert drift.psi(reference, recent) == pytest.approx(expected, rel=1e-9)
    assert drift.psi(reference, reference) == pytest.approx(0.0, abs=1e-12)
    # a discrete feature: tied quantiles merge into fewer bins, never an error
    assert drift.psi(np.repeat([0.0, 1.0], 500), np.repeat([0.0, 1.0], [20, 80])) > 0


VERDICTS = {None: None, 0.0: "none", 0.099: "none", 0.1: "moderate", 0.25: "moderate"}


@pytest.mark.parametrize(("value", "expected"), [*VERDICTS.items(), (0.2501, "major")])
def test_verdict_thresholds(value, expected):
    assert drift.verdict(value) == expected


# --- one model version on a feature dataset ------------------------------------------


def test_reference_window_is_the_training_window_cut_at_the_recent_window_and_capped():
    recent_start = END - drift.WINDOW
    spec = ModelSpec("lasso", "BTC-USD", "price_model_v2", ("log_return_1h",), version="m:v1")
    assert drift.reference_window(spec, recent_start) == "the model records no training window"
    old = replace(spec, train_start="2023-01-01", train_end="2024-06-01")
    assert drift.reference_window(old, recent_start) == (
        pd.Timestamp("2024-06-01", tz="UTC") - drift.REFERENCE_CAP,
        pd.Timestamp("2024-06-01", tz="UTC"),
    )
    fresh = replace(old, train_end=(END - pd.Timedelta(hours=1)).isoformat())
    assert drift.reference_window(fresh, recent_start)[1] == recent_start  # never overlaps
    inside = replace(old, train_start=(END - pd.Timedelta(days=2)).isoformat())
    assert drift.reference_window(inside, recent_start) == (
        "the training window lies inside the recent window"
    )


def test_read_features_reads_the_span_from_the_month_files(home):
    frame = features(24 * 40, seed=1)  # 2024-05-22 .. 2024-07-01: three month files
    write_dataset(frame)
    write_dataset(features(24 * 40, seed=2), symbol="ETH-USD")
    start, end = pd.Timestamp("2024-05-31T20:00", tz="UTC"), pd.Timestamp("2024-06-02", tz="UTC")
    got = drift.read_features("btc-usd", ["log_return_1h", "close"], start, end)
    assert list(got.columns) == ["event_timestamp", "log_return_1h", "close"]
    want = frame[(frame["event_timestamp"] >= start) & (frame["event_timestamp"] <= end)]
    assert got["event_timestamp"].tolist() == want["event_timestamp"].tolist()
    np.testing.assert_array_equal(got["log_return_1h"], want["log_return_1h"])
    assert drift.read_features("SOL-USD", ["close"], start, end).empty


def test_naive_compares_no_inputs_and_needs_live_errors(home):
    write_dataset(features(24 * 120, seed=1))
    report = drift.compute(naive_spec("BTC-USD", "price_model_v1"), now=END)
    assert report.inputs == {} and report.skipped == {"close": "price level: not stationary"}
    assert report.errors.n_reference == 24 * 90  # target hours in the 90 days before the window
    assert report.errors.reason == "too few recent rows (0 < 24)"  # nothing logged
    data = report.to_dict()
    assert (data["verdict"], data["max_psi"], data["ks_rejected_share"]) == (None, None, None)
    assert data["model_version"] == "naive" and data["window"] == "7d"


def test_a_model_without_a_training_window_says_so(home):
    spec = ModelSpec("lasso", "BTC-USD", "price_model_v2", (*STATIONARY, "close"), version="m:v1")
    report = drift.compute(spec, now=END)
    assert report.reason == "the model records no training window"
    assert report.skipped["close"] == "price level: not stationary"
    assert report.skipped["rsi_14"] == "no training window"
    assert report.to_dict()["verdict"] is None


# --- the report's JSON and the file --------------------------------------------------


def sample_report(psi_errors: float | None = 0.05) -> drift.DriftReport:
    c = drift.Comparison
    return drift.DriftReport(
        symbol="BTC-USD",
        model="lasso",
        model_version="candlecast-lasso-btc-usd:abc",
        computed_at=END,
        window=drift.WINDOW,
        reference_start=END - pd.Timedelta(days=97),
        reference_end=END - pd.Timedelta(days=7),
        inputs={
            "volatility_24h": c(2160, 168, 0.31, 0.4, 1e-9),
            "log_return_1h": c(2160, 168, 0.02, 0.05, 0.6),
            "rsi_14": c(2160, 10, reason="too few recent rows (10 < 24)"),
        },
        skipped={"close": "price level: not stationary"},
        errors=c(2100, 150, psi_errors, 0.1, 0.02),
    )


def test_report_json_summarises_the_worst_psi_and_the_ks_share():
    data = sample_report().to_dict()
    json.dumps(data, allow_nan=False)
    assert (data["verdict"], data["verdict_feature"], data["verdict_psi"]) == (
        "major",
        "volatility_24h",
        0.31,
    )
    assert data["verdict_ks_alpha"] == drift.KS_ALPHA / 3  # two inputs and the errors
    assert (data["max_psi"], data["max_psi_feature"]) == (0.31, "volatility_24h")
    assert data["ks_rejected_share"] == 0.5  # of the two inputs with a p-value
    assert drift.summary(data) == "PSI 0.31 major (volatility_24h)"
    assert data["inputs"]["volatility_24h"] == {
        "kind": "volatility",
        "n_reference": 2160,
        "n_recent": 168,
        "psi": 0.31,
        "ks_statistic": 0.4,
        "ks_pvalue": 1e-9,
        "reason": None,
    }
    assert data["recent_start"] == "2024-06-24T00:00:00+00:00"
    larger = sample_report(psi_errors=0.5).to_dict()  # errors' KS p 0.02: not significant
    assert larger["max_psi_feature"] == drift.ERRORS
    assert larger["verdict_feature"] == "volatility_24h"


def test_save_and_load_round_trip_by_version(home):
    assert drift.load() == {}
    path = drift.save([sample_report().to_dict()])
    assert path == home / "drift" / "latest.json"
    assert not list(path.parent.glob(".*.tmp"))
    loaded = drift.load()
    assert list(loaded) == [("BTC-USD", "lasso", "candlecast-lasso-btc-usd:abc")]
    assert loaded[("BTC-USD", "lasso", "candlecast-lasso-btc-usd:abc")]["max_psi"] == 0.31


@pytest.mark.parametrize("content", ["{not json", '{"reports": [{"model": "lasso"}]}', "[]"])
def test_a_corrupt_drift_file_names_itself_and_the_remedy(home, content):
    path: Path = home / "drift" / "latest.json"
    path.parent.mkdir(parents=True)
    path.write_text(content)
    with pytest.raises(CorruptFileError) as caught:
        drift.load()
    message = str(caught.value)
    assert str(path) in message and "delete it; the next cycle rewrites it" in message


def test_metric_samples_are_gauges_per_version():
    found = drift.metric_samples([sample_report().to_dict()])
    labels = {"symbol": "BTC-USD", "model": "lasso", "model_version": sample_report().model_version}
    assert all(sample[1] == labels for sample in found)
    samples = {name: value for name, _, value in found}
    assert samples == {
        "candlecast_drift_max_psi": 0.31,
        "candlecast_drift_ks_rejected_share": 0.5,
        "candlecast_drift_errors_ks_pvalue": 0.02,
        "candlecast_drift_level": 2.0,
    }
