"""Train→serve parity without a server: every family, both targets, through the real registry.

Each family is fit (``training.models.fit_model``) for two symbols of different
widths: returns from 6 return-like features, prices from 9 price-level features.
Both are registered with ``training.registry.register`` and read back the way
serving reads them: champions found by ``bentos.registry.champions``, versions
loaded on first use by a model service's cache (``bentos.model_cache`` with
``bentos.runners.find_tag`` and ``load_version``), rows encoded with their version
(NaN padding, both symbols in one batch) and run by ``bentos.encoding.run_grouped``
behind ``bentos.predictor.Predictor.forecast``. The forecast must equal the in-memory
``Fitted.predict`` → price of training at rtol 1e-6; so must the plain
``candlecast.model_store.get(tag).forward()`` + contract path.

The BentoML store is the session's (tests/conftest.py): symbols are unique per family.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from functools import partial

import numpy as np
import pytest

from candlecast.contract import FAMILIES, ModelSpec, forecast_prices, model_input, to_price

RTOL = 1e-6
N_ROWS, N_VAL, N_CHECK = 260, 60, 12  # rows fit, validated, and compared (spread over all)


def _market(target: str, seed: int) -> tuple[list[str], np.ndarray, np.ndarray, np.ndarray]:
    """(names, x, y, close): return-like features for ``return``, price levels for ``price``."""
    rng = np.random.default_rng(seed)
    n = N_ROWS + N_VAL
    if target == "return":
        names = [f"ret_{i}h" for i in range(6)]
        x = rng.normal(0.0, 0.005, (n, len(names)))
        close = 40_000.0 * np.exp(np.cumsum(x[:, 0]))
        y = 0.3 * x[:, 0] + rng.normal(0.0, 0.002, n)
    else:
        names = ["close", *[f"price_{i}_hour_ago" for i in range(1, 9)]]
        close = 40_000.0 * np.exp(np.cumsum(rng.normal(0.0, 0.005, n + 8)))
        x = np.column_stack([close[8 - i : n + 8 - i] for i in range(len(names))])
        close = x[:, 0]
        y = close * np.exp(rng.normal(0.0, 0.005, n))
    return names, np.round(x, 6), y, close


def _fit_and_register(family: str, symbol: str, target: str, seed: int):
    from training.models import FitConfig, fit_model
    from training.registry import CHAMPION, Decision, register

    names, x, y, close = _market(target, seed)
    cfg = FitConfig(max_epochs=1, batch_size=64, lgbm_estimators=20, lgbm_early_stopping=5)
    fit, val = slice(0, N_ROWS), slice(N_ROWS, N_ROWS + N_VAL)
    fitted = fit_model(family, x[fit], y[fit], x[val], y[val], cfg)
    spec = ModelSpec(
        family=family,
        symbol=symbol,
        feature_service="price_model_v2" if target == "return" else "price_model_v1",
        features=tuple(names),
        target=target,
        scaling=fitted.scaling,
        metrics={"mae": 1.0, "mae_ratio_vs_persistence": 0.99, "n": N_VAL},
    )
    tag = register(fitted, spec, Decision(CHAMPION, "parity test"))
    check = np.linspace(0, len(x) - 1, N_CHECK).astype(int)
    return fitted, tag, names, x[check], close[check]


def _forecast(predictor, spec: ModelSpec, names: list[str], row: np.ndarray, close: float):
    """The service's forecast of one feature row, given as Feast hands values over."""
    from bentos.features import FeatureRow

    values = {name: float(v) for name, v in zip(names, row, strict=True)}
    row_at = FeatureRow(values, datetime(2024, 3, 1, tzinfo=UTC))
    return asyncio.run(predictor.forecast(spec, row_at, float(close)))


@pytest.mark.parametrize("family", FAMILIES)
def test_registered_model_serves_what_training_predicts(family: str) -> None:
    from bentos.encoding import OK, encode, run_grouped
    from bentos.model_cache import ModelCache
    from bentos.predictor import Predictor, ServedFamily
    from bentos.registry import champions
    from bentos.runners import find_tag, load_version
    from candlecast import model_store

    symbols = {"return": f"PAR{family.upper()}R-USD", "price": f"PAR{family.upper()}P-USD"}
    cases = {
        target: _fit_and_register(family, symbol, target, seed)
        for seed, (target, symbol) in enumerate(symbols.items())
    }

    # A model service's cache: nothing loaded yet, each version found and loaded on first use.
    served_symbols = list(symbols.values())
    found = champions(family, served_symbols)
    cache = ModelCache(served_symbols, partial(find_tag, family, {}), partial(load_version, family))
    batches: list[int] = []

    async def run(rows: np.ndarray) -> np.ndarray:
        batches.append(len(rows))
        return run_grouped(rows, cache.resolve)

    served = ServedFamily({s: c.spec for s, c in found.items()}, run)
    predictor = Predictor(served_symbols, {family: served}, features=None)

    for target, (fitted, tag, names, x, close) in cases.items():
        spec = found[symbols[target]].spec
        assert spec.version == tag and spec.target == target
        expected = to_price(fitted.predict(x), close, target)  # training's own path, in memory

        stored = model_store.get(tag)  # the contract path on the stored files
        direct = forecast_prices(stored.spec, stored.forward()(model_input(stored.spec, x)), close)
        np.testing.assert_allclose(direct, expected, rtol=RTOL, err_msg=f"{family} {target}")

        got = [_forecast(predictor, spec, names, row, c) for row, c in zip(x, close, strict=True)]
        np.testing.assert_allclose(got, expected, rtol=RTOL, err_msg=f"{family} {target}")
        assert np.ptp(expected) > 0

    # Adaptive batching mixes both symbols' rows (widths 6 and 9) in one call.
    def row(target: str, x: np.ndarray) -> np.ndarray:
        spec = found[symbols[target]].spec
        return encode(served_symbols.index(spec.symbol), spec.version, model_input(spec, x))

    rows = [
        (target, row(target, x[i])) for i in range(N_CHECK) for target, (*_, x, _) in cases.items()
    ]
    raw = run_grouped(np.vstack([r for _, r in rows]), cache.resolve)
    assert (raw[:, 1] == OK).all()
    for target, (fitted, _, _, x, close) in cases.items():
        mine = np.array([t == target for t, _ in rows])
        spec = found[symbols[target]].spec
        np.testing.assert_allclose(
            forecast_prices(spec, raw[mine, 0], close),
            to_price(fitted.predict(x), close, target),
            rtol=RTOL,
            err_msg=f"{family} {target} mixed batch",
        )
    assert set(batches) == {1}
    assert sorted(cache.tags()) == sorted(c.tag for c in found.values())  # loaded on first use
