"""The prediction log: every forecast the system issued, then its outcome.

Layout (no ``key=value`` folder names, like the feature dataset)::

    $CANDLECAST_HOME/predictions/BTC-USD/2024-06.parquet   # rows by UTC month of target_time
    $CANDLECAST_HOME/predictions/BTC-USD/.lock             # flock shared by its writers

Every file has :data:`PREDICTION_SCHEMA`, sorted by ``(target_time, model)``, one
row per ``(symbol, model, target_time)``: the first forecast issued for an hour is
the one on record, and a rerun or a restart that offers it again changes nothing.
Writes merge into the month files under the symbol folder's lock and replace each
file atomically (:func:`candlecast.parquet_io.atomic_write_parquet`), so a process killed
at any instant leaves every file old or new, never torn, never duplicated.

:meth:`PredictionLog.score` fills the outcome of every forecast whose target hour
is in the candle store: the candle that opens at ``target_time - 1 h`` closes at
``target_time``, and its ``close`` is the actual. An hour with no candle (no trades)
stays null and is reported as missing, never invented.

The whole log is one DuckDB query away::

    SELECT * FROM read_parquet('$CANDLECAST_HOME/predictions/*/*.parquet')

An unreadable file stops every read and write with
:class:`~candlecast.errors.CorruptFileError` naming it; nothing is written then.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Protocol

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from candlecast.contract import FAMILIES, NAIVE
from candlecast.parquet_io import (
    atomic_write_parquet,
    conform,
    corrupt_file_guard,
    folder_lock,
    query_parquet,
    remove_orphans,
)
from candlecast.symbols import normalize_symbol
from candlecast.times import HOUR, utc

log = logging.getLogger(__name__)

_TIME = pa.timestamp("us", tz="UTC")
PREDICTION_SCHEMA = pa.schema(
    [
        pa.field("symbol", pa.string(), nullable=False),
        pa.field("model", pa.string(), nullable=False),  # lasso | lgbm | cnn | lstm | naive
        pa.field("model_version", pa.string(), nullable=False),  # stored tag, or "naive"
        pa.field("model_trained_until", _TIME),  # ModelSpec.cut: the training data cut
        pa.field("feature_service", pa.string(), nullable=False),
        pa.field("is_default", pa.bool_(), nullable=False),  # what /predict answers by default
        pa.field("issued_at", _TIME, nullable=False),
        pa.field("as_of", _TIME, nullable=False),  # close time of the candle forecast from
        pa.field("target_time", _TIME, nullable=False),  # as_of + 1 h
        pa.field("current_price", pa.float64(), nullable=False),  # close at as_of
        pa.field("predicted_price", pa.float64(), nullable=False),
        # Central intervals and P(close > current) (candlecast.intervals); null when the
        # model has no calibration, and in rows logged before forecasts carried them.
        pa.field("lower_80", pa.float64()),
        pa.field("upper_80", pa.float64()),
        pa.field("lower_95", pa.float64()),
        pa.field("upper_95", pa.float64()),
        pa.field("p_up", pa.float64()),
        pa.field("actual_close", pa.float64()),  # close at target_time; null until known
        pa.field("abs_error", pa.float64()),  # |predicted - actual|
        pa.field("persistence_abs_error", pa.float64()),  # |current - actual|
    ]
)
PREDICTION_COLUMNS = PREDICTION_SCHEMA.names
#: One row per key: the first forecast issued for an hour is the one on record.
KEY = ["symbol", "model", "target_time"]
MODELS = (*FAMILIES, NAIVE)
#: Filled by :meth:`PredictionLog.score`; any value offered to ``append`` is recomputed.
SCORE_COLUMNS = ["actual_close", "abs_error", "persistence_abs_error"]
#: Columns ``append`` fills when a row leaves them out.
INTERVAL_COLUMNS = ["lower_80", "upper_80", "lower_95", "upper_95", "p_up"]
OPTIONAL_COLUMNS = {"model_trained_until", "target_time", *INTERVAL_COLUMNS, *SCORE_COLUMNS}
_TIME_COLUMNS = ["model_trained_until", "issued_at", "as_of", "target_time"]


class Candles(Protocol):
    """What scoring reads: the candle store (``ingestion.store.CandleStore``)."""

    def read(self, symbol: str, start: pd.Timestamp | None = None) -> pd.DataFrame: ...


class PredictionRowError(ValueError):
    """A forecast row that breaks the log's schema; the message names the column."""


@dataclass(frozen=True)
class AppendResult:
    """What an append did: rows offered (after de-duplication), newly logged, already there."""

    offered: int
    new: int
    existing: int


@dataclass(frozen=True)
class ScoreResult:
    """What a scoring pass did.

    ``scored``: rows whose outcome was filled now. ``missing``: ``(symbol, target_time)``
    of the hours inside the stored candle history that have no candle (no trades): their
    rows stay null. ``waiting``: rows whose target hour is after the symbol's last stored
    candle (the next ``update`` brings it).
    """

    scored: int
    missing: list[tuple[str, pd.Timestamp]] = field(default_factory=list)
    waiting: int = 0


@dataclass(frozen=True)
class _SymbolScore:
    updates: list[tuple[Path, pa.Table, int]]  # (month file, its new content, rows scored)
    missing: list[pd.Timestamp]
    waiting: int


class PredictionLog:
    """Append, score and read logged forecasts under ``root``."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    @property
    def glob(self) -> str:
        """Absolute glob of every log file, for ``read_parquet``."""
        return str(self.root / "*" / "*.parquet")

    def files(self, symbol: str | None = None) -> list[Path]:
        pattern = f"{normalize_symbol(symbol)}/*.parquet" if symbol else "*/*.parquet"
        return sorted(self.root.glob(pattern))

    def symbols(self) -> list[str]:
        return sorted({p.parent.name for p in self.files()})

    def path(self, symbol: str, target_time: pd.Timestamp) -> Path:
        """The month file holding ``symbol``'s forecasts for ``target_time``."""
        return self.root / normalize_symbol(symbol) / f"{utc(target_time):%Y-%m}.parquet"

    def guard(self, files: list[Path] | None = None) -> contextlib.AbstractContextManager[None]:
        """Turn a failed read of ``files`` (default: all) into a CorruptFileError naming one."""
        return corrupt_file_guard(
            self.files() if files is None else files, PREDICTION_SCHEMA, self.remedy
        )

    @staticmethod
    def remedy(path: Path) -> str:
        """What to do about an unreadable log file: issued forecasts cannot be re-issued."""
        return (
            f"move it out of {path.parent} (its forecasts cannot be re-issued, so keep it "
            f"to inspect); the log then carries on without {path.stem}"
        )

    def read(
        self, symbol: str | None = None, since: datetime | pd.Timestamp | None = None
    ) -> pd.DataFrame:
        """Logged rows (of ``symbol``, with ``target_time >= since``), via DuckDB.

        Sorted by (symbol, target_time, model).
        """
        files = self.files(symbol)
        if not files:
            return empty_predictions()
        where, params = "TRUE", []
        if since is not None:
            where, params = "target_time >= ?", [utc(since).to_pydatetime()]
        with self.guard(files):
            return query_parquet(
                files, PREDICTION_SCHEMA, where, params, "symbol, target_time, model"
            )

    def append(self, rows: pd.DataFrame | Iterable[Mapping]) -> AppendResult:
        """Log forecasts; a row whose key is already logged is left as it was.

        Within ``rows``, the earliest ``issued_at`` of a key wins. Every touched month
        is read before any is written, so an unreadable one leaves the log as it was.
        """
        frame = to_prediction_frame(rows)
        if frame.empty:
            return AppendResult(0, 0, 0)
        frame = frame.sort_values("issued_at", kind="stable").drop_duplicates(KEY, keep="first")
        new, merged = 0, []
        with self._locked(frame["symbol"].unique()):
            for (symbol, month), part in _by_month(frame):
                path = self.root / symbol / f"{month}.parquet"
                stored = self._read_file(path)
                fresh = part[~_keys(part).isin(_keys(stored))] if stored is not None else part
                if fresh.empty:
                    continue
                new += len(fresh)
                rows_now = fresh if stored is None else pd.concat([stored, fresh])
                merged.append((path, _to_table(rows_now), len(fresh)))
            for path, table, fresh in merged:
                atomic_write_parquet(table, path)
                log.debug("%s: %d new forecasts, %d rows now", path, fresh, table.num_rows)
        return AppendResult(offered=len(frame), new=new, existing=len(frame) - new)

    def score(self, candles: Candles) -> ScoreResult:
        """Fill the outcome of every unscored forecast whose target hour has a stored candle.

        Idempotent: scored rows are never touched, and a rerun with no new candles
        writes nothing. Every log file is read before any is written, so an unreadable
        one leaves the whole log as it was.
        """
        symbols = self.symbols()
        scored, waiting, missing, updates = 0, 0, [], []
        with self._locked(symbols):
            stored = {symbol: self._read_all(symbol) for symbol in symbols}
            for symbol in symbols:
                found = self._score_symbol(symbol, stored[symbol], candles)
                updates += found.updates
                waiting += found.waiting
                missing += [(symbol, stamp) for stamp in found.missing]
            for path, table, count in updates:
                atomic_write_parquet(table, path)
                log.debug("%s: %d forecasts scored", path, count)
                scored += count
        return ScoreResult(scored=scored, missing=missing, waiting=waiting)

    def _score_symbol(
        self, symbol: str, stored: dict[Path, pd.DataFrame], candles: Candles
    ) -> _SymbolScore:
        """The month files of ``symbol`` that gain outcomes, and the hours still unknown."""
        logged = pd.concat(stored.values(), ignore_index=True)
        open_rows = logged[logged["actual_close"].isna()]
        if open_rows.empty:
            return _SymbolScore([], [], 0)
        # The candle opening at target_time - 1 h closes at target_time: its close is the actual.
        history = candles.read(symbol, start=open_rows["target_time"].min() - HOUR)
        actual = pd.Series(
            history["close"].to_numpy(), index=history["time"] + HOUR, dtype="float64"
        )
        updates = []
        for path, frame in stored.items():
            todo = frame["actual_close"].isna() & frame["target_time"].isin(actual.index)
            if todo.any():
                frame = frame.copy()
                frame.loc[todo, "actual_close"] = actual.loc[
                    frame.loc[todo, "target_time"]
                ].to_numpy()
                updates.append((path, _to_table(_with_errors(frame)), int(todo.sum())))
        unknown = open_rows.loc[~open_rows["target_time"].isin(actual.index), "target_time"]
        # After the last stored candle: not known yet. Before it: no candle (no trades).
        later = unknown > actual.index.max() if len(actual) else unknown.notna()
        gaps = sorted(pd.Timestamp(t) for t in unknown[~later].unique())
        if gaps:
            shown = ", ".join(f"{t:%Y-%m-%d %H:%M}" for t in gaps[:5])
            log.info(
                "%s: %d target hours have no candle (no trades); their forecasts stay "
                "unscored: %s%s",
                symbol,
                len(gaps),
                shown,
                " ..." if len(gaps) > 5 else "",
            )
        return _SymbolScore(updates, gaps, int(later.sum()))

    def _read_all(self, symbol: str) -> dict[Path, pd.DataFrame]:
        return {path: self._read_file(path) for path in self.files(symbol)}

    def _read_file(self, path: Path) -> pd.DataFrame | None:
        """One month file as a frame in the log's dtypes, or None when it does not exist."""
        if not path.exists():
            return None
        with self.guard([path]):
            return conform(pq.read_table(path), PREDICTION_SCHEMA).to_pandas()

    @contextlib.contextmanager
    def _locked(self, symbols: Iterable[str]) -> Iterator[None]:
        """Hold the folder lock of every symbol (sorted: writers never deadlock).

        Holding it also means any temp file in the folder is an orphan of a killed
        writer, so it is removed here.
        """
        with contextlib.ExitStack() as locks:
            for symbol in sorted(set(symbols)):
                folder = self.root / symbol
                locks.enter_context(folder_lock(folder))
                remove_orphans(folder)
            yield


def empty_predictions() -> pd.DataFrame:
    return PREDICTION_SCHEMA.empty_table().to_pandas()


def to_prediction_frame(rows: pd.DataFrame | Iterable[Mapping]) -> pd.DataFrame:
    """Check and coerce forecast rows to the log's columns and dtypes.

    ``target_time`` defaults to ``as_of + 1 h``; ``model_trained_until`` (an ISO string
    such as ``ModelSpec.cut`` or a time) may be absent or null. Score columns are
    derived from ``actual_close`` when it is given, else left null.
    """
    frame = rows.copy() if isinstance(rows, pd.DataFrame) else pd.DataFrame(list(rows))
    if frame.empty:
        return empty_predictions()
    unknown = sorted(set(frame.columns) - set(PREDICTION_COLUMNS))
    missing = [c for c in PREDICTION_COLUMNS if c not in frame.columns]
    required = [c for c in missing if c not in OPTIONAL_COLUMNS]
    if unknown or required:
        raise PredictionRowError(
            f"forecast rows: unknown columns {unknown}, missing columns {required}"
        )
    for column in missing:
        frame[column] = None
    frame = frame[PREDICTION_COLUMNS].reset_index(drop=True)
    for column in PREDICTION_COLUMNS:
        if column not in OPTIONAL_COLUMNS and frame[column].isna().any():
            raise PredictionRowError(f"forecast rows: {column} is empty in some rows")
    frame["symbol"] = frame["symbol"].map(normalize_symbol)
    frame["model"] = frame["model"].astype(str)
    bad_models = sorted(set(frame["model"]) - set(MODELS))
    if bad_models:
        raise PredictionRowError(
            f"forecast rows: unknown model {bad_models}: expected one of {', '.join(MODELS)}"
        )
    for column in ("model_version", "feature_service"):
        frame[column] = frame[column].astype(str)
    frame["is_default"] = frame["is_default"].astype(bool)
    for column in _TIME_COLUMNS:
        try:
            stamps = pd.to_datetime(frame[column], utc=True, format="ISO8601")
        except (ValueError, TypeError) as exc:
            raise PredictionRowError(f"forecast rows: {column} is not a time ({exc})") from None
        frame[column] = stamps.astype("datetime64[us, UTC]")
    if (frame["as_of"] != frame["as_of"].dt.floor("h")).any():
        raise PredictionRowError("forecast rows: as_of must be on the hour (a candle close)")
    expected = frame["as_of"] + HOUR
    frame["target_time"] = frame["target_time"].fillna(expected)
    if (frame["target_time"] != expected).any():
        raise PredictionRowError("forecast rows: target_time must be as_of + 1 h")
    for column in INTERVAL_COLUMNS:
        frame[column] = frame[column].astype("float64")
    for column in ("current_price", "predicted_price", "actual_close"):
        frame[column] = frame[column].astype("float64")
        values = frame[column].dropna()
        if not (np.isfinite(values) & (values > 0)).all():
            raise PredictionRowError(f"forecast rows: {column} must be a finite price > 0")
    return _with_errors(frame)


def _with_errors(frame: pd.DataFrame) -> pd.DataFrame:
    """Derive the two absolute errors from ``actual_close`` (null while it is)."""
    frame["abs_error"] = (frame["predicted_price"] - frame["actual_close"]).abs()
    frame["persistence_abs_error"] = (frame["current_price"] - frame["actual_close"]).abs()
    return frame


def _keys(frame: pd.DataFrame) -> pd.MultiIndex:
    return pd.MultiIndex.from_frame(frame[["model", "target_time"]])


def _by_month(frame: pd.DataFrame) -> Iterator[tuple[tuple[str, str], pd.DataFrame]]:
    months = frame["target_time"].dt.strftime("%Y-%m")
    yield from frame.groupby([frame["symbol"], months], sort=True)


def _to_table(frame: pd.DataFrame) -> pa.Table:
    ordered = frame.sort_values(["target_time", "model"], kind="stable").reset_index(drop=True)
    return pa.Table.from_pandas(
        ordered[PREDICTION_COLUMNS], schema=PREDICTION_SCHEMA, preserve_index=False
    )
