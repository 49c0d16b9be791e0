"""The retrain history: every retrain the system ran, with its evidence and outcome.

One parquet file, ``$CANDLECAST_HOME/retrains/history.parquet``, one row per
(retrain, family): when it ran (the loop's clock, simulated in a replay), why
(trigger and reason), the data cut, the new version's walk-forward figures, the
promotion decision and its reason, or the error when it failed. A failed or
losing retrain changes nothing in the model store; it is still recorded here.
Rows are appended under the folder's lock by rewriting the file atomically
(:func:`candlecast.parquet_io.atomic_write_parquet`), so a kill never tears it.
``candlecast models --history`` prints it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from candlecast.parquet_io import (
    atomic_write_parquet,
    corrupt_file_guard,
    folder_lock,
    remove_orphans,
)

_TIME = pa.timestamp("us", tz="UTC")
HISTORY_SCHEMA = pa.schema(
    [
        pa.field("at", _TIME, nullable=False),  # when the retrain ran (loop clock)
        pa.field("symbol", pa.string(), nullable=False),
        pa.field("family", pa.string(), nullable=False),
        pa.field("trigger", pa.string(), nullable=False),  # initial | schedule | early | manual
        pa.field("reason", pa.string(), nullable=False),  # why it ran
        pa.field("cut", _TIME),  # training data cut: labels known by then
        pa.field("tag", pa.string()),  # the new version, null when the retrain failed
        pa.field("stage", pa.string()),  # champion | candidate | null (failed)
        pa.field("decision", pa.string()),  # the promotion gate's reason, or the error
        pa.field("mae", pa.float64()),  # walk-forward figures of the new recipe
        pa.field("mae_ratio_vs_persistence", pa.float64()),
        pa.field("period_start", pa.string()),
        pa.field("period_end", pa.string()),
        pa.field("seconds", pa.float64()),
        pa.field("ok", pa.bool_(), nullable=False),
    ]
)


@dataclass(frozen=True)
class RetrainRecord:
    """One family's retrain, as stored."""

    at: pd.Timestamp
    symbol: str
    family: str
    trigger: str
    reason: str
    cut: pd.Timestamp | None
    decision: str  # the gate's reason, or the error of a failed retrain
    seconds: float
    ok: bool
    tag: str | None = None
    stage: str | None = None
    mae: float | None = None
    mae_ratio_vs_persistence: float | None = None
    period_start: str | None = None
    period_end: str | None = None


class RetrainHistory:
    """Append and read the retrain history under ``root`` (``$CANDLECAST_HOME/retrains``)."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.path = self.root / "history.parquet"

    def read(self, symbol: str | None = None) -> pd.DataFrame:
        """Every record (of ``symbol``), oldest first."""
        if not self.path.exists():
            return HISTORY_SCHEMA.empty_table().to_pandas()
        with corrupt_file_guard([self.path], HISTORY_SCHEMA, self.remedy):
            frame = pq.read_table(self.path).cast(HISTORY_SCHEMA).to_pandas()
        if symbol is not None:
            frame = frame[frame["symbol"] == symbol]
        return frame.sort_values("at", kind="stable").reset_index(drop=True)

    def append(self, records: list[RetrainRecord]) -> None:
        if not records:
            return
        with folder_lock(self.root):
            remove_orphans(self.root)
            fresh = pd.DataFrame([asdict(r) for r in records])[HISTORY_SCHEMA.names]
            stored = [self.read()] if self.path.exists() else []
            frame = pd.concat([*stored, fresh], ignore_index=True)
            for column in ("at", "cut"):
                frame[column] = pd.to_datetime(frame[column], utc=True)
            table = pa.Table.from_pandas(frame, schema=HISTORY_SCHEMA, preserve_index=False)
            atomic_write_parquet(table, self.path)

    @staticmethod
    def remedy(path: Path) -> str:
        return (
            f"move it out of {path.parent}: the history is a record only; a new file is "
            "started on the next retrain, and the model store keeps every version"
        )


def history() -> RetrainHistory:
    """The history of this home: ``$CANDLECAST_HOME/retrains/history.parquet``."""
    from candlecast.settings import get_settings

    return RetrainHistory(get_settings().home / "retrains")
