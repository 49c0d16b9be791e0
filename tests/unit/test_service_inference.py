"""The metadata-driven transform: column order, scaling, target -> price."""

from __future__ import annotations

import math

import numpy as np
import pytest

from bentos.inference import ModelSpec, feature_row, model_input, naive_spec, to_price
from bentos.runners import encode, run_grouped
from tests.fakes.serving import metadata


def spec(**extra) -> ModelSpec:
    return ModelSpec.from_metadata("m:1", metadata("cnn", "BTC-USD", 0.9, **extra))


def test_feature_row_follows_metadata_order_not_dict_order():
    s = spec()
    values = {"rsi_14": 4.0, "vol_24h": 3.0, "ret_4h": 2.0, "ret_1h": 1.0, "close": 9.0}
    assert feature_row(s, values).tolist() == [1.0, 2.0, 3.0, 4.0]


@pytest.mark.parametrize("bad", [None, float("nan"), "x"])
def test_feature_row_is_none_when_a_value_is_missing(bad):
    values = {"ret_1h": 1.0, "ret_4h": bad, "vol_24h": 3.0, "rsi_14": 4.0}
    assert feature_row(spec(), values) is None


def test_model_input_standardises_with_recorded_mean_and_scale():
    s = spec(input_mean=[1, 2, 3, 4], input_scale=[2, 2, 2, 2])
    x = model_input(s, np.array([[3.0, 2.0, 1.0, 4.0]]))
    assert x.dtype == np.float32
    assert x.tolist() == [[1.0, 0.0, -1.0, 0.0]]


def test_return_target_is_scaled_back_then_exponentiated():
    s = spec(output_mean=0.001, output_scale=0.01)
    price = to_price(s, np.array([0.5]), np.array([100.0]))
    assert price[0] == pytest.approx(100.0 * math.exp(0.5 * 0.01 + 0.001))


def test_price_target_is_returned_as_is():
    s = spec(target="price")
    assert to_price(s, np.array([123.0]), np.array([100.0]))[0] == 123.0


def test_metadata_with_wrong_scale_length_is_rejected():
    with pytest.raises(ValueError, match="input_mean"):
        spec(input_mean=[0.0, 1.0])


def test_naive_spec_has_ratio_one():
    assert naive_spec("BTC-USD").mae_ratio_vs_persistence == 1.0


def test_run_grouped_sends_each_row_to_its_symbols_model_in_order():
    a = ModelSpec.from_metadata("a:1", metadata("lasso", "BTC-USD", 0.9))
    b = ModelSpec.from_metadata("b:1", {**metadata("lasso", "ETH-USD", 0.9), "features": ["x"]})
    rows = np.vstack([encode(1, np.array([7.0]), 4), encode(0, np.ones(4), 4)])
    out = run_grouped(rows, [(a, lambda x: x.sum(axis=1)), (b, lambda x: -x[:, 0])])
    assert out.tolist() == [-7.0, 4.0]


@pytest.mark.parametrize("rows", [1, 5])
def test_compiled_cnn_forward_equals_keras_predict(tmp_path, rows):
    """The serving fast path (concrete tf.function) computes what Keras computes."""
    import keras

    from bentos.cnn_forward import compiled_predict

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
    path = tmp_path / "model.keras"
    model.save(path)
    features = [f"f{i}" for i in range(n)]
    spec = ModelSpec.from_metadata(
        "cnn:v1", metadata("cnn", "BTC-USD", 1.0, features, input_shape="sequence")
    )
    x = np.random.default_rng(2).normal(size=(rows, n)).astype(np.float32)
    expected = model.predict(x.reshape(rows, n, 1), verbose=0).reshape(-1)
    np.testing.assert_allclose(
        compiled_predict(str(path), spec)(x).reshape(-1), expected, rtol=1e-5
    )
