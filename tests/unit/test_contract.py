"""The model contract: names, labels, metadata round trip, column order, scaling, price."""

from __future__ import annotations

import math

import numpy as np
import pytest

from bentos.encoding import OK, encode, run_grouped
from candlecast import artifacts, contract
from candlecast.contract import (
    ContractError,
    ModelSpec,
    Scaling,
    feature_vector,
    forecast_prices,
    model_input,
    naive_spec,
)
from tests.fakes import serving as fakes


def spec(target: str = "return", **scaling) -> ModelSpec:
    """A stored CNN spec, read back from its metadata as serving reads it."""
    made = fakes.spec("cnn", "BTC-USD", 0.9, scaling=Scaling(**scaling))
    meta = {**made.to_metadata(), "target": target}
    return ModelSpec.from_metadata("m:1", meta)


def feature_row(s: ModelSpec, values: dict) -> np.ndarray | None:
    return feature_vector(s, values)


def to_price(s: ModelSpec, outputs: np.ndarray, close: np.ndarray) -> np.ndarray:
    return forecast_prices(s, outputs, close)


def test_name_and_labels_follow_the_contract():
    assert contract.model_name("cnn", "BTC-USD") == "candlecast-cnn-btc-usd"
    assert contract.labels("lasso", "ETH-USD", "champion") == {
        "stage": "champion",
        "family": "lasso",
        "symbol": "eth-usd",
    }
    with pytest.raises(ValueError, match="unknown stage"):
        contract.labels("lasso", "ETH-USD", "production")


def test_metadata_round_trips_every_field():
    made = fakes.spec(
        "cnn",
        "BTC-USD",
        0.97,
        scaling=Scaling(np.arange(4.0), np.ones(4), 0.1, 2.0),
        cut="2024-06-01T00:00:00+00:00",
        n_train=900,
        leakage_suspect=True,
        fit_details={"alpha": 0.5},
    )
    meta = made.to_metadata()
    assert "champion_comparison" not in meta  # None -> omitted (BentoML rejects None)
    assert meta["input_shape"] == "sequence" and meta["input_mean"] == [0.0, 1.0, 2.0, 3.0]
    back = ModelSpec.from_metadata("candlecast-cnn-btc-usd:abc", meta)
    assert back.version == "candlecast-cnn-btc-usd:abc"
    assert back.to_metadata() == meta
    assert back.mae_ratio_vs_persistence == 0.97 and back.leakage_suspect is True


def test_metadata_without_features_or_family_names_the_field():
    meta = fakes.spec("lasso", "BTC-USD", 0.9).to_metadata()
    with pytest.raises(ContractError, match="'features'"):
        ModelSpec.from_metadata("x:1", {**meta, "features": []})
    with pytest.raises(ContractError, match="'family'"):
        ModelSpec.from_metadata("x:1", {k: v for k, v in meta.items() if k != "family"})


def test_feature_row_follows_metadata_order_not_dict_order():
    s = spec()
    values = {"rsi_14": 4.0, "vol_24h": 3.0, "ret_4h": 2.0, "ret_1h": 1.0, "close": 9.0}
    assert feature_row(s, values).tolist() == [1.0, 2.0, 3.0, 4.0]


@pytest.mark.parametrize("bad", [None, float("nan"), "x"])
def test_feature_row_is_none_when_a_value_is_missing(bad):
    values = {"ret_1h": 1.0, "ret_4h": bad, "vol_24h": 3.0, "rsi_14": 4.0}
    assert feature_row(spec(), values) is None


def test_model_input_standardises_with_recorded_mean_and_scale():
    s = spec(input_mean=np.array([1, 2, 3, 4.0]), input_scale=np.array([2, 2, 2, 2.0]))
    x = model_input(s, np.array([[3.0, 2.0, 1.0, 4.0]]))
    assert x.dtype == np.float64  # price-level features keep their cents
    assert x.tolist() == [[1.0, 0.0, -1.0, 0.0]]


def test_return_target_is_scaled_back_then_exponentiated():
    s = spec(output_mean=0.001, output_scale=0.01)
    price = to_price(s, np.array([0.5]), np.array([100.0]))
    assert price[0] == pytest.approx(100.0 * math.exp(0.5 * 0.01 + 0.001))


def test_price_target_is_returned_as_is():
    s = spec(target="price")
    assert to_price(s, np.array([123.0]), np.array([100.0]))[0] == 123.0


def test_metadata_with_wrong_scale_length_is_rejected():
    with pytest.raises(ContractError, match="input_mean"):
        spec(input_mean=np.array([0.0, 1.0]))


def test_naive_spec_has_ratio_one():
    assert naive_spec("BTC-USD", "price_model_v1").mae_ratio_vs_persistence == 1.0


def test_run_grouped_sends_each_row_to_its_versions_model_in_order():
    a = fakes.spec("lasso", "BTC-USD", 0.9, version="candlecast-lasso-btc-usd:a")
    b = fakes.spec("lasso", "ETH-USD", 0.9, features=["x"], version="candlecast-lasso-eth-usd:b")
    rows = np.vstack([encode(1, b.version, np.array([7.0])), encode(0, a.version, np.ones(4))])
    out = run_grouped(rows, [(a, lambda x: x.sum(axis=1)), (b, lambda x: -x[:, 0])])
    assert out.tolist() == [[-7.0, OK], [4.0, OK]]


@pytest.mark.parametrize("rows", [1, 5])
def test_compiled_cnn_forward_equals_keras_predict(tmp_path, rows):
    """The serving fast path (concrete tf.function) computes what Keras computes."""
    import keras

    keras.utils.set_random_seed(1)
    n = 12
    layers = keras.layers
    model = keras.Sequential(
        [
            layers.InputLayer((n, 1)),
            layers.Conv1D(8, 4),
            layers.Flatten(),
            layers.Dense(4, activation="relu"),
            layers.Dense(1),
        ]
    )
    artifacts.save("cnn", model, tmp_path)
    loaded = artifacts.load("cnn", tmp_path)
    x = np.random.default_rng(2).normal(size=(rows, n)).astype(np.float32)
    expected = model.predict(x.reshape(rows, n, 1), verbose=0).reshape(-1)
    np.testing.assert_allclose(artifacts.forward("cnn", loaded, n)(x), expected, rtol=1e-5)
