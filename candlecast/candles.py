"""Reading the candle store: the schema, the layout and the queries every stage shares.

Layout::

    $CANDLECAST_HOME/candles/symbol=BTC-USD/2024-01.parquet   # one file per UTC month

Each file holds the columns of :data:`CANDLE_SCHEMA` sorted by ``time`` (the candle's
open time, as Coinbase sends it) with no duplicate ``time``. Ingestion writes the
store (``ingestion.store.CandleStore`` extends :class:`CandleReader` with the
atomic merge); the prediction service reads it here for ``GET /candles`` without
importing a stage.

A file that cannot be read stops the read with
:class:`~candlecast.errors.CorruptFileError` naming it and the command that rebuilds
its month; which file is bad is worked out only after a read failed, so the normal
read stays one DuckDB query.
"""

from __future__ import annotations

import contextlib
import json
from datetime import datetime
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from candlecast.parquet_io import corrupt_file_guard, query_parquet
from candlecast.symbols import normalize_symbol
from candlecast.times import utc

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


class CandleReader:
    """Read hourly candles under ``root`` (``$CANDLECAST_HOME/candles``)."""

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

    def synthetic_info(self, symbol: str) -> dict | None:
        """The generator's description if ``symbol`` holds synthetic candles, else None."""
        marker = self.symbol_dir(symbol) / SYNTHETIC_MARKER
        return json.loads(marker.read_text()) if marker.exists() else None


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
