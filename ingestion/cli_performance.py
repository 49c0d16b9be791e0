"""The ``performance`` command of the ingestion CLI, as a plain function."""

from __future__ import annotations

import json

import typer
from rich.markup import escape
from rich.table import Table

from candlecast.cli import SYMBOL_HELP, err, errors, out, parse_symbol

WINDOW_HELP = "24h, 7d, 30d or all: forecasts whose target hour closed in this window before now."

COLUMNS = (
    "symbol",
    "model",
    "version",
    "n",
    "MAE",
    "persistence MAE",
    "ratio",
    "direction [95% band]",
    "worst hour (UTC)",
    "worst error",
    "drift",
    "unscored",
)


def performance(
    symbol: str | None = typer.Option(None, "--symbol", "-s", help=SYMBOL_HELP + " Default: all."),
    window: str = typer.Option("7d", "--window", "-w", help=WINDOW_HELP),
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
) -> None:
    """Live performance from the prediction log: MAE beside persistence on the same hours.

    Per symbol, model and version, over the scored forecasts whose target hour
    is in the window ($CANDLECAST_HOME/predictions): n, MAE, persistence MAE and
    their ratio (< 1 beats persistence), directional accuracy with its 95%
    Wilson band, the worst hour, and the window's forecasts with no outcome yet.
    Beside them, the version's latest drift (largest PSI of its stationary inputs
    and live errors against its training window; $CANDLECAST_HOME/drift): a reason
    to look, never a reason to swap the model. Read-only.
    """
    from candlecast.performance import report, window_start
    from candlecast.prediction_log import PredictionLog
    from candlecast.settings import get_settings
    from candlecast.times import utc_now

    name = parse_symbol(symbol) if symbol else None
    predictions, now = PredictionLog(get_settings().predictions_dir), utc_now()
    with errors():
        start = window_start(window, now)
        logged = bool(predictions.files(name))
        rows = report(name, window, now)
    if as_json:
        out.print_json(json.dumps(rows))
    if not logged:
        where = f"for {name} " if name else ""
        message = f"no forecasts logged {where}under {escape(str(predictions.root))}"
        (err if as_json else out).print(message, soft_wrap=True)
        return
    if not rows:
        span = "in any hour" if start is None else f"with a target hour in the last {window}"
        hint = "" if start is None else " (try --window all)"
        (err if as_json else out).print(f"no forecasts {span}{hint}", soft_wrap=True)
        return
    if not as_json:
        _print_table(rows, window, now)


def _print_table(rows: list[dict], window: str, now) -> None:
    span = "every logged hour" if window == "all" else f"last {window} to {now:%Y-%m-%d %H:%M} UTC"
    table = Table(title=f"live performance, {span}")
    for column in COLUMNS:
        table.add_column(column)
    for r in rows:
        band = r["directional_accuracy_ci95"]
        direction = (
            "-"
            if band is None
            else f"{r['directional_accuracy']:.1%} [{band[0]:.1%}, {band[1]:.1%}]"
        )
        worst = "-" if r["worst_target_time"] is None else r["worst_target_time"][:16]
        table.add_row(
            r["symbol"],
            r["model"] + (" *" if r["is_default"] else ""),
            escape(r["model_version"].rsplit(":", 1)[-1]),  # model and symbol are columns
            str(r["n"]),
            _money(r["mae"]),
            _money(r["persistence_mae"]),
            "-"
            if r["mae_ratio_vs_persistence"] is None
            else f"{r['mae_ratio_vs_persistence']:.3f}",
            direction,
            worst.replace("T", " "),
            _money(r["worst_abs_error"]),
            _drift(r.get("drift")),
            str(r["unscored"]),
        )
    out.print(table)
    out.print(
        "* the default model (/predict without model=); ratio < 1 beats persistence "
        "on the same hours; unscored: not scored yet, or no candle for the hour (no trades)",
        soft_wrap=True,
    )
    drift_window = next((r["drift"]["window"] for r in rows if r.get("drift")), None)
    if drift_window:
        out.print(
            f"drift: the last {drift_window} of the stationary inputs and live errors against "
            "the training window, largest PSI where the KS test is significant (moderate "
            "0.1-0.25, major > 0.25; n/a: too few rows, see --json); shown beside the figures, "
            "it never swaps a model",
            soft_wrap=True,
        )


def _drift(report: dict | None) -> str:
    """``PSI 0.31 major (volatility_24h)``; ``n/a`` when nothing could be compared."""
    from candlecast.drift import summary

    if report is None:
        return "-"
    return "n/a" if report.get("verdict") is None else escape(summary(report))


def _money(value: float | None) -> str:
    return "-" if value is None else f"{value:,.2f}"
