"""Model families: the reference CNN layer for layer, pipelines, and determinism."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from tests.fakes.training_data import synthetic_frame
from training.backtest import report, run_backtest
from training.models import FitConfig, build_cnn, fit_model


def test_cnn_is_the_reference_architecture() -> None:
    model = build_cnn(68)
    layers = [(type(layer).__name__, layer.get_config()) for layer in model.layers]
    assert [name for name, _ in layers] == [
        "Conv1D",
        "Flatten",
        "Dense",
        "Activation",
        "Dense",
        "Activation",
        "Dense",
    ]
    assert model.input_shape == (None, 68, 1)
    conv = layers[0][1]
    assert conv["filters"] == 256 and conv["kernel_size"] == (4,)
    assert [c["units"] for n, c in layers if n == "Dense"] == [128, 128, 1]
    assert [c["activation"] for n, c in layers if n == "Dense"] == ["relu", "linear", "linear"]
    assert [c["activation"] for n, c in layers if n == "Activation"] == ["relu", "relu"]
    assert type(model.optimizer).__name__ == "Adam"
    assert float(model.optimizer.learning_rate) == pytest.approx(0.001)


def test_lasso_is_a_pipeline_with_scaler_fit_on_training_rows() -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(5, 3, (300, 4))
    y = 2 * x[:, 0] + rng.normal(0, 0.1, 300)
    fitted = fit_model("lasso", x[:250], y[:250], x[250:], y[250:], FitConfig())
    steps = [type(s).__name__ for s in fitted.estimator]
    assert steps == ["StandardScaler", "Lasso"]
    np.testing.assert_allclose(fitted.estimator[0].mean_, x.mean(axis=0))  # fit + val rows only
    assert np.mean(np.abs(fitted.predict(x) - y)) < 0.5


def test_keras_fit_records_scaling_and_losses() -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(100, 10, (200, 8))
    y = x[:, 0] * 0.5 + 3
    fitted = fit_model("cnn", x[:160], y[:160], x[160:], y[160:], FitConfig(max_epochs=2))
    np.testing.assert_allclose(fitted.scaling.input_mean, x[:160].mean(axis=0))
    assert fitted.scaling.output_mean == pytest.approx(float(np.mean(y[:160])))
    assert len(fitted.history["loss"]) == 2 and len(fitted.history["val_loss"]) == 2
    assert fitted.predict(x[:5]).shape == (5,)


def test_rerun_gives_identical_lasso_and_lgbm_metrics() -> None:
    data = synthetic_frame(1000)
    start = pd.Timestamp("2024-02-01", tz="UTC")
    end = start + pd.Timedelta(days=7)
    runs = [
        report(data, run_backtest(data, ["lasso", "lgbm"], start, end, FitConfig()))
        for _ in range(2)
    ]
    for family in ("lasso", "lgbm"):
        first, second = (r["models"][family] for r in runs)
        assert first["mae"] == second["mae"]
        assert first["directional_accuracy"] == second["directional_accuracy"]
