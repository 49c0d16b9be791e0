"""Drift: how far each champion's recent inputs and live errors have moved from its training.

Each cycle, :func:`update` compares, for every champion (and the persistence forecast)
of each symbol, the **recent window** (default 7 d: ``now - window < t <= now``)
against a **reference**:

- **inputs** - each of the model's features that is stationary (:data:`KINDS`:
  returns, volatility, RSI, relative volume and candle shape; never price levels,
  raw volume or the calendar), read from the offline feature dataset with DuckDB.
  The reference is the model's training window ``[train_start, train_end]``, cut at
  the recent window's start (the two samples never share a row) and capped to its
  last :data:`REFERENCE_CAP` (90 d) to bound the cost.
- **live errors** - the relative errors ``abs_error / current_price`` of the model's
  scored forecasts in the prediction log, against the model's own relative errors on
  the same reference rows (its forward pass on the training-window features, label =
  the ``close`` of the row one hour later; in-sample, so slightly optimistic). They
  never change for a version, so they are cached under
  ``$CANDLECAST_HOME/drift/reference/``. Persistence (``naive``) has no inputs and
  no training window: its live errors are compared with its own errors over the
  :data:`REFERENCE_CAP` of feature history just before the recent window.

Each comparison gives a two-sample Kolmogorov-Smirnov test (:func:`scipy.stats.ks_2samp`)
and the Population Stability Index (:func:`psi`, 10 quantile bins of the reference).
PSI bands are the credit-scoring rule of thumb (Siddiqi, *Credit Risk Scorecards*,
2006; Yurdakul, "Statistical properties of the population stability index", 2018):
below 0.1 ``none``, 0.1-0.25 ``moderate``, above 0.25 ``major``.

The verdict is the band of the largest PSI among the comparisons whose KS test
rejects at :data:`KS_ALPHA` after a Bonferroni correction over the model's
comparisons (inputs and errors). The PSI of a short window has a sampling floor of
about ``(bins - 1) * (1/n_recent + 1/n_reference)`` (~0.06 for 168 and 2,160 rows),
so over two dozen features the largest PSI of two samples of one distribution is
routinely above 0.1; the KS condition keeps that noise out of the verdict. Hourly
features overlap in time (a 24 h volatility shares 23 hours with the next row), so
the samples are not independent and the KS p-values overstate significance: the
guard removes noise, it does not certify drift. ``max_psi`` and ``ks_rejected_share``
(uncorrected, p < 0.01) are shown unfiltered beside the verdict.

Drift never swaps a model: it is a reason shown beside the live figures
(``candlecast performance``, :func:`candlecast.performance.report`). Results go to
``$CANDLECAST_HOME/drift/latest.json`` (replaced atomically); :func:`load` reads it.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from candlecast import model_store
from candlecast.contract import (
    FAMILIES,
    NAIVE,
    ModelSpec,
    forecast_prices,
    model_input,
    naive_spec,
)
from candlecast.errors import CorruptFileError
from candlecast.feature_catalog import (
    CROSS_FEATURES,
    FEATURE_FILES,
    FEATURE_SCHEMA,
    LAGS,
    PEER_SOURCE_FEATURES,
    PRICE_FEATURES,
    RETURN_HORIZONS,
    RVOL_FEATURES,
    SEASONAL_FEATURES,
    VOLUME_FEATURES,
)
from candlecast.parquet_io import (
    READ_ERRORS,
    atomic_write_parquet,
    atomic_write_text,
    corrupt_file_guard,
    query_parquet,
)
from candlecast.prediction_log import PredictionLog
from candlecast.settings import get_settings
from candlecast.symbols import normalize_symbol
from candlecast.times import HOUR, utc, utc_now

log = logging.getLogger(__name__)

WINDOW = pd.Timedelta(days=7)
#: The reference keeps at most the last 90 days of the training window.
REFERENCE_CAP = pd.Timedelta(days=90)
#: Fewer rows than this on either side and a comparison is null, with a reason.
MIN_RECENT, MIN_REFERENCE = 24, 100
PSI_BINS = 10
#: Share floor of an empty PSI bin (the usual 0.0001), so ln(0) never occurs.
PSI_FLOOR = 1e-4
KS_ALPHA = 0.01
MODERATE, MAJOR = 0.1, 0.25
VERDICTS = ("none", "moderate", "major")
#: The name the live errors take where a feature name would stand (``max_psi_feature``).
ERRORS = "errors"
#: Kinds compared: stationary by construction (unitless, no trend with the price level).
STATIONARY_KINDS = ("return", "volatility", "momentum", "relative volume", "candle shape")
REMEDY = "delete it; the next cycle rewrites it"
#: ``candlecast.feast_store.PRICE_SERVICE``, persistence's service (that module loads Feast).
PRICE_SERVICE = "price_model_v1"


def _kinds() -> dict[str, str]:
    """Every catalogue feature's kind (``tests/unit/test_drift.py`` checks none is missing)."""
    kinds = dict.fromkeys(
        (*PRICE_FEATURES, "open", "high", "low", "pr_24hr_mavg", "pr_24hr_mstd"), "price level"
    )
    kinds |= dict.fromkeys(("upper_shadow", "lower_shadow"), "price level")  # in dollars
    volumes = ("volume", *(f"volume_{i}_hour_ago" for i in LAGS))
    kinds |= dict.fromkeys((*volumes, "volume_24hr_mavg", "volume_24hr_mstd"), "raw volume")
    returns = (
        *(f"percentage_return_{h}_hour" for h in RETURN_HORIZONS),
        *(f"log_return_{h}h" for h in LAGS),
    )
    kinds |= dict.fromkeys(returns, "return")
    kinds |= dict.fromkeys(("volatility_6h", "volatility_24h"), "volatility")
    kinds |= dict.fromkeys(("rsi", "rsi_14"), "momentum")
    kinds["log_volume_rel_24h"] = "relative volume"
    kinds |= dict.fromkeys(("close_dist_24h", "range_rel", "body_rel"), "candle shape")
    kinds |= dict.fromkeys(("hour_sin", "hour_cos", "dow_sin", "dow_cos"), "calendar")
    # v3 groups: realised and seasonal |return| volatility, the peer's returns, volume z
    kinds |= dict.fromkeys((*RVOL_FEATURES, *SEASONAL_FEATURES), "volatility")
    peer = {f"peer_{name}": kinds[name] for name in PEER_SOURCE_FEATURES}
    kinds |= {name: peer[name] for name in CROSS_FEATURES}
    kinds |= dict.fromkeys(VOLUME_FEATURES, "relative volume")
    return kinds


#: Feature name -> kind; only :data:`STATIONARY_KINDS` are compared.
KINDS: dict[str, str] = _kinds()


@dataclass(frozen=True)
class Comparison:
    """One two-sample comparison; the statistics are None when ``reason`` says why."""

    n_reference: int
    n_recent: int
    psi: float | None = None
    ks_statistic: float | None = None
    ks_pvalue: float | None = None
    reason: str | None = None


@dataclass(frozen=True)
class DriftReport:
    """One model version's drift at ``computed_at``; :meth:`to_dict` is its JSON."""

    symbol: str
    model: str
    model_version: str
    computed_at: pd.Timestamp
    window: pd.Timedelta
    reference_start: pd.Timestamp | None = None
    reference_end: pd.Timestamp | None = None
    inputs: dict[str, Comparison] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)  # feature -> why not compared
    errors: Comparison | None = None
    reason: str | None = None  # why nothing could be compared

    @property
    def compared(self) -> dict[str, Comparison]:
        """Every comparison with a statistic, by feature (the live errors as ``errors``)."""
        found = {name: c for name, c in self.inputs.items() if c.psi is not None}
        if self.errors is not None and self.errors.psi is not None:
            found[ERRORS] = self.errors
        return found

    @property
    def max_psi(self) -> tuple[str, float] | None:
        """(feature or ``errors``, PSI) of the largest PSI measured, or None."""
        found = self.compared
        return max(((n, c.psi) for n, c in found.items()), key=lambda i: i[1]) if found else None

    @property
    def ks_alpha(self) -> float | None:
        """The KS level a comparison must reject at to count toward the verdict."""
        return KS_ALPHA / len(self.compared) if self.compared else None

    @property
    def verdict(self) -> tuple[str, str | None, float | None] | None:
        """(band, feature, PSI) of the largest PSI the KS test finds significant.

        ``("none", None, None)`` when none is; None when nothing could be compared.
        """
        if not self.compared:
            return None
        significant = [(n, c.psi) for n, c in self.compared.items() if c.ks_pvalue < self.ks_alpha]
        if not significant:
            return ("none", None, None)
        name, value = max(significant, key=lambda item: item[1])
        return (verdict(value), name, value)

    @property
    def ks_rejected_share(self) -> float | None:
        """Share of the compared inputs whose KS p-value is below :data:`KS_ALPHA`."""
        pvalues = [c.ks_pvalue for c in self.inputs.values() if c.ks_pvalue is not None]
        return sum(p < KS_ALPHA for p in pvalues) / len(pvalues) if pvalues else None

    def to_dict(self) -> dict[str, Any]:
        worst, (band, feature, value) = self.max_psi, self.verdict or (None, None, None)
        return {
            "symbol": self.symbol,
            "model": self.model,
            "model_version": self.model_version,
            "computed_at": self.computed_at.isoformat(),
            "window": _window_name(self.window),
            "recent_start": (self.computed_at - self.window).isoformat(),
            "reference_start": _iso(self.reference_start),
            "reference_end": _iso(self.reference_end),
            "verdict": band,
            "verdict_feature": feature,
            "verdict_psi": value,
            "verdict_ks_alpha": self.ks_alpha,
            "max_psi": None if worst is None else worst[1],
            "max_psi_feature": None if worst is None else worst[0],
            "ks_rejected_share": self.ks_rejected_share,
            "reason": self.reason,
            "inputs": {name: {"kind": KINDS[name], **asdict(c)} for name, c in self.inputs.items()},
            "skipped": dict(self.skipped),
            "errors": None if self.errors is None else asdict(self.errors),
        }


def verdict(value: float | None) -> str | None:
    """The PSI band: ``none`` below 0.1, ``moderate`` up to 0.25, ``major`` above."""
    if value is None:
        return None
    return "major" if value > MAJOR else "moderate" if value >= MODERATE else "none"


def psi(reference: np.ndarray, recent: np.ndarray, bins: int = PSI_BINS) -> float:
    """Population Stability Index over ``bins`` quantile bins of ``reference``.

    ``sum((a - e) * ln(a / e))`` over bins, ``e``/``a`` the reference/recent shares
    (floored at :data:`PSI_FLOOR`): the symmetrised KL divergence, via scipy's ``rel_entr``.
    Tied quantiles (a discrete feature) merge their bins.
    """
    from scipy.special import rel_entr

    edges = np.unique(np.quantile(reference, np.linspace(0, 1, bins + 1)[1:-1]))
    expected, actual = _shares(reference, edges), _shares(recent, edges)
    return float(np.sum(rel_entr(actual, expected) + rel_entr(expected, actual)))


def _shares(values: np.ndarray, edges: np.ndarray) -> np.ndarray:
    counts = np.bincount(np.searchsorted(edges, values, side="right"), minlength=len(edges) + 1)
    return np.maximum(counts / counts.sum(), PSI_FLOOR)


def compare(reference: np.ndarray, recent: np.ndarray) -> Comparison:
    """KS and PSI of two samples (non-finite values dropped); null with a reason if too few."""
    from scipy.stats import ks_2samp

    reference, recent = (_finite(values) for values in (reference, recent))
    sizes = {"n_reference": len(reference), "n_recent": len(recent)}
    if len(recent) < MIN_RECENT:
        return Comparison(**sizes, reason=f"too few recent rows ({len(recent)} < {MIN_RECENT})")
    if len(reference) < MIN_REFERENCE:
        reason = f"too few reference rows ({len(reference)} < {MIN_REFERENCE})"
        return Comparison(**sizes, reason=reason)
    test = ks_2samp(reference, recent)
    return Comparison(
        **sizes,
        psi=psi(reference, recent),
        ks_statistic=float(test.statistic),
        ks_pvalue=float(test.pvalue),
    )


def compare_frames(
    reference: pd.DataFrame, recent: pd.DataFrame, features: Iterable[str]
) -> tuple[dict[str, Comparison], dict[str, str]]:
    """Compare each stationary feature of ``features``; the others are skipped, with why."""
    compared, skipped = {}, {}
    for name in dict.fromkeys(features):
        why = skip_reason(name)
        if why is not None:
            skipped[name] = why
            continue
        compared[name] = compare(_column(reference, name), _column(recent, name))
    return compared, skipped


def skip_reason(feature: str) -> str | None:
    """Why ``feature`` is not compared (a price level, raw volume...), or None if it is."""
    kind = KINDS.get(feature)
    if kind is None:
        return "not in the feature catalogue"
    if kind not in STATIONARY_KINDS:
        return f"{kind}: not stationary" if kind != "calendar" else "calendar: set by the clock"
    return None


def compute(
    spec: ModelSpec, now: pd.Timestamp | None = None, window: pd.Timedelta = WINDOW
) -> DriftReport:
    """Drift of one model version (``spec.version`` is its stored tag, or ``naive``)."""
    now = utc_now() if now is None else utc(now)
    base = {
        "symbol": normalize_symbol(spec.symbol),
        "model": spec.family,
        "model_version": spec.version,
        "computed_at": now,
        "window": window,
    }
    recent_start = now - window
    if spec.family == NAIVE:
        return _naive_report(base, spec, recent_start, now)
    span = reference_window(spec, recent_start)
    if isinstance(span, str):
        return DriftReport(**base, skipped=_skipped(spec.features), reason=span)
    start, end = span
    columns = [f for f in spec.features if skip_reason(f) is None]
    reference = read_features(base["symbol"], columns, start, end)
    recent = _after(read_features(base["symbol"], columns, recent_start, now), recent_start)
    inputs, skipped = compare_frames(reference, recent, spec.features)
    errors = _model_errors(spec, base["symbol"], start, end, recent_start, now)
    return DriftReport(
        **base,
        reference_start=start,
        reference_end=end,
        inputs=inputs,
        skipped=skipped,
        errors=errors,
    )


def reference_window(
    spec: ModelSpec, recent_start: pd.Timestamp
) -> tuple[pd.Timestamp, pd.Timestamp] | str:
    """``[start, end]`` of the reference rows, or why there is none.

    The training window, ending at the recent window's start at the latest, then its
    last :data:`REFERENCE_CAP`.
    """
    if not spec.train_start or not spec.train_end:
        return "the model records no training window"
    end = min(utc(spec.train_end), recent_start)
    start = max(utc(spec.train_start), end - REFERENCE_CAP)
    if end <= start:
        return "the training window lies inside the recent window"
    return start, end


def _naive_report(
    base: dict, spec: ModelSpec, recent_start: pd.Timestamp, now: pd.Timestamp
) -> DriftReport:
    """Persistence: no inputs; its live errors against its errors just before the window."""
    start = recent_start - REFERENCE_CAP
    reference = persistence_errors(base["symbol"], start, recent_start)
    live = live_errors(base["symbol"], NAIVE, NAIVE, recent_start, now)
    return DriftReport(
        **base,
        reference_start=start,
        reference_end=recent_start,
        skipped=_skipped(spec.features),
        errors=compare(reference, live),
    )


def _skipped(features: Iterable[str]) -> dict[str, str]:
    return {name: skip_reason(name) or "no training window" for name in dict.fromkeys(features)}


# --- reading -------------------------------------------------------------------------


def read_features(
    symbol: str, columns: Iterable[str], start: pd.Timestamp, end: pd.Timestamp
) -> pd.DataFrame:
    """``event_timestamp`` and ``columns`` of ``symbol``'s feature rows in ``[start, end]``.

    One DuckDB query over the month files of the span (layout:
    :data:`~candlecast.feature_catalog.FEATURE_FILES` under ``Settings.features_dir``).
    """
    symbol, names = normalize_symbol(symbol), list(dict.fromkeys(columns))
    schema = pa.schema([FEATURE_SCHEMA.field(n) for n in ("event_timestamp", *names)])
    months = f"{start:%Y-%m}", f"{end:%Y-%m}"
    files = [
        path
        for path in sorted(get_settings().features_dir.glob(FEATURE_FILES))
        if path.parent.name == symbol and months[0] <= path.stem <= months[1]
    ]
    if not files:
        return schema.empty_table().to_pandas()
    where = "event_timestamp >= ? AND event_timestamp <= ?"
    params = [start.to_pydatetime(), end.to_pydatetime()]
    with corrupt_file_guard(files, FEATURE_SCHEMA, _feature_remedy):
        return query_parquet(files, schema, where, params, "event_timestamp")


def _feature_remedy(path: Path) -> str:
    return f"delete it, or run `candlecast features --full --symbol {path.parent.name}`"


def live_errors(
    symbol: str, model: str, version: str, start: pd.Timestamp, end: pd.Timestamp
) -> np.ndarray:
    """``abs_error / current_price`` of the version's scored forecasts, target in (start, end]."""
    rows = PredictionLog(get_settings().predictions_dir).read(symbol, since=start)
    rows = rows[
        (rows["model"] == model)
        & (rows["model_version"] == version)
        & (rows["target_time"] > start)
        & (rows["target_time"] <= end)
        & rows["actual_close"].notna()
    ]
    return (rows["abs_error"] / rows["current_price"]).to_numpy(dtype=np.float64)


def persistence_errors(symbol: str, start: pd.Timestamp, end: pd.Timestamp) -> np.ndarray:
    """Persistence's relative errors ``|close(t + 1 h) - close(t)| / close(t)``, t + 1 h in
    ``(start, end]``, from the feature dataset's ``close``."""
    rows = labelled(read_features(symbol, ["close"], start, end))
    rows = rows[rows["event_timestamp"] + HOUR > start]
    return relative_errors(rows, rows["close"].to_numpy())


def labelled(rows: pd.DataFrame) -> pd.DataFrame:
    """``rows`` with a ``next_close`` (the ``close`` of the row one hour later, as in
    training); rows without a next hour are dropped."""
    close = pd.Series(rows["close"].to_numpy(), index=rows["event_timestamp"])
    next_close = close.reindex(rows["event_timestamp"] + HOUR).to_numpy()
    return rows.assign(next_close=next_close).dropna(subset=["next_close"])


def relative_errors(rows: pd.DataFrame, predicted: np.ndarray) -> np.ndarray:
    """``|predicted - next_close| / close`` of labelled rows."""
    error = np.abs(np.asarray(predicted, dtype=np.float64) - rows["next_close"].to_numpy())
    return error / rows["close"].to_numpy(dtype=np.float64)


# --- the errors reference ------------------------------------------------------------

_REFERENCE_SCHEMA = pa.schema(
    [("event_timestamp", pa.timestamp("us", tz="UTC")), ("relative_error", pa.float64())]
)


def _model_errors(
    spec: ModelSpec,
    symbol: str,
    start: pd.Timestamp,
    end: pd.Timestamp,
    recent_start: pd.Timestamp,
    now: pd.Timestamp,
) -> Comparison:
    """The version's live errors against its errors on the reference rows (target <= end)."""
    live = live_errors(symbol, spec.family, spec.version, recent_start, now)
    if not spec.version:
        return Comparison(0, len(live), reason="the spec names no stored version")
    missing = [f for f in spec.features if f not in FEATURE_SCHEMA.names]
    if missing:
        reason = f"features not in the feature dataset: {', '.join(missing)}"
        return Comparison(0, len(live), reason=reason)
    frame = training_errors(spec)
    stamps = frame["event_timestamp"]
    reference = frame.loc[(stamps >= start) & (stamps + HOUR <= end), "relative_error"]
    return compare(reference.to_numpy(), live)


def reference_path(tag: str) -> Path:
    """The cached training-window errors of one stored version."""
    return get_settings().home / "drift" / "reference" / f"{tag.replace(':', '_')}.parquet"


def training_errors(spec: ModelSpec) -> pd.DataFrame:
    """(event_timestamp, relative_error) of the version on its whole training window.

    Read from the cache; computed (model loaded, forward pass) and cached when absent
    or unreadable. Nothing is cached while the window has no feature row yet.
    """
    path = reference_path(spec.version)
    if path.exists():
        try:
            return pq.read_table(path).cast(_REFERENCE_SCHEMA).to_pandas()
        except (*READ_ERRORS, ValueError, KeyError) as exc:
            log.warning("%s is unreadable (%s); recomputing it", path, exc)
    frame = _forecast_training_window(spec)
    if len(frame):
        table = pa.Table.from_pandas(frame, schema=_REFERENCE_SCHEMA, preserve_index=False)
        atomic_write_parquet(table, path)
    return frame


def _forecast_training_window(spec: ModelSpec) -> pd.DataFrame:
    """Run the stored model on its training-window rows; relative error vs the next close."""
    start, end = utc(spec.train_start), utc(spec.train_end)
    rows = labelled(read_features(spec.symbol, [*spec.features, "close"], start, end + HOUR))
    x = rows[list(spec.features)].to_numpy(dtype=np.float64)
    keep = np.isfinite(x).all(axis=1) & (rows["event_timestamp"] <= end).to_numpy()
    rows, x = rows[keep], x[keep]
    if not len(rows):
        return _REFERENCE_SCHEMA.empty_table().to_pandas()
    forward = model_store.get(spec.version).forward()
    predicted = forecast_prices(spec, forward(model_input(spec, x)), rows["close"].to_numpy())
    log.info("%s: %d training-window errors computed for drift", spec.version, len(rows))
    return pd.DataFrame(
        {
            "event_timestamp": rows["event_timestamp"].reset_index(drop=True),
            "relative_error": relative_errors(rows, predicted),
        }
    )


# --- every champion, and the file ----------------------------------------------------


def latest_path() -> Path:
    return get_settings().home / "drift" / "latest.json"


def update(
    symbols: Iterable[str], now: pd.Timestamp | None = None, window: pd.Timedelta = WINDOW
) -> list[DriftReport]:
    """Drift of every champion and of persistence, per symbol; saved to ``latest.json``.

    Entries of other symbols in the file are kept. A model whose drift cannot be
    computed (its artifact fails to load, a corrupt file) gets a report with the error
    as ``reason``: drift is advisory and never stops the cycle.
    """
    now = utc_now() if now is None else utc(now)
    names = [normalize_symbol(s) for s in symbols]
    reports = [_safe(spec, now, window) for name in names for spec in _specs(name)]
    try:
        kept = [r for r in load().values() if r["symbol"] not in names]
    except CorruptFileError as exc:
        log.warning("%s", exc)
        kept = []
    save([*kept, *(r.to_dict() for r in reports)])
    for r in reports:
        log.info("%s %s drift: %s", r.symbol, r.model_version, summary(r.to_dict()))
    return reports


def summary(report: Mapping[str, Any]) -> str:
    """One line of a report: ``PSI 0.31 major (volatility_24h)``, or ``n/a (why)``."""
    if report.get("verdict") is None:
        return "n/a" + (f" ({report['reason']})" if report.get("reason") else "")
    if report["verdict"] == "none":  # the largest PSI, whether or not the KS test rejects
        return f"PSI {report['max_psi']:.2f} none ({report['max_psi_feature']})"
    return f"PSI {report['verdict_psi']:.2f} {report['verdict']} ({report['verdict_feature']})"


def _specs(symbol: str) -> list[ModelSpec]:
    """The champion of each family present, then persistence."""
    found = [model_store.champion(family, symbol) for family in FAMILIES]
    return [m.spec for m in found if m is not None] + [naive_spec(symbol, PRICE_SERVICE)]


def _safe(spec: ModelSpec, now: pd.Timestamp, window: pd.Timedelta) -> DriftReport:
    try:
        return compute(spec, now, window)
    except Exception as exc:  # advisory: one model's failure is its reason, not the cycle's
        log.warning("drift of %s not computed: %s", spec.version, exc, exc_info=True)
        return DriftReport(
            symbol=normalize_symbol(spec.symbol),
            model=spec.family,
            model_version=spec.version,
            computed_at=now,
            window=window,
            reason=f"not computed: {exc}",
        )


def save(reports: list[dict]) -> Path:
    """Replace ``latest.json`` atomically (temp file, fsync, rename)."""
    path = latest_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps({"reports": _clean(reports)}, indent=1, allow_nan=False)
    atomic_write_text(text, path)
    return path


def load() -> dict[tuple[str, str, str], dict]:
    """``latest.json`` by (symbol, model, model_version); {} when it does not exist."""
    path = latest_path()
    try:
        text = path.read_text()
    except FileNotFoundError:
        return {}
    except OSError as exc:
        raise CorruptFileError(path, exc, REMEDY) from exc
    try:
        reports = json.loads(text)["reports"]
        return {(r["symbol"], r["model"], r["model_version"]): r for r in reports}
    except (ValueError, KeyError, TypeError) as exc:
        raise CorruptFileError(path, f"not a drift report: {exc}", REMEDY) from exc


def metric_samples(reports: Iterable[Mapping[str, Any]]) -> list[tuple[str, dict, float]]:
    """(name, labels, value) gauges of report dicts, for a ``/metrics`` exporter.

    ``reports``: ``load().values()``, or the ``drift`` of ``performance.report`` rows.
    Gauges ``candlecast_drift_max_psi``, ``candlecast_drift_ks_rejected_share``,
    ``candlecast_drift_errors_ks_pvalue`` and ``candlecast_drift_level`` (0 none,
    1 moderate, 2 major), labelled by symbol, model and model_version; a null figure
    gives no sample.
    """
    samples = []
    for r in reports:
        labels = {key: str(r[key]) for key in ("symbol", "model", "model_version")}
        errors = r.get("errors") or {}
        level = VERDICTS.index(r["verdict"]) if r.get("verdict") in VERDICTS else None
        for name, value in (
            ("candlecast_drift_max_psi", r.get("max_psi")),
            ("candlecast_drift_ks_rejected_share", r.get("ks_rejected_share")),
            ("candlecast_drift_errors_ks_pvalue", errors.get("ks_pvalue")),
            ("candlecast_drift_level", level),
        ):
            if value is not None:
                samples.append((name, labels, float(value)))
    return samples


# --- small helpers -------------------------------------------------------------------


def _finite(values: Any) -> np.ndarray:
    array = np.asarray(values, dtype=np.float64).reshape(-1)
    return array[np.isfinite(array)]


def _column(frame: pd.DataFrame, name: str) -> np.ndarray:
    return frame[name].to_numpy(dtype=np.float64) if name in frame else np.empty(0)


def _after(frame: pd.DataFrame, start: pd.Timestamp) -> pd.DataFrame:
    return frame[frame["event_timestamp"] > start].reset_index(drop=True)


def _iso(stamp: pd.Timestamp | None) -> str | None:
    return None if stamp is None else stamp.isoformat()


def _window_name(window: pd.Timedelta) -> str:
    hours = int(window / HOUR)
    return f"{hours // 24}d" if hours % 24 == 0 else f"{hours}h"


def _clean(value: Any) -> Any:
    """JSON-ready: NaN and infinities become null (``allow_nan=False`` then never fails)."""
    if isinstance(value, Mapping):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clean(v) for v in value]
    if isinstance(value, float | np.floating):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, np.integer):
        return int(value)
    return value
