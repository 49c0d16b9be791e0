"""Point-in-time training data: Feast features joined to next-hour labels from the candle store.

Entity rows are ``(symbol, candle close time)`` for every completed candle
whose next hour's close is known. Features come from a Feast FeatureService
(point-in-time correct); labels come from the candle store, so a feature can
never be its own label by construction.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np
import pandas as pd

from candlecast import contract
from candlecast.contract import check_target
from candlecast.errors import BadInput
from candlecast.times import HOUR

KEYS = ["symbol", "event_timestamp"]


class DatasetError(BadInput, RuntimeError):
    """The data a command needs is missing; the message names the command that makes it."""


@dataclass
class LabelledFrame:
    """Rows sorted by time: ``KEYS``, the features, ``price_now`` and ``next_close``.

    ``price_now`` is the close of the candle ending at ``event_timestamp`` (what
    persistence predicts); ``next_close`` is the close one hour later (the label).
    """

    frame: pd.DataFrame
    features: list[str]
    target: str
    symbol: str
    feature_service: str

    def with_target(self, target: str) -> LabelledFrame:
        check_target(target)
        return LabelledFrame(self.frame, self.features, target, self.symbol, self.feature_service)

    def until(self, cut: pd.Timestamp) -> pd.DataFrame:
        """Rows whose label was known by ``cut`` (the training set of a model cut there)."""
        return self.frame[self.frame["event_timestamp"] + HOUR <= cut]


def label_rows(candles: pd.DataFrame) -> pd.DataFrame:
    """Entity rows with the current and next-hour close, only where the next hour is known.

    ``event_timestamp`` is the candle close time (open + 1h), matching the
    feature timestamps; the next close is taken only from the candle that opens
    exactly one hour later, so a gap never produces a wrong label.
    """
    ordered = candles.sort_values(["symbol", "time"], kind="stable")
    stamp = pd.to_datetime(ordered["time"], utc=True).astype("datetime64[ns, UTC]")
    nxt = ordered.groupby("symbol", sort=False)
    next_time = stamp.groupby(ordered["symbol"], sort=False).shift(-1)
    next_close = nxt["close"].shift(-1).where(next_time == stamp + HOUR)
    rows = pd.DataFrame(
        {
            "symbol": ordered["symbol"].astype(str),
            "event_timestamp": stamp + HOUR,
            "price_now": ordered["close"].astype(float),
            "next_close": next_close.astype(float),
        }
    )
    return rows.dropna(subset=["next_close"]).reset_index(drop=True)


def join_features(rows: pd.DataFrame, features: pd.DataFrame, names: list[str]) -> pd.DataFrame:
    """Attach features to label rows by key (Feast returns rows in its own order).

    Rows whose features are incomplete (the warm-up hours of lagged features)
    are dropped; the result is sorted by time.
    """
    feats = features[[*KEYS, *names]].copy()
    feats["event_timestamp"] = pd.to_datetime(feats["event_timestamp"], utc=True).astype(
        "datetime64[ns, UTC]"
    )
    merged = rows.merge(feats, on=KEYS, how="inner", validate="one_to_one")
    merged = merged.replace([np.inf, -np.inf], np.nan).dropna(subset=names)
    return merged.sort_values(KEYS, kind="stable").reset_index(drop=True)


def target_values(frame: pd.DataFrame, target: str) -> np.ndarray:
    """The training target of labelled rows (the contract's :func:`target_values`)."""
    return contract.target_values(frame["next_close"], frame["price_now"], target)


def fingerprint(frame: pd.DataFrame, features: list[str]) -> str:
    """sha256 of the rows a model was trained on (keys, features, labels), order-independent."""
    cols = [*KEYS, *features, "price_now", "next_close"]
    hashed = pd.util.hash_pandas_object(frame[cols].sort_values(KEYS), index=False)
    return hashlib.sha256(hashed.to_numpy().tobytes()).hexdigest()


def load_dataset(symbol: str, feature_service: str, target: str = "return") -> LabelledFrame:
    """Labelled rows for ``symbol``: candle-store labels joined to Feast's historical features.

    Raises :class:`DatasetError` naming the command to run when candles or
    features are missing, ``CorruptFileError`` naming a file that cannot be read.
    """
    from candlecast import feast_store
    from candlecast.settings import get_settings
    from candlecast.symbols import normalize_symbol
    from ingestion.feature_dataset import FeatureDataset
    from ingestion.store import CandleStore

    check_target(target)
    symbol = normalize_symbol(symbol)
    candles = CandleStore(get_settings().candles_dir).read(symbol)
    if candles.empty:
        raise DatasetError(
            f"no candles stored for {symbol}: load them first with `candlecast "
            f"backfill --symbol {symbol}` or `candlecast load-csv FILE --symbol {symbol}`"
        )
    features_cmd = f"`candlecast features --symbol {symbol}`"
    dataset = FeatureDataset(get_settings().features_dir)
    files = dataset.files(symbol)
    if not files:
        raise DatasetError(f"no feature rows computed for {symbol} yet: run {features_cmd}")
    rows = label_rows(candles)
    store = feast_store.ensure_applied()
    feast_store.feature_service(feature_service, store)  # an unknown name says which exist
    names = feast_store.feature_names(feature_service, store)
    # The join reads the symbol's own files only (its rows hold the peer's columns too);
    # an unreadable one is named, with what to do about it.
    with dataset.guard(files):
        features = feast_store.historical_features(
            rows[KEYS], feature_service, store, files=dataset.symbol_glob(symbol)
        )
    frame = join_features(rows, features, names)
    if frame.empty:
        raise DatasetError(_no_rows_reason(symbol, feature_service, features, names, features_cmd))
    return LabelledFrame(frame, names, target, symbol, feature_service)


def _no_rows_reason(
    symbol: str, service: str, features: pd.DataFrame, names: list[str], features_cmd: str
) -> str:
    """Why no row has every feature: none computed, or some features are never present."""
    never = [n for n in names if n in features and features[n].isna().all()]
    if not never or len(never) == len(names):
        return f"no features for {symbol} in {service}: run {features_cmd}"
    from candlecast.feature_catalog import CROSS_FEATURES, peer_symbol

    if set(never) <= set(CROSS_FEATURES):
        peer = peer_symbol(symbol)
        return (
            f"{service} needs the cross-asset features of {symbol}'s peer {peer}, which has "
            f"no candles here: load {peer} (`candlecast backfill --symbol {peer}`), then run "
            f"{features_cmd}, or train on a service without the cross group"
        )
    shown = ", ".join(never[:5]) + (", ..." if len(never) > 5 else "")
    return (
        f"no row of {symbol} has every feature of {service}: {len(never)} are never present "
        f"({shown}); more candle history may fill them, then run {features_cmd}"
    )
