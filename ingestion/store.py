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
import json
import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from candlecast.parquet_io import (
    atomic_write_parquet,
    corrupt_file_guard,
    folder_lock,
    query_parquet,
    remove_orphans,
)
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


@dataclass(frozen=True)
class WriteResult:
    """What a write did: candles offered, newly stored, and already present."""

    offered: int
    new: int
    existing: int


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

    def last_time(self, symbol: str) -> pd.Timestamp | None:
        """Open time of ``symbol``'s newest stored candle (reads its last month file only)."""
        files = self.files(symbol)
        if not files:
            return None
        with self.guard(files[-1:]):
            times = pq.read_table(files[-1], columns=["time"]).column("time")
        return pd.Timestamp(pc.max(times).as_py()) if len(times) else None

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
