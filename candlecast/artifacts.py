"""A model's files and its forward pass, the same in training and in serving.

- scikit-learn and LightGBM estimators are ``model.joblib``;
- Keras networks are ``model.keras`` without optimizer state.

:func:`forward` wraps an estimator into the :data:`~candlecast.contract.Predict`
both sides call: training scores its walk-forward folds with it and the model
services serve with it, so a stored model answers exactly as it did in its
evaluation. Heavy libraries are imported only when a function needs them.
"""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from candlecast.contract import SEQUENCE_FAMILIES, Predict

JOBLIB, KERAS = "model.joblib", "model.keras"
log = logging.getLogger(__name__)


def filename(family: str) -> str:
    """The file a family's estimator is stored in."""
    return KERAS if family in SEQUENCE_FAMILIES else JOBLIB


def save(family: str, estimator: Any, folder: Path) -> Path:
    """Write ``estimator`` into ``folder`` under :func:`filename`."""
    target = Path(folder) / filename(family)
    if family in SEQUENCE_FAMILIES:
        return _save_keras_without_optimizer(estimator, target)
    import joblib

    joblib.dump(estimator, target)
    return target


def load(family: str, folder: Path) -> Any:
    """Read the estimator :func:`save` wrote into ``folder``."""
    source = Path(folder) / filename(family)
    if family in SEQUENCE_FAMILIES:
        import keras

        return keras.models.load_model(source, compile=False)
    import joblib

    return joblib.load(source)


def forward(family: str, estimator: Any, n_features: int) -> Predict:
    """The estimator's forward pass on standardised ``(n, n_features)`` rows -> ``(n,)``."""
    if family in SEQUENCE_FAMILIES:
        return _keras_forward(estimator, n_features)

    linear = _scaled_linear_forward(estimator)
    if linear is not None:
        return linear

    def predict(x: np.ndarray) -> np.ndarray:
        return np.asarray(estimator.predict(np.asarray(x)), dtype=np.float64).reshape(-1)

    return predict


def _scaled_linear_forward(estimator: Any) -> Predict | None:
    """``StandardScaler`` + linear model (the lasso family) as its own arithmetic, or None.

    The same operations in the same order as scikit-learn's ``transform`` (subtract
    ``mean_``, divide by ``scale_``) and ``predict`` (``X @ coef_ + intercept_``), so the
    answers are bit-for-bit those of ``estimator.predict``
    (``tests/unit/test_artifacts.py``), without its per-call input validation, which
    is most of a one-row call's ~0.5 ms.
    """
    from sklearn.linear_model._base import LinearModel
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler

    if not isinstance(estimator, Pipeline) or len(estimator.steps) != 2:
        return None
    (_, scaler), (_, model) = estimator.steps
    if not isinstance(scaler, StandardScaler) or not isinstance(model, LinearModel):
        return None
    coef = np.asarray(model.coef_, dtype=np.float64)
    if coef.ndim != 1:
        return None
    mean = scaler.mean_ if scaler.with_mean else None
    scale = scaler.scale_ if scaler.with_std else None
    intercept = model.intercept_

    def predict(x: np.ndarray) -> np.ndarray:
        rows = np.array(x, dtype=np.float64, ndmin=2)  # a copy: sklearn scales a copy too
        if mean is not None:
            rows -= mean
        if scale is not None:
            rows /= scale
        return (rows @ coef + intercept).reshape(-1)

    return predict


def _keras_forward(model: Any, n_features: int) -> Predict:
    """The network folded into numpy when it can be (:mod:`candlecast.keras_numpy`),
    else TensorFlow's graph.

    The folded pass is checked against the network itself on a fixed probe before it
    is used, so a layer it misreads costs speed, never a wrong answer.
    """
    from candlecast.keras_numpy import fold

    folded = fold(model, n_features)
    if folded is not None and _agrees(folded, model, n_features):
        return folded
    return _tf_forward(model, n_features)


def _agrees(folded: Predict, model: Any, n_features: int) -> bool:
    """Whether ``folded`` answers as ``model`` on 16 fixed rows, to float32 rounding."""
    probe = np.random.default_rng(0).normal(0.0, 3.0, (16, n_features)).astype(np.float32)
    expected = np.asarray(model(probe[..., None], training=False), dtype=np.float64)
    expected = expected.reshape(-1)
    ok = np.allclose(folded(probe), expected, rtol=1e-4, atol=1e-5)
    if not ok:
        log.warning("folded %s forward disagrees with Keras; using TensorFlow", model.name)
    return bool(ok)


def _tf_forward(model: Any, n_features: int) -> Predict:
    """A concrete ``tf.function`` traced once: Keras' ``predict`` builds a data pipeline
    per call (~70 ms for one row); this costs about half a millisecond."""
    import tensorflow as tf

    shape = (None, n_features, 1)

    @tf.autograph.experimental.do_not_convert  # a plain forward pass: nothing to convert
    def call(x):
        return model(x, training=False)

    # The concrete function skips tf.function's per-call signature matching (~0.2 ms of
    # the ~0.8 ms a single-row call costs); the batch dimension stays dynamic.
    concrete = tf.function(call, input_signature=[tf.TensorSpec(shape, tf.float32)])
    concrete = concrete.get_concrete_function()

    def predict(x: np.ndarray) -> np.ndarray:
        rows = np.asarray(x, dtype=np.float32).reshape((-1, n_features, 1))
        return np.asarray(concrete(tf.constant(rows)).numpy(), dtype=np.float64).reshape(-1)

    predict(np.zeros((1, n_features), dtype=np.float32))  # trace now, not on the first call
    return predict


def _save_keras_without_optimizer(model: Any, target: Path) -> Path:
    """Keras 3 stores Adam's slots in ``.keras`` (~3x size); reload uncompiled and re-save."""
    import keras

    with tempfile.TemporaryDirectory() as tmp:
        full = Path(tmp) / "full.keras"
        model.save(full)
        keras.models.load_model(full, compile=False).save(target)
    return target
