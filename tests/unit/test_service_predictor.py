"""Request logic with injected models and features (no BentoML, no Feast)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from bentos.errors import (
    BadRequest,
    BadTime,
    FeaturesUnavailable,
    ServiceUnavailable,
    UnknownModel,
    UnknownSymbol,
    from_response,
)
from bentos.predictor import Predictor, ServedFamily
from bentos.registry import default_model
from candlecast.contract import ModelSpec
from tests.fakes.serving import LAST_CLOSE, FakeFeatures, spec

NOW = LAST_CLOSE + timedelta(minutes=30)


def specs(family: str, ratio: float) -> dict[str, ModelSpec]:
    made = spec(family, "BTC-USD", ratio)
    return {"BTC-USD": ModelSpec.from_metadata(f"{family}:v1", made.to_metadata())}


def make(lasso=0.98, cnn=1.05, features=None, output=0.01) -> Predictor:
    async def run(rows: np.ndarray) -> np.ndarray:
        return np.full(rows.shape[0], output)

    families = {"lasso": ServedFamily(specs("lasso", lasso), run)}
    families["cnn"] = ServedFamily(specs("cnn", cnn), run)
    return Predictor(["BTC-USD"], families, features or FakeFeatures(), 7200, clock=lambda: NOW)


def predict(p: Predictor, *args, **kwargs):
    return asyncio.run(p.predict(*args, **kwargs))


def test_lasso_forecast_turns_log_return_into_price():
    result = predict(make(output=0.01), "btc-usd", "lasso")
    assert result["model"] == "lasso"
    assert result["current_price"] == 60000.0
    assert result["predicted_price"] == pytest.approx(60000.0 * np.exp(0.01))
    assert result["predicted_change_pct"] == pytest.approx(100 * (np.exp(0.01) - 1))
    assert result["mae_ratio_vs_persistence"] == 0.98
    assert result["feature_service"] == "price_model_v2"


def test_result_times_prices_and_staleness():
    result = predict(make(), "BTC-USD", "naive")
    assert result["as_of"] == LAST_CLOSE.isoformat()
    assert result["target_time"] == (LAST_CLOSE + timedelta(hours=1)).isoformat()
    assert result["predicted_price"] == result["current_price"]
    assert result["mae_ratio_vs_persistence"] == 1.0
    assert result["features_age_seconds"] == 1800.0
    assert result["stale"] is False
    past = result["past_24_hour_prices"]
    assert len(past) == 24 and past[-1] == 59990.0 and past[0] == 60000.0 - 240


def test_old_features_are_flagged_stale():
    p = make(features=FakeFeatures(last_close=NOW - timedelta(hours=3)))
    result = predict(p, "BTC-USD", "naive")
    assert result["stale"] is True
    assert result["features_age_seconds"] == 3 * 3600


def test_default_model_is_best_champion_below_one_else_naive():
    assert predict(make(lasso=0.98, cnn=0.97), "BTC-USD")["model"] == "cnn"
    assert predict(make(lasso=0.98, cnn=1.2), "BTC-USD")["model"] == "lasso"
    assert predict(make(lasso=1.01, cnn=1.2), "BTC-USD")["model"] == "naive"
    assert default_model([]) == "naive"


def test_a_leakage_suspect_champion_is_never_the_default():
    suspect = spec("cnn", "BTC-USD", 0.80, leakage_suspect=True)
    honest = specs("lasso", 0.99)["BTC-USD"]
    assert default_model([suspect, honest]) == "lasso"
    assert default_model([suspect]) == "naive"


def test_unknown_symbol_names_known_ones():
    with pytest.raises(UnknownSymbol, match="BTC-USD") as err:
        predict(make(), "DOGE-USD")
    assert err.value.status == 404
    assert err.value.to_body()["known_symbols"] == ["BTC-USD"]


def test_unknown_model_lists_choices():
    with pytest.raises(UnknownModel) as err:
        predict(make(), "BTC-USD", "lstm")
    assert err.value.extra["choices"] == ["lasso", "cnn", "naive"]


@pytest.mark.parametrize("at", ["tomorrow", "2024-13-45", "9999-01-01T00:00Z"])
def test_unreadable_or_future_time_is_rejected(at):
    with pytest.raises(BadTime):
        predict(make(), "BTC-USD", "lasso", at)


def test_time_after_last_stored_candle_is_rejected():
    p = make(features=FakeFeatures(last_close=NOW - timedelta(hours=5)))
    with pytest.raises(BadTime, match="after the last stored candle"):
        predict(p, "BTC-USD", "lasso", (NOW - timedelta(hours=2)).isoformat())


def test_time_before_stored_data_is_rejected():
    with pytest.raises(BadTime, match="No stored features"):
        predict(make(), "BTC-USD", "lasso", "2020-01-01T00:00:00Z")


def test_past_time_uses_offline_store_for_that_hour():
    features = FakeFeatures()
    result = predict(make(features=features), "BTC-USD", "lasso", "2024-03-05T10:42:00+00:00")
    assert result["as_of"] == datetime(2024, 3, 5, 10, tzinfo=UTC).isoformat()
    assert ("historical", "BTC-USD", "price_model_v2") in features.calls
    assert result["stale"] is False


def test_missing_online_features_is_unavailable():
    with pytest.raises(FeaturesUnavailable) as err:
        predict(make(features=FakeFeatures(symbols=())), "BTC-USD", "naive")
    assert err.value.status == 503


def test_models_lists_every_servable_model_with_its_ratio():
    rows = make(lasso=0.98, cnn=1.05).models()
    by_name = {r["model"]: r for r in rows}
    assert set(by_name) == {"lasso", "cnn", "naive"}
    assert by_name["lasso"]["default"] and not by_name["cnn"]["default"]
    assert by_name["cnn"]["beats_persistence"] is False
    assert by_name["naive"]["mae_ratio_vs_persistence"] == 1.0


def test_failing_model_service_is_a_clear_503():
    async def broken(rows):
        raise RuntimeError("process is overloaded")

    p = make()
    p.families["lasso"] = ServedFamily(p.families["lasso"].specs, broken)
    with pytest.raises(ServiceUnavailable, match="model service lasso failed") as err:
        predict(p, "BTC-USD", "lasso")
    assert err.value.status == 503


@pytest.mark.parametrize(
    ("status", "body", "expected"),
    [
        (404, {"error": "unknown_symbol", "message": "m", "known_symbols": ["X"]}, UnknownSymbol),
        (400, {"error": "unknown_model", "message": "m", "choices": ["naive"]}, UnknownModel),
        (422, {"error": "bad_time", "message": "m"}, BadTime),
        (503, {"error": "features_unavailable", "message": "m"}, FeaturesUnavailable),
        (400, {"error": "3 validation errors"}, BadRequest),
        (502, "<html>bad gateway</html>", ServiceUnavailable),
    ],
)
def test_client_rebuilds_the_servers_error(status, body, expected):
    error = from_response(status, body)
    assert type(error) is expected
    if isinstance(body, dict) and "known_symbols" in body:
        assert error.extra["known_symbols"] == ["X"]


def test_client_keeps_the_servers_message_for_service_unavailable():
    body = {"error": "service_unavailable", "message": "model service lasso failed: boom"}
    error = from_response(503, body)
    assert type(error) is ServiceUnavailable
    assert error.message == "model service lasso failed: boom"


def test_every_forecast_carries_intervals_and_p_up_from_its_calibration():
    from candlecast import intervals

    p = make(output=0.01)
    for model in ("lasso", "cnn", "naive"):
        result = predict(p, "BTC-USD", model)
        low80, high80 = result["interval_80"]
        low95, high95 = result["interval_95"]
        assert low95 < low80 < result["predicted_price"] < high80 < high95
        past = [*result["past_24_hour_prices"], result["current_price"]]
        sigma = intervals.scale(past)
        half = (high80 - low80) / 2 / (result["current_price"] * sigma)
        assert half == pytest.approx(1.2815515655446004)  # the fakes' normal calibration
        assert 0.0 <= result["p_up"] <= 1.0 and result["interval_clipped"] is False
    assert predict(p, "BTC-USD", "lasso")["p_up"] > 0.99  # +1 % against a tiny volatility


def test_a_model_without_calibration_serves_null_intervals():
    import dataclasses

    p = make()
    snapshot = {f: {s: dataclasses.replace(spec, intervals={}) for s, spec in specs.items()}
                for f, specs in p.snapshot.items()}  # fmt: skip
    p.swap(snapshot)
    result = predict(p, "BTC-USD", "lasso")
    assert result["interval_80"] is None and result["p_up"] is None
