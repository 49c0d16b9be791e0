"""The candle store: hourly OHLCV candles as parquet, one folder per symbol.

Layout::

    $CANDLECAST_HOME/candles/symbol=BTC-USD/2024-01.parquet   # one file per UTC month

Each file holds the columns of :data:`CANDLE_SCHEMA` sorted by ``time`` with no
duplicate ``time``. A write merges new candles into the month files they touch
and replaces each file atomically (temp file, fsync, ``os.replace``), so a
process killed at any instant leaves every file either as it was or fully
updated: never half-written, never duplicated. Existing candles win over
incoming ones: a stored candle is history, and re-running a backfill over a
stored window changes nothing.

A file that cannot be read (truncated, overwritten, not parquet) stops the
command with :class:`~candlecast.errors.CorruptFileError` naming it and the
command that rebuilds its month; which file is bad is worked out only after a
read failed, so the normal read stays one DuckDB query.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import re
import tempfile
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import duckdb
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from candlecast.errors import CorruptFileError
from candlecast.symbols import normalize_symbol
from candlecast.times import utc

log = logging.getLogger(__name__)

CANDLE_COLUMNS = ["symbol", "time", "open", "high", "low", "close", "volume"]
CANDLE_SCHEMA = pa.schema(
    [
        ("symbol", pa.string()),
        ("time", pa.timestamp("us", tz="UTC")),
        ("open", pa.float64()),
        ("high", pa.float64()),
        ("low", pa.float64()),
        ("close", pa.float64()),
        ("volume", pa.float64()),
    ]
)
#: Sidecar file in a symbol folder marking its candles as generated, not real.
SYNTHETIC_MARKER = "SYNTHETIC.json"
#: What a failed parquet read raises: DuckDB's errors, pyarrow's and the OS's.
READ_ERRORS = (duckdb.Error, pa.ArrowException, OSError)


@dataclass(frozen=True)
class WriteResult:
    """What a write did: candles offered, newly stored, and already present."""

    offered: int
    new: int
    existing: int


@contextlib.contextmanager
def folder_lock(folder: Path) -> Iterator[None]:
    """Hold an exclusive ``flock`` on ``folder/.lock`` (created) for the block.

    Serialises processes that rewrite the files of one folder; the lock dies with
    its process, so a killed writer never leaves it held.
    """
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / ".lock", "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


class CandleStore:
    """Read and atomically merge hourly candles under ``root``."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def symbol_dir(self, symbol: str) -> Path:
        return self.root / f"symbol={normalize_symbol(symbol)}"

    def symbols(self) -> list[str]:
        """Symbols with at least one stored candle, sorted."""
        if not self.root.exists():
            return []
        return sorted(
            p.name.split("=", 1)[1]
            for p in self.root.glob("symbol=*")
            if p.is_dir() and any(p.glob("*.parquet"))
        )

    def files(self, symbol: str | None = None) -> list[Path]:
        pattern = f"symbol={normalize_symbol(symbol)}/*.parquet" if symbol else "symbol=*/*.parquet"
        return sorted(self.root.glob(pattern))

    def read(
        self,
        symbol: str | None = None,
        start: datetime | pd.Timestamp | None = None,
        end: datetime | pd.Timestamp | None = None,
    ) -> pd.DataFrame:
        """Candles with ``start <= time < end`` sorted by (symbol, time), via DuckDB."""
        files = self.files(symbol)
        if not files:
            return empty_candles()
        where, params = ["TRUE"], []
        if start is not None:
            where.append("time >= ?")
            params.append(utc(start).to_pydatetime())
        if end is not None:
            where.append("time < ?")
            params.append(utc(end).to_pydatetime())
        with self.guard(files):
            return query_parquet(files, CANDLE_SCHEMA, " AND ".join(where), params, "symbol, time")

    def guard(self, files: list[Path]) -> contextlib.AbstractContextManager[None]:
        """Turn a failed read of ``files`` into a :class:`CorruptFileError` naming the bad one."""
        return corrupt_file_guard(files, CANDLE_SCHEMA, self.remedy)

    def remedy(self, path: Path) -> str:
        """What to do about an unreadable month file: delete it and fetch that month again."""
        symbol = path.parent.name.split("=", 1)[-1]
        synthetic = self.synthetic_info(symbol) if path.parent.name.startswith("symbol=") else None
        if synthetic is not None:
            return (
                f"delete it and re-run `candlecast sample --symbol {symbol} "
                f"--hours {synthetic.get('hours')} --seed {synthetic.get('seed')}`"
            )
        try:
            first = pd.Timestamp(f"{path.stem}-01")
        except ValueError:
            return f"delete it and re-run `candlecast backfill --symbol {symbol}` for its candles"
        after = first + pd.offsets.MonthBegin(1)
        return (
            f"delete it and re-run `candlecast backfill --symbol {symbol} --start {first:%Y-%m-%d} "
            f"--end {after:%Y-%m-%d}` (or `candlecast load-csv FILE --symbol {symbol}` "
            f"with the candles of {path.stem})"
        )

    def write(self, candles: pd.DataFrame) -> WriteResult:
        """Merge candles into the store; stored candles are kept as they are.

        The frame must have :data:`CANDLE_COLUMNS`; rows are validated by the
        caller (ingestion validates every candle before it gets here).
        """
        frame = to_candle_frame(candles)
        if frame.empty:
            return WriteResult(0, 0, 0)
        frame = frame.drop_duplicates(["symbol", "time"], keep="first")
        new, merged = 0, []
        with contextlib.ExitStack() as locks:
            for symbol in sorted(frame["symbol"].unique()):  # sorted: writers never deadlock
                locks.enter_context(self._locked(str(symbol)))
            # Every touched month is read before any is written: an unreadable month
            # stops the write with the store exactly as it was.
            for symbol, rows in frame.groupby("symbol", sort=True):
                for month, part in rows.groupby(rows["time"].dt.strftime("%Y-%m"), sort=True):
                    path, table, fresh = self._merge_month(str(symbol), str(month), part)
                    new += fresh
                    if fresh:
                        merged.append((path, table, fresh))
            for path, table, fresh in merged:
                atomic_write_parquet(table, path)
                log.debug("%s: %d new candles, %d rows now", path, fresh, table.num_rows)
        return WriteResult(offered=len(frame), new=new, existing=len(frame) - new)

    def synthetic_info(self, symbol: str) -> dict | None:
        """The generator's description if ``symbol`` holds synthetic candles, else None."""
        marker = self.symbol_dir(symbol) / SYNTHETIC_MARKER
        return json.loads(marker.read_text()) if marker.exists() else None

    def mark_synthetic(self, symbol: str, info: dict) -> None:
        """Label a symbol's candles as synthetic so no stage mistakes them for market data."""
        marker = self.symbol_dir(symbol) / SYNTHETIC_MARKER
        marker.parent.mkdir(parents=True, exist_ok=True)
        tmp = marker.with_suffix(".tmp")
        tmp.write_text(json.dumps({"synthetic": True, **info}, indent=2, sort_keys=True))
        os.replace(tmp, marker)

    @contextlib.contextmanager
    def _locked(self, symbol: str) -> Iterator[None]:
        """Serialise writers of one symbol (a backfill and the update job may overlap).

        Holding the lock also means any temp file in the folder is an orphan of a
        killed writer, so it is removed here.
        """
        folder = self.symbol_dir(symbol)
        with folder_lock(folder):
            remove_orphans(folder)
            yield

    def _merge_month(
        self, symbol: str, month: str, part: pd.DataFrame
    ) -> tuple[Path, pa.Table | None, int]:
        """(file, its merged content, candles new to it); the content is None when none are."""
        path = self.symbol_dir(symbol) / f"{month}.parquet"
        if path.exists():
            with self.guard([path]):
                stored = pq.read_table(path).cast(CANDLE_SCHEMA).to_pandas()
            fresh = part[~part["time"].isin(stored["time"])]
            if fresh.empty:
                return path, None, 0
            merged = pd.concat([stored, fresh], ignore_index=True)
        else:
            fresh = part
            merged = part
        merged = merged.sort_values("time", kind="stable").reset_index(drop=True)
        table = pa.Table.from_pandas(merged, schema=CANDLE_SCHEMA, preserve_index=False)
        return path, table, len(fresh)


def unreadable_file(
    files: Iterable[Path], schema: pa.Schema | None = None
) -> tuple[Path, BaseException] | None:
    """The first of ``files`` that cannot be read whole (with ``schema``'s columns), and why.

    Reads every file completely: for the error path only, never a normal read.
    """
    for path in files:
        try:
            table = pq.read_table(path)
            if schema is not None:
                table.select(schema.names).cast(schema)
        except (*READ_ERRORS, KeyError, ValueError, TypeError) as exc:
            return Path(path), exc
    return None


@contextlib.contextmanager
def corrupt_file_guard(
    files: Iterable[Path], schema: pa.Schema | None, remedy: Callable[[Path], str]
) -> Iterator[None]:
    """Re-raise a failed read of ``files`` as :class:`CorruptFileError` for the bad file.

    A failure no file explains (a bug, a vanished file) propagates unchanged.
    """
    try:
        yield
    except READ_ERRORS as exc:
        bad = unreadable_file(files, schema)
        if bad is None:
            raise
        path, cause = bad
        log.debug("unreadable %s", path, exc_info=cause)
        raise CorruptFileError(path, describe_read_error(cause), remedy(path)) from exc


def describe_read_error(exc: BaseException) -> str:
    """A read error on one line, without the path the message already names."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    text = re.sub(r"^Could not open Parquet input source '[^']*': ", "", text)
    return text.rstrip(".") or type(exc).__name__


def remove_orphans(folder: Path) -> None:
    """Delete temp files a killed :func:`atomic_write_parquet` left in ``folder``.

    Call it only while holding the folder's :func:`folder_lock`: then no live
    writer owns a temp file there.
    """
    for orphan in folder.glob(".*.parquet.*.tmp"):
        orphan.unlink(missing_ok=True)


def atomic_write_parquet(table: pa.Table, path: Path) -> None:
    """Write ``table`` to ``path`` so readers see the old file or the new one, never a torn one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            pq.write_table(table, handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def empty_candles() -> pd.DataFrame:
    return CANDLE_SCHEMA.empty_table().to_pandas()


def to_candle_frame(candles: pd.DataFrame) -> pd.DataFrame:
    """Coerce a frame to the store's column order and dtypes (UTC, microseconds)."""
    missing = [c for c in CANDLE_COLUMNS if c not in candles.columns]
    if missing:
        raise ValueError(f"candle frame is missing columns {missing}")
    frame = candles[CANDLE_COLUMNS].copy()
    frame["symbol"] = frame["symbol"].astype(str)
    frame["time"] = pd.to_datetime(frame["time"], utc=True).astype("datetime64[us, UTC]")
    for column in CANDLE_COLUMNS[2:]:
        frame[column] = frame[column].astype("float64")
    return frame


def query_parquet(
    files: list[Path], schema: pa.Schema, where: str, params: list, order_by: str
) -> pd.DataFrame:
    """``schema``'s columns of ``files`` matching ``where``, sorted, via DuckDB in UTC.

    The one parquet read of the stores (candles, the prediction log); callers wrap
    it in their corrupt-file guard.
    """
    sql = (
        f"SELECT {', '.join(schema.names)} FROM read_parquet(?, hive_partitioning=false) "
        f"WHERE {where} ORDER BY {order_by}"
    )
    with duckdb.connect() as con:
        con.execute("SET TimeZone='UTC'")
        relation = con.sql(sql, params=[[str(f) for f in files], *params])
        return _arrow_table(relation).cast(schema).to_pandas()


def _arrow_table(relation: duckdb.DuckDBPyRelation) -> pa.Table:
    """A relation as an Arrow table across DuckDB versions (2.x renamed ``arrow()``)."""
    fetch = getattr(relation, "to_arrow_table", None) or relation.arrow
    return fetch()
