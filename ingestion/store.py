"""Writing the candle store (its layout and reads: :mod:`candlecast.candles`).

A write merges new candles into the month files they touch
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
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from candlecast.candles import (  # noqa: F401 (re-exported: the store's schema and helpers)
    CANDLE_COLUMNS,
    CANDLE_SCHEMA,
    SYNTHETIC_MARKER,
    CandleReader,
    empty_candles,
    to_candle_frame,
)
from candlecast.parquet_io import atomic_write_parquet, folder_lock, remove_orphans

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class WriteResult:
    """What a write did: candles offered, newly stored, and already present."""

    offered: int
    new: int
    existing: int


class CandleStore(CandleReader):
    """Read and atomically merge hourly candles under ``root``."""

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
