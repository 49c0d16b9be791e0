"""Live performance: how each logged model did on the hours that have closed.

Per symbol × model × model version, over the scored forecasts whose target hour is
in the window: MAE beside persistence's MAE on the same hours, their ratio,
directional accuracy with its 95 % Wilson band, the coverage and width of the
logged 80 % and 95 % intervals, and the worst hour. The figures come
from :func:`candlecast.metrics.forecast_metrics` on (actual, predicted, current),
the function the walk-forward evaluation uses, so a live MAE ratio reads exactly
like the one recorded with the model.
"""

from __future__ import annotations

import math

import pandas as pd

from candlecast.errors import BadInput
from candlecast.metrics import forecast_metrics, interval_metrics
from candlecast.prediction_log import MODELS
from candlecast.times import utc, utc_now

#: Window name -> length (None: every logged hour).
WINDOWS: dict[str, pd.Timedelta | None] = {
    "24h": pd.Timedelta(hours=24),
    "7d": pd.Timedelta(days=7),
    "30d": pd.Timedelta(days=30),
    "all": None,
}
GROUP = ["symbol", "model", "model_version"]


class UnknownWindowError(BadInput, ValueError):
    """A window name that is not one of :data:`WINDOWS`."""


def window_start(window: str, now: pd.Timestamp) -> pd.Timestamp | None:
    """Start (exclusive) of ``window`` ending at ``now``; None for ``all``."""
    if window not in WINDOWS:
        raise UnknownWindowError(f"unknown window {window!r}: expected one of {', '.join(WINDOWS)}")
    length = WINDOWS[window]
    return None if length is None else utc(now) - length


def performance(
    log_frame: pd.DataFrame, window: str = "7d", now: pd.Timestamp | None = None
) -> list[dict]:
    """One JSON-ready dict per (symbol, model, model_version) with a forecast in the window.

    The window holds target hours ``now - window < target_time <= now``. ``n`` and the
    metrics count scored rows only; ``unscored`` counts the window's rows with no
    outcome yet (the target hour's candle is not stored, or there was none: no trades).
    A group with no scored row has ``n`` 0 and null metrics.
    """
    now = utc_now() if now is None else utc(now)
    start = window_start(window, now)
    rows = log_frame[log_frame["target_time"] <= now]
    if start is not None:
        rows = rows[rows["target_time"] > start]
    result = []
    for (symbol, model, version), group in rows.groupby(GROUP, sort=False):
        result.append(_group_figures(symbol, model, version, group, window))
    order = {name: rank for rank, name in enumerate(MODELS)}
    result.sort(key=lambda r: (r["symbol"], order.get(r["model"], len(order)), r["model_version"]))
    return result


def _group_figures(symbol: str, model: str, version: str, group: pd.DataFrame, window: str):
    group = group.sort_values("target_time", kind="stable")
    scored = group[group["actual_close"].notna()]
    actual, current = scored["actual_close"].to_numpy(), scored["current_price"].to_numpy()
    figures = forecast_metrics(actual, scored["predicted_price"].to_numpy(), current)
    naive = forecast_metrics(actual, current, current)
    mae, naive_mae = figures["mae"], naive["mae"]
    worst = scored.loc[scored["abs_error"].idxmax()] if len(scored) else None
    return {
        "symbol": symbol,
        "model": model,
        "model_version": version,
        "is_default": bool(group["is_default"].iloc[-1]),  # as in its latest forecast
        "window": window,
        "n": figures["n"],
        "unscored": len(group) - len(scored),
        "mae": _number(mae),
        "persistence_mae": _number(naive_mae),
        "mae_ratio_vs_persistence": _number(mae / naive_mae) if naive_mae > 0 else None,
        "directional_accuracy": _number(figures["directional_accuracy"]),
        "directional_accuracy_ci95": figures["directional_accuracy_ci95"] if len(scored) else None,
        **_coverage(scored),
        "worst_target_time": None if worst is None else worst["target_time"].isoformat(),
        "worst_abs_error": None if worst is None else float(worst["abs_error"]),
        "first_target_time": group["target_time"].iloc[0].isoformat(),
        "last_target_time": group["target_time"].iloc[-1].isoformat(),
    }


def _coverage(scored: pd.DataFrame) -> dict:
    """Live share of closes inside the logged 80 % / 95 % intervals (None: none logged)."""
    found = {}
    for key in ("80", "95"):
        level = int(key) / 100
        m = interval_metrics(
            scored["actual_close"], scored[f"lower_{key}"], scored[f"upper_{key}"], level
        )
        found[f"coverage_{key}"] = _number(m["coverage"]) if m["n"] else None
        found[f"interval_width_{key}"] = _number(m["width"]) if m["n"] else None
    return found


def _number(value: float) -> float | None:
    """A float for JSON: NaN (no rows) becomes null."""
    return None if value is None or math.isnan(value) else float(value)


def report(
    symbol: str | None = None, window: str = "7d", now: pd.Timestamp | None = None
) -> list[dict]:
    """:func:`performance` of the prediction log under ``$CANDLECAST_HOME/predictions``.

    The one entry point of ``candlecast performance`` and ``GET /performance``, so
    both print the same figures for the same window. Each row also carries ``drift``:
    the version's latest :mod:`candlecast.drift` report (its own window, default 7 d),
    or None when none has been computed. Drift is shown beside the figures; nothing
    acts on it.
    """
    from candlecast import drift
    from candlecast.prediction_log import PredictionLog
    from candlecast.settings import get_settings

    now = utc_now() if now is None else utc(now)
    start = window_start(window, now)
    predictions = PredictionLog(get_settings().predictions_dir)
    rows = performance(predictions.read(symbol, since=start), window, now)
    drifts = drift.load() if rows else {}
    for row in rows:
        row["drift"] = drifts.get((row["symbol"], row["model"], row["model_version"]))
    return rows
