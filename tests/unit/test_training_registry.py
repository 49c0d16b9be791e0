"""Registry: metadata per the contract, promotion rules, Keras size, export/import.

The BentoML store is the session's (tests/conftest.py); each test uses its own
symbol so model names never collide with other tests.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from candlecast import artifacts, model_store
from tests.fakes.training_data import synthetic_frame
from training import registry
from training.dataset import LabelledFrame
from training.models import FitConfig, fit_model
from training.train import train_family

UTC = "UTC"
PERIOD = {"period_start": "2024-02-01T00:00:00+00:00", "period_end": "2024-02-08T00:00:00+00:00"}


def _frame(symbol: str, target: str = "return") -> LabelledFrame:
    data = synthetic_frame(1000, target=target)
    return LabelledFrame(data.frame, data.features, target, symbol, "price_model_v1")


def _stages(family: str, symbol: str) -> list[str]:
    return [m.stage for m in model_store.versions(family, symbol)]


def test_decide_rules() -> None:
    calibrated = {**PERIOD, "coverage_80": 0.82}
    first = registry.decide({"mae": 10.0, **calibrated}, None)
    assert first.stage == registry.CHAMPION
    worse = registry.decide({"mae": 10.5, **calibrated}, {"mae": 10.0, **PERIOD}, "m:v1")
    assert worse.stage == registry.CANDIDATE
    assert "worse than champion m:v1" in worse.reason and "10.50" in worse.reason
    tie = registry.decide({"mae": 10.0, **calibrated}, {"mae": 10.0, **PERIOD}, "m:v1")
    assert tie.stage == registry.CHAMPION


@pytest.mark.parametrize(("coverage", "stage"), [(0.749, "candidate"), (0.851, "candidate"),
                                                  (0.75, "champion"), (0.85, "champion"),
                                                  (None, "candidate")])  # fmt: skip
def test_a_better_version_with_miscalibrated_intervals_stays_a_candidate(coverage, stage):
    new = {"mae": 9.0, **PERIOD, "coverage_80": coverage}
    decision = registry.decide(new, {"mae": 10.0, **PERIOD}, "m:v1")
    assert decision.stage == stage
    if stage == "candidate":
        assert "80 % coverage" in decision.reason


def test_a_first_version_is_champion_whatever_its_coverage_and_says_so():
    decision = registry.decide({"mae": 9.0, **PERIOD, "coverage_80": 0.6}, None)
    assert decision.stage == "champion" and "60.0% is outside" in decision.reason
    other = {"mae": 1.0, "period_start": "x", "period_end": "y"}
    with pytest.raises(ValueError, match="same period"):
        registry.decide(other, {"mae": 10.0, **PERIOD})


def test_train_registers_contract_metadata_and_promotes() -> None:
    symbol = "TSTA-USD"
    data = _frame(symbol)
    cut = pd.Timestamp("2024-02-08", tz=UTC)
    start = pd.Timestamp("2024-02-01", tz=UTC)
    first = train_family(data, "lasso", cut, start, FitConfig())
    assert first.tag.startswith("candlecast-lasso-tsta-usd:")
    assert first.decision.stage == registry.CHAMPION
    model = registry.bentoml_module().models.get(first.tag)
    assert model.info.labels == {"stage": "champion", "family": "lasso", "symbol": "tsta-usd"}
    meta = model.info.metadata
    assert meta["family"] == "lasso" and meta["symbol"] == symbol
    assert meta["feature_service"] == "price_model_v1"
    assert meta["features"] == data.features
    assert meta["target"] == "return" and meta["input_shape"] == "flat"
    assert "input_mean" not in meta  # null -> omitted (BentoML metadata rejects None)
    assert meta["train_end"] == (cut - pd.Timedelta(hours=1)).isoformat()  # label known at cut
    assert len(meta["data_fingerprint"]) == 64
    intervals = {
        "coverage_80", "coverage_95", "interval_width_80", "interval_width_95",
        "interval_score_80", "interval_score_95", "brier_up", "interval_n",
    }  # fmt: skip
    for key in ("metrics", "persistence"):
        assert set(meta[key]) == {
            "mae", "rmse", "mape", "directional_accuracy", "mae_ratio_vs_persistence", "n",
            "period_start", "period_end", *intervals, *(["dm_pvalue"] if key == "metrics" else []),
        }  # fmt: skip
        assert meta[key]["period_start"] == start.isoformat()
        assert meta[key]["n"] == 24 * 7
    assert meta["beats_persistence"] == (meta["metrics"]["mae_ratio_vs_persistence"] < 1)
    assert model.path_of("model.joblib")

    # same recipe, same data, same period: equal MAE is "not worse" -> new champion
    second = train_family(data, "lasso", cut, start, FitConfig())
    assert second.decision.stage == registry.CHAMPION
    assert _stages("lasso", symbol) == ["candidate", "champion"]

    # a worse recipe (next close from the close 24 h ago only) stays a candidate
    stale = LabelledFrame(data.frame, data.features[-1:], "price", symbol, "price_model_v1")
    worse = train_family(stale, "lasso", cut, start, FitConfig())
    assert worse.summary["metrics"]["mae"] > second.summary["metrics"]["mae"]
    assert worse.decision.stage == registry.CANDIDATE
    assert "worse than champion" in worse.decision.reason
    assert _stages("lasso", symbol) == ["candidate", "champion", "candidate"]
    assert model_store.champion("lasso", symbol).tag == second.tag


def test_different_period_is_compared_on_the_champions_period() -> None:
    symbol = "TSTB-USD"
    data = _frame(symbol)
    cut = pd.Timestamp("2024-02-08", tz=UTC)
    train_family(data, "lasso", cut, pd.Timestamp("2024-02-01", tz=UTC), FitConfig())
    later = train_family(data, "lasso", cut, pd.Timestamp("2024-02-04", tz=UTC), FitConfig())
    meta = registry.bentoml_module().models.get(later.tag).info.metadata
    assert meta["champion_comparison"]["period_start"] == "2024-02-01T00:00:00+00:00"
    assert "2024-02-01T00:00:00+00:00" in later.decision.reason


def test_keras_saved_without_optimizer_is_smaller_and_loads(tmp_path) -> None:
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(120, 68)), rng.normal(size=120)
    fitted = fit_model("cnn", x[:100], y[:100], x[100:], y[100:], FitConfig(max_epochs=1))
    full = tmp_path / "full.keras"
    fitted.estimator.save(full)
    slim = artifacts.save(fitted.family, fitted.estimator, tmp_path)
    assert slim.name == "model.keras"
    assert slim.stat().st_size < 0.5 * full.stat().st_size
    import keras

    reloaded = keras.models.load_model(slim, compile=False)
    sample = x[:3, :, None].astype("float32")
    np.testing.assert_allclose(
        reloaded(sample).numpy(), fitted.estimator(sample).numpy(), rtol=1e-5
    )


def test_export_import_roundtrip(tmp_path) -> None:
    symbol = "TSTC-USD"
    data = _frame(symbol)
    outcome = train_family(
        data, "lasso", pd.Timestamp("2024-02-08", tz=UTC), pd.Timestamp("2024-02-01", tz=UTC),
        FitConfig(),
    )  # fmt: skip
    before, meta = registry.load_fitted(outcome.tag)
    path = registry.export(outcome.tag, tmp_path / "out" / "lasso.bentomodel")
    assert path.is_absolute() and path.is_file()
    registry.bentoml_module().models.delete(outcome.tag)
    assert registry.import_file(path) == outcome.tag
    after, meta_after = registry.load_fitted(outcome.tag)
    assert meta_after == meta
    x = data.frame[data.features].to_numpy(float)[:20]
    np.testing.assert_array_equal(before.predict(x), after.predict(x))
