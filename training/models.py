"""The four model families, each fit with selection/early stopping on a held-out tail.

``fit_model`` returns a :class:`Fitted` that predicts in target units from raw
feature rows. It predicts through the model contract (``candlecast.contract``:
scaling in, forward pass, un-scaling out) and the shared forward pass
(``candlecast.artifacts.forward``), exactly the path the service takes, and the
scaling it records is what the registry stores with the model.
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass, field
from functools import cache
from typing import Any

import numpy as np

from candlecast import artifacts, contract
from candlecast.contract import SEQUENCE_FAMILIES, Scaling, check_family

#: Families trained with Keras (their networks read the features as a sequence).
KERAS_FAMILIES = SEQUENCE_FAMILIES
#: Lasso penalties tried, as multiples of the target's standard deviation.
LASSO_ALPHAS = (3e-4, 1e-3, 3e-3, 1e-2, 3e-2, 1e-1, 3e-1)


@dataclass(frozen=True)
class FitConfig:
    """Knobs shared by every fit; defaults are the ones the reported results use."""

    seed: int = 42
    val_fraction: float = 0.15
    max_epochs: int = 60
    patience: int = 8
    batch_size: int = 64
    lgbm_estimators: int = 2000
    lgbm_early_stopping: int = 100
    lstm_units: int = 32


@dataclass
class Fitted:
    """A fitted model plus the scaling around it; ``predict`` maps feature rows to targets."""

    family: str
    estimator: Any
    scaling: Scaling = field(default_factory=Scaling)
    history: dict[str, list[float]] = field(default_factory=dict)
    details: dict[str, Any] = field(default_factory=dict)
    _forward: contract.Predict | None = field(default=None, repr=False, compare=False)

    def predict(self, x: np.ndarray) -> np.ndarray:
        """Target values for raw feature rows ``(n, features)``, through the contract."""
        x = np.asarray(x, dtype=float)
        if self._forward is None:
            self._forward = artifacts.forward(self.family, self.estimator, x.shape[1])
        return contract.to_target(
            self.scaling, self._forward(contract.model_input(self.scaling, x))
        )


def fit_model(
    family: str,
    x_fit: np.ndarray,
    y_fit: np.ndarray,
    x_val: np.ndarray,
    y_val: np.ndarray,
    cfg: FitConfig,
) -> Fitted:
    """Fit one family; the validation rows precede any test rows and only steer selection."""
    fitters = {"lasso": fit_lasso, "lgbm": fit_lgbm, "cnn": fit_keras, "lstm": fit_keras}
    np.random.seed(cfg.seed)
    return fitters[check_family(family)](family, x_fit, y_fit, x_val, y_val, cfg)


def fit_lasso(family, x_fit, y_fit, x_val, y_val, cfg: FitConfig) -> Fitted:
    """Scaler + Lasso in one Pipeline; alpha picked by validation MAE, then refit on all rows."""
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import Lasso
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    def build(alpha: float):
        return make_pipeline(
            StandardScaler(), Lasso(alpha=alpha, max_iter=20000, tol=1e-4, precompute=True)
        )

    spread = float(np.std(y_fit)) or 1.0
    scores = {}
    for mult in LASSO_ALPHAS:
        with warnings.catch_warnings():  # the smallest penalties may stop early; they lose anyway
            warnings.simplefilter("ignore", ConvergenceWarning)
            pipe = build(mult * spread).fit(x_fit, y_fit)
        scores[mult] = float(np.mean(np.abs(pipe.predict(x_val) - y_val)))
    best = min(scores, key=scores.__getitem__)
    final = build(best * spread).fit(np.vstack([x_fit, x_val]), np.concatenate([y_fit, y_val]))
    return Fitted(family, final, details={"alpha": best * spread, "val_mae": scores[best]})


def fit_lgbm(family, x_fit, y_fit, x_val, y_val, cfg: FitConfig) -> Fitted:
    """LightGBM with early stopping on the validation tail, refit on all rows at that size."""
    import lightgbm as lgb

    def build(n_estimators: int):
        return lgb.LGBMRegressor(
            n_estimators=n_estimators,
            learning_rate=0.03,
            num_leaves=15,
            min_child_samples=30,
            subsample=0.8,
            subsample_freq=1,
            colsample_bytree=0.8,
            reg_lambda=1.0,
            random_state=cfg.seed,
            deterministic=True,
            force_row_wise=True,
            n_jobs=_threads(),
            verbose=-1,
        )

    probe = build(cfg.lgbm_estimators).fit(
        x_fit,
        y_fit,
        eval_X=x_val,
        eval_y=y_val,
        eval_metric="l1",
        callbacks=[lgb.early_stopping(cfg.lgbm_early_stopping, verbose=False)],
    )
    best = max(1, int(probe.best_iteration_ or cfg.lgbm_estimators))
    final = build(best).fit(np.vstack([x_fit, x_val]), np.concatenate([y_fit, y_val]))
    return Fitted(family, final, details={"n_estimators": best})


def fit_keras(family, x_fit, y_fit, x_val, y_val, cfg: FitConfig) -> Fitted:
    """CNN or LSTM on standardized inputs/targets, early-stopped on the validation tail."""
    keras = _keras()
    keras.utils.set_random_seed(cfg.seed)
    mean, scale = x_fit.mean(axis=0), x_fit.std(axis=0)
    scale = np.where(scale > 0, scale, 1.0)
    y_mean, y_scale = float(np.mean(y_fit)), float(np.std(y_fit)) or 1.0

    scaling = Scaling(mean, scale, y_mean, y_scale)

    def prep(x: np.ndarray) -> np.ndarray:  # the contract's input, as a (features, 1) sequence
        return contract.model_input(scaling, x)[..., None].astype("float32")

    model = build_cnn(x_fit.shape[1]) if family == "cnn" else build_lstm(x_fit.shape[1], cfg)
    stop = keras.callbacks.EarlyStopping(
        monitor="val_loss", patience=cfg.patience, restore_best_weights=True
    )
    run = model.fit(
        prep(x_fit),
        ((y_fit - y_mean) / y_scale).astype("float32"),
        validation_data=(prep(x_val), ((y_val - y_mean) / y_scale).astype("float32")),
        epochs=cfg.max_epochs,
        batch_size=cfg.batch_size,
        callbacks=[stop],
        shuffle=True,
        verbose=0,
    )
    history = {k: [float(v) for v in vals] for k, vals in run.history.items()}
    return Fitted(family, model, scaling, history=history)


def build_cnn(n_features: int):
    """The reference system's 1D CNN, layer for layer (Adam, lr 0.001, MSE)."""
    keras = _keras()
    layers = keras.layers
    model = keras.Sequential(
        [
            layers.InputLayer(shape=(n_features, 1)),
            layers.Conv1D(256, kernel_size=4),
            layers.Flatten(),
            layers.Dense(128, activation="relu"),
            layers.Activation("relu"),
            layers.Dense(128, activation="linear"),
            layers.Activation("relu"),
            layers.Dense(1, activation="linear"),
        ]
    )
    model.compile(optimizer=keras.optimizers.Adam(learning_rate=0.001), loss="mse")
    return model


def build_lstm(n_features: int, cfg: FitConfig):
    """A small LSTM over the feature vector as a sequence, for comparison with the CNN."""
    keras = _keras()
    layers = keras.layers
    model = keras.Sequential(
        [
            layers.InputLayer(shape=(n_features, 1)),
            layers.LSTM(cfg.lstm_units),
            layers.Dense(1, activation="linear"),
        ]
    )
    model.compile(optimizer=keras.optimizers.Adam(learning_rate=0.001), loss="mse")
    return model


def _threads() -> int:
    """CPU threads for one fit: CANDLECAST_THREADS, else at most 2 (the machine is shared)."""
    return int(os.environ.get("CANDLECAST_THREADS", min(2, os.cpu_count() or 1)))


@cache
def _keras():
    """Import Keras once, on CPU, with bounded threads and deterministic ops.

    TF's C++ log is silenced (level 3): with numpy inputs ``fit`` prints a
    harmless graph-attribute error line per call; Python exceptions still raise.
    """
    os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
    import tensorflow as tf

    try:
        tf.config.threading.set_intra_op_parallelism_threads(_threads())
        tf.config.threading.set_inter_op_parallelism_threads(1)
    except RuntimeError:
        # TF was already initialised in this process (e.g. by the serving code);
        # its thread pools are fixed now and the caps come from TF_NUM_*_THREADS.
        pass
    tf.config.experimental.enable_op_determinism()
    return tf.keras
