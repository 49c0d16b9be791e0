"""``GET /performance`` and the live-performance gauges, independent of BentoML and HTTP.

The figures are ``candlecast.performance.report``'s (what ``candlecast performance``
prints), answered as they come (fields it adds, such as ``drift``, pass through);
each answer for a gauged window also sets the gauges (``bentos.gauges``), and
:meth:`LivePerformance.refresh` sets them for every symbol so ``/metrics`` shows
them without anyone calling ``/performance``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import anyio

from bentos.errors import ServiceUnavailable, UnknownWindow
from bentos.gauges import WINDOWS as GAUGED
from bentos.gauges import Gauges
from bentos.predictor import check_symbol
from candlecast.errors import CorruptFileError
from candlecast.performance import WINDOWS, report

Report = Callable[[str | None, str], list[dict]]


class LivePerformance:
    """Answers ``/performance`` for the served symbols and keeps the gauges current."""

    def __init__(
        self, symbols: list[str], gauges: Gauges | None = None, report: Report = report
    ) -> None:
        self.symbols = list(symbols)
        self.gauges = gauges
        self.report = report

    async def answer(self, symbol: Any = None, window: Any = "7d") -> dict[str, Any]:
        """``{"window", "rows"}`` of ``symbol`` (None or empty: every logged symbol)."""
        window = str(window or "").strip().lower()
        if window not in WINDOWS:
            raise UnknownWindow(
                f"Unknown window {window!r}. Choose one of: {', '.join(WINDOWS)}",
                choices=list(WINDOWS),
            )
        name = None if symbol in (None, "") else check_symbol(symbol, self.symbols)
        rows = await self.rows(name, window)
        return {"window": window, "rows": rows}

    async def rows(self, symbol: str | None, window: str) -> list[dict]:
        """The report (read in a thread: DuckDB over the log files); sets the gauges."""
        try:
            rows = await anyio.to_thread.run_sync(self.report, symbol, window)
        except CorruptFileError as exc:
            raise ServiceUnavailable(
                f"The prediction log cannot be read: {exc}", file=str(exc.path)
            ) from exc
        if self.gauges is not None:
            self.gauges.performance(window, rows, symbol)
        return rows

    async def refresh(self) -> None:
        """Set the gauges of every gauged window (the periodic update)."""
        for window in GAUGED:
            await self.rows(None, window)
