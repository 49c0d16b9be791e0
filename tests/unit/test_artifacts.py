"""``candlecast.artifacts.forward``: the fast linear path answers exactly as scikit-learn."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.linear_model import Lasso, LinearRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import MinMaxScaler, StandardScaler

from candlecast.artifacts import _scaled_linear_forward, forward


@pytest.fixture(scope="module")
def data() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(3)
    x = rng.normal(0, 1, (500, 35)) * rng.uniform(1e-4, 1e4, 35)  # wildly different scales
    return x, x[:, :5] @ rng.normal(0, 1e-3, 5) + rng.normal(0, 1e-2, 500)


@pytest.mark.parametrize(
    "estimator",
    [
        make_pipeline(StandardScaler(), Lasso(alpha=1e-4, max_iter=5000)),
        make_pipeline(StandardScaler(with_mean=False), Lasso(alpha=1e-4, max_iter=5000)),
        make_pipeline(StandardScaler(), LinearRegression()),
    ],
    ids=["lasso", "lasso-no-centering", "ols"],
)
def test_the_linear_path_is_bit_for_bit_sklearn(data, estimator):
    x, y = data
    estimator.fit(x, y)
    fast = forward("lasso", estimator, x.shape[1])
    assert _scaled_linear_forward(estimator) is not None
    rows = np.random.default_rng(4).normal(0, 1, (64, 35)) * 100
    np.testing.assert_array_equal(fast(rows), estimator.predict(rows))
    np.testing.assert_array_equal(fast(rows[:1]), estimator.predict(rows[:1]))  # one request
    before = rows.copy()
    fast(rows)
    np.testing.assert_array_equal(rows, before)  # the caller's rows are not scaled in place


def test_other_estimators_keep_their_own_predict(data):
    x, y = data
    other = make_pipeline(MinMaxScaler(), Lasso(alpha=1e-4)).fit(x, y)
    assert _scaled_linear_forward(other) is None
    np.testing.assert_array_equal(forward("lasso", other, 35)(x[:3]), other.predict(x[:3]))
