"""Prometheus gauges on BentoML's ``/metrics``: live performance and the served versions.

Per ``symbol``, ``model``, ``model_version`` and ``window`` (``24h`` and ``7d``), the
figures of ``candlecast.performance.report`` (the ones ``GET /performance`` answers):

- ``candlecast_live_mae``: MAE of the scored forecasts whose target hour is in the window;
- ``candlecast_live_persistence_mae``: persistence's MAE on the same hours;
- ``candlecast_live_mae_ratio``: their ratio (below 1: better than persistence);
- ``candlecast_live_directional_accuracy``: share of up/down calls that were right;
- ``candlecast_live_n``: scored forecasts the figures count.

and, per ``symbol``, ``model`` and ``model_version``, the drift of the latest report
(``candlecast.drift``): ``candlecast_drift_max_psi``, ``..._ks_rejected_share``,
``..._errors_ks_pvalue`` and ``candlecast_drift_level`` (0 none, 1 moderate, 2 major).

A figure is NaN while it is unknown (no scored forecast), and once its version has
no forecast left in the window. ``candlecast_model_info`` is 1 for the version each
family serves per ``symbol`` (label ``model``, ``model_version``), 0 for the versions
it served before in this worker. The API worker updates them when ``/performance``
is served, every ``CANDLECAST_METRICS_SECONDS`` and at each champion swap.

The gauges are made through ``bentoml.metrics`` on first use, in the worker: BentoML
sets ``PROMETHEUS_MULTIPROC_DIR`` only for its worker processes, and metrics made
before that would stay in memory, invisible to ``/metrics``. In multiprocess mode
``livemostrecent``: every API worker computes the same figures, the latest is shown.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Iterable, Mapping
from functools import cache
from typing import Any

from candlecast.contract import ModelSpec

#: Windows with gauges (``GET /performance`` answers more; only these are kept fresh).
WINDOWS = ("24h", "7d")
LABELS = ("symbol", "model", "model_version", "window")
#: Gauge name -> (field of a performance row, help text).
FIGURES = {
    "candlecast_live_mae": ("mae", "Live MAE of scored forecasts in the window"),
    "candlecast_live_persistence_mae": (
        "persistence_mae",
        "Live MAE of persistence (next close = this close) on the same hours",
    ),
    "candlecast_live_mae_ratio": (
        "mae_ratio_vs_persistence",
        "Live MAE / persistence MAE (below 1: better than persistence)",
    ),
    "candlecast_live_directional_accuracy": (
        "directional_accuracy",
        "Share of scored forecasts that called the direction right",
    ),
    "candlecast_live_n": ("n", "Scored forecasts in the window"),
}
INFO = "candlecast_model_info"
#: Drift gauges (``candlecast.drift.metric_samples``), labelled without the window.
DRIFT = {
    "candlecast_drift_max_psi": "Largest PSI of a stationary input or the live errors, 7 d",
    "candlecast_drift_ks_rejected_share": "Share of compared inputs whose KS test rejects at 1 %",
    "candlecast_drift_errors_ks_pvalue": "KS p-value of live errors vs the training window",
    "candlecast_drift_level": "Drift verdict: 0 none, 1 moderate, 2 major (never swaps a model)",
}


@cache
def _gauges() -> dict[str, Any]:
    """Every gauge, made once per process, after BentoML set up its multiprocess mode."""
    from bentoml import metrics

    made = {
        name: metrics.Gauge(name, doc, LABELS, multiprocess_mode="livemostrecent")
        for name, (_, doc) in FIGURES.items()
    }
    made[INFO] = metrics.Gauge(
        INFO,
        "1 for the model version served per symbol and model family, 0 for earlier ones",
        ("symbol", "model", "model_version"),
        multiprocess_mode="livemostrecent",
    )
    for name, doc in DRIFT.items():
        made[name] = metrics.Gauge(
            name, doc, ("symbol", "model", "model_version"), multiprocess_mode="livemostrecent"
        )
    return made


class Gauges:
    """Sets the gauges; remembers which series it set, to mark the ones that went away."""

    def __init__(self) -> None:
        self._live: set[tuple[str, ...]] = set()  # label values of the figures set
        self._served: set[tuple[str, str, str]] = set()
        self._lock = threading.Lock()

    def performance(
        self, window: str, rows: Iterable[Mapping[str, Any]], symbol: str | None = None
    ) -> None:
        """Set the figures of ``window`` from performance rows (of ``symbol``, or all)."""
        if window not in WINDOWS:
            return
        gauges = _gauges()
        fresh = {}
        for row in rows:
            key = (row["symbol"], row["model"], row["model_version"], window)
            fresh[key] = row
        with self._lock:
            mine = {k for k in self._live if k[3] == window and symbol in (None, k[0])}
            gone = mine - set(fresh)
            for key in gone:
                for name in FIGURES:
                    gauges[name].labels(*key).set(math.nan)
            for key, row in fresh.items():
                for name, (field, _) in FIGURES.items():
                    gauges[name].labels(*key).set(_number(row.get(field)))
            self._live = (self._live - gone) | set(fresh)
            keys = ("symbol", "model", "model_version")  # the row's own, whatever drift says
            drifts = [
                {**row["drift"], **{k: row[k] for k in keys}}
                for row in fresh.values()
                if isinstance(row.get("drift"), Mapping)
            ]
            self._drift(gauges, drifts)

    def _drift(self, gauges: dict[str, Any], reports: list[Mapping[str, Any]]) -> None:
        from candlecast.drift import metric_samples

        for name, labels, value in metric_samples(reports):
            if name in gauges:
                gauges[name].labels(**labels).set(value)

    def served(self, snapshot: Mapping[str, Mapping[str, ModelSpec]]) -> None:
        """Mark the versions of ``snapshot`` served (1) and those served before not (0)."""
        gauge = _gauges()[INFO]
        now = {(s, f, spec.version) for f, specs in snapshot.items() for s, spec in specs.items()}
        with self._lock:
            for key in self._served - now:
                gauge.labels(*key).set(0)
            for key in now:
                gauge.labels(*key).set(1)
            self._served |= now


def _number(value: Any) -> float:
    return math.nan if value is None else float(value)
