"""Command line for training: ``python -m training --help``.

Exit codes: 0 success, 2 bad input or missing data (the message names the
command that produces it), 1 runtime failure. Expected errors print one line,
never a traceback.
"""

from __future__ import annotations

import logging
from pathlib import Path

import typer
from rich.table import Table

from candlecast.cli import errors, out, progress, stage_app
from candlecast.contract import FAMILIES, check_family, check_target
from candlecast.feature_catalog import DEFAULT_SERVICE
from candlecast.settings import get_settings
from candlecast.symbols import normalize_symbol
from training.dataset import load_dataset
from training.executor import UnitsFailedError, check_executor
from training.models import FitConfig

log = logging.getLogger(__name__)
app = stage_app(
    "Train, backtest and register hourly price forecasters against the persistence floor."
)

SYMBOL = typer.Option(..., "--symbol", "-s", help="Coinbase product id, e.g. BTC-USD.")
MODELS = typer.Option(",".join(FAMILIES), "--models", "-m", help="Comma-separated families.")
SERVICE = typer.Option(DEFAULT_SERVICE, "--feature-service", "-f", help="Feast FeatureService.")
TARGET = typer.Option(
    "return", "--target", "-t", help="return: next-hour log return; price: next-hour close."
)
EPOCHS = typer.Option(FitConfig.max_epochs, "--max-epochs", help="Keras epoch cap (early stopped).")


def parse_models(text: str) -> list[str]:
    names = [n.strip().lower() for n in text.split(",") if n.strip()]
    if not names:
        raise ValueError("no model family given")
    return list(dict.fromkeys(check_family(n) for n in names))


SYMBOLS = typer.Option(
    ..., "--symbol", "-s", help="Coinbase product id, e.g. BTC-USD (repeat for several)."
)
EXECUTOR = typer.Option(
    None,
    "--executor",
    "-x",
    help="serial: one (symbol, family) unit after another here; ray: each unit a task on a "
    "local Ray cluster (CANDLECAST_RAY_NUM_CPUS). Default CANDLECAST_EXECUTOR (serial).",
)


@app.command()
def train(
    symbol: list[str] = SYMBOLS,
    models: str = MODELS,
    feature_service: str = SERVICE,
    target: str = TARGET,
    test_start: str = typer.Option(
        None, help="Start of the walk-forward period (default: 4 weeks before the cut)."
    ),
    cut: str = typer.Option(None, help="Train on labels known by this UTC time (default: all)."),
    max_epochs: int = EPOCHS,
    executor: str = EXECUTOR,
) -> None:
    """Fit each family of each symbol up to the cut, judge it walk-forward, register it.

    The driver reads the datasets and champions and writes the versions; the units in
    between run serially or on Ray. A unit that fails (or whose Ray worker dies) exits 1
    naming its symbol and family; every other unit's version is registered.
    """
    from training.train import eval_period, plan_family, train_jobs
    from training.walkforward import weekly_folds

    with errors():
        families, cfg = parse_models(models), FitConfig(max_epochs=max_epochs)
        run_on = check_executor(executor or get_settings().executor)
        jobs = []
        for name in dict.fromkeys(normalize_symbol(s) for s in symbol):
            data = load_dataset(name, feature_service, check_target(target))
            end, start = eval_period(data, cut, test_start)
            jobs += [plan_family(data, family, end, start, cfg) for family in families]
        with progress("folds") as bar:
            totals = {j.label: len(weekly_folds(j.test_start, j.cut)) + 1 for j in jobs}
            tasks = {n: bar.add_task(f"{n}: walk-forward", total=t) for n, t in totals.items()}

            def finished(label: str) -> None:
                bar.update(tasks[label], description=f"{label}: fitted", completed=totals[label])

            def fold(job, _fold) -> None:
                bar.advance(tasks[job.label])

            outcomes, failures = train_jobs(jobs, run_on, fold, finished)
        for outcome in outcomes:
            _print_outcome(outcome)
        if failures:
            raise UnitsFailedError(failures, kept=len(outcomes))


def _print_outcome(outcome) -> None:
    m, p = outcome.summary["metrics"], outcome.summary["persistence"]
    verdict = "beats" if outcome.summary["beats_persistence"] else "does NOT beat"
    out.print(
        f"[bold]{outcome.tag}[/] -> [bold]{outcome.decision.stage}[/] ({outcome.decision.reason})\n"
        f"  walk-forward {m['period_start']} .. {m['period_end']}: MAE {m['mae']:.2f} vs "
        f"persistence {p['mae']:.2f} (ratio {m['mae_ratio_vs_persistence']:.4f}, {verdict} "
        f"persistence, Diebold-Mariano p {m['dm_pvalue']:.3f}), direction "
        f"{m['directional_accuracy']:.3f}\n"
        f"  intervals over {m['interval_n']} calibrated hours: 80 % covered "
        f"{m['coverage_80']:.1%} (persistence {p['coverage_80']:.1%}), mean width "
        f"{m['interval_width_80']:.2f} (persistence {p['interval_width_80']:.2f}); 95 % covered "
        f"{m['coverage_95']:.1%}; Brier of p_up {m['brier_up']:.4f} "
        f"(persistence {p['brier_up']:.4f})"
    )
    if outcome.summary["leakage_suspect"]:
        out.print("  [bold yellow]LEAKAGE SUSPECT[/]: >5% better than persistence; check features")


@app.command()
def backtest(
    symbol: str = SYMBOL,
    test_start: str = typer.Option(..., help="First forecast time of the test period (UTC)."),
    test_end: str = typer.Option(None, help="End of the test period (default: end of data)."),
    models: str = MODELS,
    feature_service: str = SERVICE,
    target: str = TARGET,
    json_path: Path = typer.Option(None, "--json", help="Write the metrics JSON here."),
    plots: bool = typer.Option(True, help="Write PNG plots (predictions, errors, loss curves)."),
    reports_dir: Path = typer.Option(
        None, help="Folder for the PNGs (default: $CANDLECAST_HOME/reports)."
    ),
    max_epochs: int = EPOCHS,
    executor: str = EXECUTOR,
) -> None:
    """Walk-forward (weekly folds, expanding window) over the test period vs persistence.

    Each family is one unit, run serially or as a Ray task (``--executor``).
    """
    from training import plots as charts
    from training.backtest import report, run_backtest, write_json
    from training.train import data_end
    from training.walkforward import utc, weekly_folds

    with errors():
        families, cfg = parse_models(models), FitConfig(max_epochs=max_epochs)
        run_on = check_executor(executor or get_settings().executor)
        data = load_dataset(normalize_symbol(symbol), feature_service, check_target(target))
        start, end = utc(test_start), utc(test_end) if test_end else data_end(data)
        total = len(weekly_folds(start, end)) * len(families)
        with progress("folds") as bar:
            task = bar.add_task("walk-forward", total=total)

            def step(family: str, fold) -> None:
                bar.update(task, advance=1, description=f"{family} fold {fold.index + 1}")

            results = run_backtest(data, families, start, end, cfg, step, run_on)
        payload = report(data, results)
        print_report(payload)
        if json_path:
            out.print(f"metrics JSON: {write_json(payload, json_path)}")
        if plots:
            stem = f"{data.symbol}_{feature_service}_{target}".lower()
            folder = reports_dir or get_settings().reports_dir
            title = f"{data.symbol} {feature_service} target={target}"
            for path in charts.report_paths(folder.expanduser().resolve(), stem, results, title):
                out.print(f"plot: {path}")


def print_report(payload: dict) -> None:
    table = Table(
        title=f"{payload['symbol']} {payload['feature_service']} target={payload['target']} "
        f"{payload['period_start']} .. {payload['period_end']} ({payload['folds']} folds)"
    )
    columns = ("model", "MAE", "RMSE", "ratio", "DM p", "dir.acc", "cov 80", "cov 95")
    for col in (*columns, "width 80", "IS 80", "Brier up", "n", "fit s"):
        table.add_column(col, justify="right", no_wrap=True)
    rows = [("naive", payload["persistence"], None)]
    rows += [(name, m, m) for name, m in payload["models"].items()]
    for name, m, extra in rows:
        flag = " [yellow](leak?)[/]" if extra and extra["leakage_suspect"] else ""
        win = " [green](beats)[/]" if extra and extra["beats_persistence"] else ""
        table.add_row(
            name,
            f"{m['mae']:.2f}",
            f"{m['rmse']:.2f}",
            f"{m['mae_ratio_vs_persistence']:.4f}{flag}{win}",
            f"{extra['dm_pvalue']:.3f}" if extra else "",
            f"{m['directional_accuracy']:.3f}",
            f"{m['coverage_80']:.3f}",
            f"{m['coverage_95']:.3f}",
            f"{m['interval_width_80']:.2f}",
            f"{m['interval_score_80']:.2f}",
            f"{m['brier_up']:.4f}",
            str(m["n"]),
            f"{extra['fit_seconds']:.1f}" if extra else "",
        )
    out.print(table)
    out.print(
        "ratio: MAE / persistence MAE; (beats) needs ratio < 1 and DM p < 0.05. Intervals are "
        "calibrated on earlier hours only (cov: share of closes inside; IS: Winkler score)."
    )


@app.command("models")
def list_models(
    symbol: str = typer.Option(None, "--symbol", "-s", help="Only this symbol."),
    history: bool = typer.Option(
        False, "--history", help="List every retrain instead: time, cut, metrics, decision."
    ),
    as_json: bool = typer.Option(False, "--json", help="With --history: print JSON rows."),
) -> None:
    """List registered versions with stage, target and walk-forward ratio vs persistence."""
    from candlecast import model_store

    if history:
        print_history(normalize_symbol(symbol) if symbol else None, as_json)
        return
    with errors():
        found = model_store.all_models(normalize_symbol(symbol) if symbol else None)
        table = Table(title=f"model store {get_settings().bentoml_home}")
        for col in ("tag", "stage", "features", "target", "MAE", "ratio", "beats naive", "created"):
            table.add_column(col, no_wrap=col == "tag")
        for model in found:
            spec, metrics = model.spec, model.spec.metrics
            table.add_row(
                model.tag,
                model.stage or "?",
                spec.feature_service,
                spec.target,
                f"{metrics.get('mae', float('nan')):.2f}",
                f"{metrics.get('mae_ratio_vs_persistence', float('nan')):.4f}",
                str("?" if spec.beats_persistence is None else spec.beats_persistence),
                model.created.strftime("%Y-%m-%d %H:%M"),
            )
        out.print(table)


def print_history(symbol: str | None, as_json: bool) -> None:
    """The retrain history (``candlecast.retrain_history``), oldest first."""
    import json

    from candlecast.retrain_history import history

    with errors():
        frame = history().read(symbol)
    rows = [
        {k: (None if v is None or v != v else v) for k, v in r.items()}  # NaN -> null
        for r in json.loads(frame.to_json(orient="records", date_format="iso"))
    ]
    if as_json:
        out.print_json(json.dumps(rows))
        return
    if not rows:
        out.print(f"no retrains recorded under {history().root}")
        return
    table = Table(title=f"retrain history {history().path}")
    for col in ("at", "symbol", "model", "trigger", "cut", "version", "stage", "MAE", "ratio"):
        table.add_column(col, no_wrap=col in ("at", "cut"))
    table.add_column("decision / reason")
    for r in rows:
        ratio = r["mae_ratio_vs_persistence"]
        table.add_row(
            r["at"][:16].replace("T", " "),
            r["symbol"],
            r["family"],
            r["trigger"],
            (r["cut"] or "-")[:16].replace("T", " "),
            (r["tag"] or "-").rsplit(":", 1)[-1],
            r["stage"] or "[red]failed[/]",
            "-" if r["mae"] is None else f"{r['mae']:.2f}",
            "-" if ratio is None else f"{ratio:.4f}",
            f"{r['decision']} (why: {r['reason']})",
        )
    out.print(table)


@app.command("export")
def export_model(
    tag: str = typer.Argument(..., help="Model tag, e.g. candlecast-cnn-btc-usd:latest."),
    path: Path = typer.Argument(..., help="Output file (.bentomodel)."),
) -> None:
    """Export one registered model to a file (absolute path) for the delivery pipeline."""
    from training.registry import export

    with errors():
        out.print(f"exported {tag} -> {export(tag, path)}")


@app.command("import")
def import_model(path: Path = typer.Argument(..., help="A .bentomodel file.")) -> None:
    """Import a model file exported by `export` into this model store."""
    from training.registry import import_file

    with errors():
        out.print(f"imported {import_file(path)}")
