"""The offline feature dataset Feast reads, and its incremental extension.

Layout (no ``key=value`` folder names, so DuckDB's hive auto-detection never
adds a second ``symbol`` column)::

    $CANDLECAST_HOME/features/BTC-USD/2024-01.parquet   # rows by UTC month of event_timestamp

Every file has :data:`ingestion.features.FEATURE_SCHEMA`, sorted by
``event_timestamp``, one row per timestamp, and is replaced atomically.

Extending a symbol computes only rows after its latest feature row, from a
bounded look-back of candles (:data:`LOOKBACK`). If the candle history before
that row changed since (a backfilled gap), the symbol is recomputed in full,
because rows after a filled gap get new lag values.

The cross-asset columns also read the peer's candles (``feature_catalog.peer_symbol``),
which arrive on their own schedule: the hourly job may store BTC's candle before
ETH's. ``<SYMBOL>/peer.json`` (:class:`PeerState`) records the peer's candles the
stored rows saw. Peer candles that closed after that record are recomputed into the
rows they reach (from the first such close on, not only after the latest row); peer
candles added before it (a backfilled peer gap) recompute the symbol in full. A
missing or unreadable record is a full recompute too.

An unreadable file stops the job with :class:`~candlecast.errors.CorruptFileError`
naming it; ``features --full`` rebuilds a symbol without reading its old files.
"""

from __future__ import annotations

import json
import logging
import time
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from candlecast.feature_catalog import FEATURE_FILES, peer_symbol
from candlecast.parquet_io import (
    atomic_write_parquet,
    atomic_write_text,
    corrupt_file_guard,
    duckdb_connection,
    folder_lock,
)
from candlecast.symbols import normalize_symbol
from candlecast.times import HOUR, utc
from ingestion.features import FEATURE_SCHEMA, LOOKBACK_HOURS, compute_features
from ingestion.store import CandleStore

log = logging.getLogger(__name__)

#: Candles read before the first new row: the longest window plus one hour of margin.
LOOKBACK = pd.Timedelta(hours=LOOKBACK_HOURS + 1)
#: Beside a symbol's month files: the peer candles its rows were computed with.
PEER_STATE_FILE = "peer.json"
#: Before any candle: the "closed by" of a peer that had no candles.
_EPOCH = pd.Timestamp(0, tz="UTC")


@dataclass(frozen=True)
class PeerState:
    """The peer's candles when a symbol's rows were last computed: ``count`` of them,
    the newest closing at ``closed_by`` (None: the peer had no candles)."""

    peer: str
    closed_by: pd.Timestamp | None
    count: int

    def to_json(self) -> str:
        closed_by = None if self.closed_by is None else self.closed_by.isoformat()
        return json.dumps({"peer": self.peer, "closed_by": closed_by, "count": self.count})

    @classmethod
    def from_json(cls, text: str) -> PeerState:
        raw = json.loads(text)
        closed_by = None if raw["closed_by"] is None else pd.Timestamp(raw["closed_by"])
        return cls(str(raw["peer"]), closed_by, int(raw["count"]))


@dataclass(frozen=True)
class ExtendResult:
    """What an extension did for one symbol; ``rows`` are the rows it wrote: the new ones,
    and the stored ones recomputed because new peer candles reach them."""

    symbol: str
    rows: pa.Table
    full: bool

    @property
    def count(self) -> int:
        return self.rows.num_rows

    def summary(self) -> ExtendSummary:
        """The outcome without the rows, for a job over many symbols to keep."""
        return ExtendSummary(self.symbol, self.count, self.full)


@dataclass(frozen=True)
class ExtendSummary:
    """What an extension did for one symbol, without the rows it wrote (they are stored).

    A batch job keeps one per symbol: keeping every symbol's rows until the job returns
    made its memory grow with symbols x hours (~1.2 KB a row, GBs at 200 symbols).
    """

    symbol: str
    count: int
    full: bool


class FeatureDataset:
    """Read and atomically merge feature rows under ``root``."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    @property
    def glob(self) -> str:
        """Absolute glob of every feature file: the Feast FileSource path."""
        return str(self.root / FEATURE_FILES)

    def symbol_glob(self, symbol: str) -> str:
        """Absolute glob of one symbol's feature files (a narrower FileSource path)."""
        return str(self.root / normalize_symbol(symbol) / "*.parquet")

    def files(self, symbol: str | None = None) -> list[Path]:
        pattern = f"{normalize_symbol(symbol)}/*.parquet" if symbol else FEATURE_FILES
        return sorted(self.root.glob(pattern))

    def symbols(self) -> list[str]:
        return sorted({p.parent.name for p in self.files()})

    def guard(self, files: list[Path] | None = None) -> AbstractContextManager[None]:
        """Turn a failed read of ``files`` (default: all) into a CorruptFileError naming one."""
        return corrupt_file_guard(
            self.files() if files is None else files, FEATURE_SCHEMA, self.remedy
        )

    @staticmethod
    def remedy(path: Path) -> str:
        """What to do about an unreadable feature file: it is derived, so recompute it."""
        return f"delete it, or run `candlecast features --full --symbol {path.parent.name}`"

    def read(self, symbol: str | None = None) -> pd.DataFrame:
        """All rows (of ``symbol``), sorted by (symbol, event_timestamp)."""
        files = self.files(symbol)
        if not files:
            return FEATURE_SCHEMA.empty_table().to_pandas()
        with self.guard(files):
            table = pa.concat_tables([pq.read_table(f).cast(FEATURE_SCHEMA) for f in files])
        return table.sort_by(
            [("symbol", "ascending"), ("event_timestamp", "ascending")]
        ).to_pandas()

    def locked(self, symbol: str) -> AbstractContextManager[None]:
        """Serialise extensions of one symbol: read-latest, compute, write is one step."""
        return folder_lock(self.root / normalize_symbol(symbol))

    def peer_state(self, symbol: str) -> PeerState | None:
        """The record of the peer candles ``symbol``'s rows saw; None if absent or unreadable."""
        path = self.root / normalize_symbol(symbol) / PEER_STATE_FILE
        try:
            return PeerState.from_json(path.read_text())
        except (OSError, ValueError, KeyError, TypeError):  # unreadable: recompute, then rewrite
            return None

    def save_peer_state(self, symbol: str, state: PeerState) -> None:
        atomic_write_text(state.to_json(), self.root / normalize_symbol(symbol) / PEER_STATE_FILE)

    def has_row(self, symbol: str, stamp: datetime) -> bool:
        """Whether ``symbol`` has a feature row at exactly ``stamp`` (a candle closed then).

        Feast's point-in-time join would answer an hour without a candle with the
        previous hour's row (within the TTL); callers that mean "this hour" ask here.
        """
        stamp = pd.Timestamp(stamp).tz_convert("UTC")
        path = self.root / normalize_symbol(symbol) / f"{stamp:%Y-%m}.parquet"
        if not path.exists():
            return False
        with self.guard([path]):
            column = pq.read_table(path, columns=["event_timestamp"]).column(0)
        return bool(pc.any(pc.equal(column, pa.scalar(stamp, column.type))).as_py())

    def time_range(
        self, symbols: list[str] | None = None
    ) -> tuple[pd.Timestamp, pd.Timestamp] | None:
        """(first, last) event_timestamp over ``symbols`` (all by default), key column only."""
        names = symbols or self.symbols()
        files = [f for name in names for f in self.files(name)]
        if not files:
            return None
        stamps = self._stamps(files)
        if len(stamps) == 0:
            return None
        low, high = pc.min_max(stamps).values()
        return pd.Timestamp(low.as_py()), pd.Timestamp(high.as_py())

    def latest(self, symbols: list[str] | None = None) -> dict[str, pd.Timestamp]:
        """Each symbol's newest event_timestamp (symbols with no rows are left out).

        Files are named by the UTC month of their rows, so the newest row is in the last
        non-empty file: one key-column read per symbol however long its history, which
        is what lets materialize start near the end instead of at the first row.
        """
        found = {}
        for name in symbols or self.symbols():
            for path in reversed(self.files(name)):
                stamps = self._stamps([path])
                if len(stamps):
                    found[normalize_symbol(name)] = pd.Timestamp(pc.max(stamps).as_py())
                    break
        return found

    def stats(self, symbol: str) -> tuple[pd.Timestamp | None, int]:
        """(latest event_timestamp, row count) of ``symbol``, from the files' key column."""
        files = self.files(symbol)
        if not files:
            return None, 0
        stamps = self._stamps(files)
        return pd.Timestamp(pc.max(stamps).as_py()), len(stamps)

    def write(self, rows: pa.Table) -> None:
        """Merge rows into their month files; a recomputed row replaces the stored one.

        Every touched month is read before any is written, so an unreadable one
        leaves the dataset as it was.
        """
        rows = rows.cast(FEATURE_SCHEMA)
        merged = []
        for symbol, month, part in _by_month(rows):
            path = self.root / symbol / f"{month}.parquet"
            if path.exists():
                with self.guard([path]):
                    stored = pq.read_table(path).cast(FEATURE_SCHEMA)
                keep = pc.invert(pc.is_in(stored["event_timestamp"], part["event_timestamp"]))
                part = pa.concat_tables([stored.filter(keep), part])
            merged.append((path, part.sort_by("event_timestamp")))
        for path, table in merged:
            atomic_write_parquet(table, path)
            log.debug("%s: %d rows", path, table.num_rows)

    def replace(self, symbol: str, rows: pa.Table) -> None:
        """Make ``rows`` the whole dataset of ``symbol`` (full recompute).

        Month files are overwritten, never merged: a stored row with no counterpart in
        the recompute (candles that were replaced, e.g. a re-generated sample) must go.
        A crash part-way leaves a mix whose row count no longer matches the candles, so
        the next run recomputes in full again.
        """
        old = set(self.files(symbol))
        written = set()
        for part_symbol, month, part in _by_month(rows.cast(FEATURE_SCHEMA)):
            path = self.root / part_symbol / f"{month}.parquet"
            atomic_write_parquet(part.sort_by("event_timestamp"), path)
            written.add(path)
        for path in old - written:
            path.unlink()
        log.debug(
            "%s: %d rows in %d files, %d removed",
            symbol,
            rows.num_rows,
            len(written),
            len(old - written),
        )

    def _stamps(self, files: list[Path]) -> pa.Array:
        """The event_timestamp column of ``files``: the key alone, not 100 feature columns."""
        with self.guard(files):
            return pa.concat_arrays(
                [
                    pq.read_table(f, columns=["event_timestamp"]).column(0).combine_chunks()
                    for f in files
                ]
            )


def _by_month(rows: pa.Table) -> list[tuple[str, str, pa.Table]]:
    if rows.num_rows == 0:
        return []
    frame = pa.table(
        {
            "symbol": rows["symbol"],
            "month": pc.strftime(rows["event_timestamp"], format="%Y-%m"),
        }
    ).to_pandas()
    parts = []
    for (symbol, month), index in frame.groupby(["symbol", "month"], sort=True).indices.items():
        parts.append((str(symbol), str(month), rows.take(pa.array(index))))
    return parts


def extend_features(
    candles: CandleStore, dataset: FeatureDataset, symbol: str, full: bool = False
) -> ExtendResult:
    """Compute the feature rows of ``symbol`` that the dataset lacks and store them.

    ``full`` recomputes without reading the stored rows (so it also replaces an
    unreadable file). Rows that new peer candles reach are recomputed too.
    """
    symbol = normalize_symbol(symbol)
    peer = peer_symbol(symbol)
    started = time.perf_counter()
    with dataset.locked(symbol):  # `features` and the hourly `update` may overlap
        # Taken before any candle is read: a peer candle stored during this run is
        # after the record, so the next run recomputes the rows it reaches.
        seen = _peer_now(candles, peer)
        since, reason = (None, "asked for") if full else _recompute_after(candles, dataset, symbol)
        if since is None:
            rows = compute_features(_candles(candles, symbol, peer), symbols=[symbol])
            dataset.replace(symbol, rows)
        else:
            recent = _candles(candles, symbol, peer, start=since - LOOKBACK)
            rows = compute_features(recent, since=since, symbols=[symbol])
            dataset.write(rows)
        if seen != dataset.peer_state(symbol):  # after the rows: a crash between recomputes
            dataset.save_peer_state(symbol, seen)
        result = ExtendResult(symbol, rows, full=since is None)
    log.info(
        "%s features: %d new rows, %s (%s), %.2f s",
        symbol,
        result.count,
        "full" if result.full else "incremental",
        reason,
        time.perf_counter() - started,
    )
    return result


def _recompute_after(
    candles: CandleStore, dataset: FeatureDataset, symbol: str
) -> tuple[pd.Timestamp | None, str]:
    """(close time after which rows are recomputed, None for all of them; the reason)."""
    latest, count = dataset.stats(symbol)
    if latest is None:
        return None, "no rows yet"
    if _candles_closed_by(candles, symbol, latest) != count:
        return None, "history changed"
    state = dataset.peer_state(symbol)
    if state is None or state.peer != peer_symbol(symbol):
        return None, "no record of the peer candles its rows saw"
    before, first_new = _peer_changes(candles, state, latest)
    if before != state.count:
        return None, f"{state.peer} history changed"
    after = f"after {latest:%Y-%m-%dT%H:%MZ}"
    if first_new is not None:  # rows from that close on have a new peer candle in reach
        return first_new - HOUR, f"{after}, {state.peer} candles from {first_new:%Y-%m-%dT%H:%MZ}"
    return latest, after


def _candles(
    candles: CandleStore, symbol: str, peer: str, start: datetime | None = None
) -> pd.DataFrame:
    """Candles of ``symbol`` and of its peer (for the cross-asset columns) from ``start``."""
    parts = [candles.read(name, start=start) for name in (symbol, peer)]
    return pd.concat([p for p in parts if not p.empty] or parts[:1], ignore_index=True)


def _peer_query(candles: CandleStore, peer: str, select: str, params: list) -> tuple:
    """One row of ``select`` (its ``?`` bound to ``params``) over the peer's candles; () if none."""
    files = candles.files(peer)
    if not files:
        return ()
    sql = f"SELECT {select} FROM read_parquet(?, hive_partitioning=false)"
    with candles.guard(files), duckdb_connection() as con:
        return con.execute(sql, [*params, [str(f) for f in files]]).fetchone()


def _peer_now(candles: CandleStore, peer: str) -> PeerState:
    """The peer's candles as they are now: how many, and when the newest closed."""
    found = _peer_query(candles, peer, "count(*), max(time)", [])
    if not found or not found[0]:
        return PeerState(peer, None, 0)
    return PeerState(peer, utc(found[1]) + HOUR, int(found[0]))


def _peer_changes(
    candles: CandleStore, state: PeerState, latest: pd.Timestamp
) -> tuple[int, pd.Timestamp | None]:
    """(peer candles now closed by ``state.closed_by``, first close after it up to ``latest``)."""
    seen_until = _EPOCH if state.closed_by is None else state.closed_by
    cut = (seen_until - HOUR).to_pydatetime()  # open time of the newest candle seen
    select = "count(*) FILTER (time <= ?), min(time) FILTER (time > ? AND time <= ?)"
    found = _peer_query(candles, state.peer, select, [cut, cut, (latest - HOUR).to_pydatetime()])
    if not found:
        return 0, None
    first = None if found[1] is None else utc(found[1]) + HOUR
    return int(found[0]), first


def _candles_closed_by(candles: CandleStore, symbol: str, stamp: datetime) -> int:
    """Stored candles of ``symbol`` whose close time is at or before ``stamp``."""
    files = candles.files(symbol)
    if not files:
        return 0
    cutoff = (pd.Timestamp(stamp) - pd.Timedelta(hours=1)).to_pydatetime()
    sql = "SELECT count(*) FROM read_parquet(?, hive_partitioning=false) WHERE time <= ?"
    with candles.guard(files), duckdb_connection() as con:
        return int(con.execute(sql, [[str(f) for f in files], cutoff]).fetchone()[0])
