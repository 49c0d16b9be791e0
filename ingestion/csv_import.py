"""``load-csv``: import a Coinbase-format candle CSV, all or nothing.

The file must have the header ``time,low,high,open,close,volume`` (any column
order) with ``time`` in Unix seconds of the candle's open. Every row is parsed
and validated before anything is written; any bad row fails the import with
the file, line number and reason, and nothing is stored.
"""

from __future__ import annotations

import csv
import logging
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from candlecast.errors import BadInput
from candlecast.symbols import normalize_symbol
from candlecast.times import utc_now
from ingestion.coinbase import COINBASE_FIELDS
from ingestion.gaps import Gap, find_gaps, missing_hours
from ingestion.sample import ensure_not_synthetic
from ingestion.store import CANDLE_COLUMNS, CandleStore, WriteResult
from ingestion.validate import describe_time, row_problems

log = logging.getLogger(__name__)
CSV_COLUMNS = COINBASE_FIELDS
MAX_LISTED = 10


class CsvImportError(BadInput, ValueError):
    """The file cannot be imported; the message lists file, line numbers and reasons."""


@dataclass(frozen=True)
class ImportResult:
    symbol: str
    rows: int
    write: WriteResult
    gaps: list[Gap]


def load_csv(store: CandleStore, path: Path, symbol: str) -> ImportResult:
    """Validate the whole file, then store it in one merge."""
    symbol = normalize_symbol(symbol)
    ensure_not_synthetic(store, symbol)
    candles = read_candle_csv(path, symbol)
    written = store.write(candles)
    result = ImportResult(symbol, len(candles), written, find_gaps(candles["time"]))
    log.info(
        "%s load-csv %s: %d candles %s .. %s, %d new, %d already stored, %d gaps (%d h)",
        symbol,
        path,
        result.rows,
        describe_time(candles["time"].iloc[0]),
        describe_time(candles["time"].iloc[-1]),
        written.new,
        written.existing,
        len(result.gaps),
        missing_hours(result.gaps),
    )
    return result


def read_candle_csv(path: Path, symbol: str, now: pd.Timestamp | None = None) -> pd.DataFrame:
    """Parse and validate ``path`` into store rows, or raise :class:`CsvImportError`."""
    path = Path(path)
    if not path.is_file():
        raise CsvImportError(f"{path}: no such file")
    lines, values, problems = _parse(path)
    frame = pd.DataFrame(values, columns=CSV_COLUMNS)
    frame["time"] = pd.to_datetime(frame["time"].astype("int64"), unit="s", utc=True)
    frame["symbol"] = symbol
    frame = frame[CANDLE_COLUMNS]
    for index, reason in row_problems(frame, now or utc_now()).items():
        if reason:
            problems.append((lines[index], f"{reason} ({describe_time(frame['time'][index])})"))
    first_line = dict(zip(frame["time"].iloc[::-1], pd.Series(lines).iloc[::-1], strict=True))
    for index in frame.index[frame["time"].duplicated()]:
        problems.append(
            (lines[index], f"duplicate time, first on line {first_line[frame['time'][index]]}")
        )
    if problems:
        raise CsvImportError(_describe(path, sorted(problems)))
    if frame.empty:
        raise CsvImportError(f"{path}: no candles in file")
    return frame.sort_values("time", kind="stable").reset_index(drop=True)


def _parse(path: Path) -> tuple[list[int], list[list[float]], list[tuple[int, str]]]:
    """Line numbers, numeric rows and per-line problems of a candle CSV."""
    lines, values, problems = [], [], []
    with path.open(newline="") as handle:
        reader = csv.reader(handle)
        header = [name.strip().lower() for name in next(reader, [])]
        if sorted(header) != sorted(CSV_COLUMNS):
            raise CsvImportError(
                f"{path}: line 1: expected header {','.join(CSV_COLUMNS)}, got {','.join(header)!r}"
            )
        order = [header.index(name) for name in CSV_COLUMNS]
        for row in reader:
            if not any(cell.strip() for cell in row):
                continue
            parsed = _parse_row(row, header, order)
            if isinstance(parsed, str):
                problems.append((reader.line_num, parsed))
            else:
                lines.append(reader.line_num)
                values.append(parsed)
    return lines, values, problems


def _parse_row(row: list[str], header: list[str], order: list[int]) -> list[float] | str:
    """Numbers in CSV_COLUMNS order, or the reason the row is unreadable."""
    if len(row) != len(header):
        return f"expected {len(header)} fields, got {len(row)}"
    numbers = []
    for name, position in zip(CSV_COLUMNS, order, strict=True):
        try:
            numbers.append(float(row[position]))
        except ValueError:
            return f"{name} is not a number: {row[position]!r}"
    if not float(numbers[0]).is_integer():
        return f"time is not whole Unix seconds: {row[order[0]]!r}"
    return numbers


def _describe(path: Path, problems: list[tuple[int, str]]) -> str:
    listed = "\n".join(f"  {path}:{line}: {reason}" for line, reason in problems[:MAX_LISTED])
    more = f"\n  ... and {len(problems) - MAX_LISTED} more" if len(problems) > MAX_LISTED else ""
    return f"{path}: {len(problems)} bad rows, nothing stored:\n{listed}{more}"
