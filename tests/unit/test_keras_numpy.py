"""The folded numpy forward pass answers as the Keras network, or is not used at all."""

from __future__ import annotations

import logging

import numpy as np
import pytest

from candlecast import artifacts
from candlecast.keras_numpy import fold
from training.models import FitConfig, build_cnn, build_lstm

N_FEATURES = 51


def _keras(model, x: np.ndarray) -> np.ndarray:
    return np.asarray(model(x[..., None].astype(np.float32), training=False)).reshape(-1)


@pytest.fixture(scope="module")
def cnn():
    import keras

    keras.utils.set_random_seed(7)
    return build_cnn(N_FEATURES)


@pytest.fixture(scope="module")
def rows() -> np.ndarray:
    return np.random.default_rng(1).normal(0.0, 2.0, (300, N_FEATURES)).astype(np.float32)


def test_the_reference_cnn_folds_into_one_small_matrix(cnn, rows):
    folded = fold(cnn, N_FEATURES)
    assert folded is not None
    expected = _keras(cnn, rows)
    np.testing.assert_allclose(folded(rows), expected, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(folded(rows[:1]), expected[:1], rtol=1e-5, atol=1e-6)
    assert folded(rows[:1]).shape == (1,)


def test_the_served_and_trained_forward_pass_is_the_folded_one(cnn, rows):
    served = artifacts.forward("cnn", cnn, N_FEATURES)
    np.testing.assert_array_equal(served(rows), fold(cnn, N_FEATURES)(rows))


def test_a_conv_with_its_own_activation_still_folds_correctly(rows):
    import keras

    keras.utils.set_random_seed(3)
    layers = keras.layers
    model = keras.Sequential(
        [
            layers.InputLayer(shape=(N_FEATURES, 1)),
            layers.Conv1D(8, kernel_size=3, activation="relu"),
            layers.Reshape((-1,)),
            layers.Dense(4),
            layers.Dense(1),
        ]
    )
    folded = fold(model, N_FEATURES)
    assert folded is not None
    np.testing.assert_allclose(folded(rows), _keras(model, rows), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("padding", ["same", "causal"])
def test_unsupported_layers_keep_tensorflow(padding, rows):
    import keras

    layers = keras.layers
    padded = keras.Sequential(
        [
            layers.InputLayer(shape=(N_FEATURES, 1)),
            layers.Conv1D(4, kernel_size=3, padding=padding),
            layers.Flatten(),
            layers.Dense(1),
        ]
    )
    assert fold(padded, N_FEATURES) is None
    lstm = build_lstm(N_FEATURES, FitConfig(lstm_units=4))
    assert fold(lstm, N_FEATURES) is None
    served = artifacts.forward("lstm", lstm, N_FEATURES)
    np.testing.assert_allclose(served(rows[:5]), _keras(lstm, rows[:5]), rtol=1e-5, atol=1e-6)


def test_a_fold_that_disagrees_with_keras_is_refused(cnn, caplog):
    def wrong(x: np.ndarray) -> np.ndarray:
        return np.zeros(len(x))

    with caplog.at_level(logging.WARNING, logger="candlecast.artifacts"):
        assert not artifacts._agrees(wrong, cnn, N_FEATURES)
    assert "disagrees with Keras" in caplog.text
    assert artifacts._agrees(fold(cnn, N_FEATURES), cnn, N_FEATURES)
