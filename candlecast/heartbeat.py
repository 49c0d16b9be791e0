"""The live loop's heartbeat: ``$CANDLECAST_HOME/live/heartbeat.json``.

``candlecast live`` rewrites it (atomically) every cycle and every minute of a
wait: wall time, PID, state, the last cycle and the loop's retrain schedule. The
container healthcheck and the prediction service's ``GET /status`` read it; both
only read, so they live here in the core rather than in ``deploy/``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd

from candlecast.parquet_io import atomic_write_text
from candlecast.settings import get_settings
from candlecast.times import utc, utc_now


def live_dir() -> Path:
    return get_settings().home / "live"


def heartbeat_path() -> Path:
    return live_dir() / "heartbeat.json"


def write(body: dict[str, Any]) -> Path:
    """Replace the heartbeat with ``body`` plus the wall time (``at``), atomically."""
    path = heartbeat_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(json.dumps({"at": utc_now().isoformat(), **body}, indent=1), path)
    return path


def read() -> dict[str, Any] | None:
    """The last heartbeat, or None when no loop ever ran here.

    Raises ValueError (naming the file) when it cannot be read: the writer replaces it
    atomically, so that means someone else wrote it.
    """
    path = heartbeat_path()
    try:
        body = json.loads(path.read_text())
        body["at"] = utc(body["at"]).isoformat()
    except FileNotFoundError:
        return None
    except (ValueError, KeyError, TypeError) as exc:
        raise ValueError(f"unreadable heartbeat {path}: {exc}") from None
    return body


def age_seconds(body: dict[str, Any], now: pd.Timestamp | None = None) -> float:
    """Seconds since the heartbeat was written."""
    now = utc_now() if now is None else utc(now)
    return (now - utc(body["at"])).total_seconds()
