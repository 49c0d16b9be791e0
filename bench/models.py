"""The real evaluation: every model family x target mode on BTC-USD 2024 H1, vs persistence.

Walk-forward (expanding window, weekly folds, refit per fold) over the test
period 2024-05-01 .. 2024-07-01 (9 folds, 1,464 forecasts) through the same
code path as ``python -m training backtest``: Feast historical features from a
home built from ``../shared/data``. Writes one JSON per (feature service,
target) and the PNG plots under ``$BENCH_MODELS_HOME/reports`` and prints a
Markdown table for BENCHMARKS.md.

Environment: BENCH_MODELS_HOME (home to build/reuse, default a temp dir),
BENCH_MODELS_FAMILIES (default lasso,lgbm,cnn,lstm), BENCH_MODELS_RUNS
(default ``price_model_v1:return,price_model_v1:price,price_model_v2:return``).
"""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path

TEST_START, TEST_END = "2024-05-01", "2024-07-01"
CSV = Path(__file__).resolve().parents[1].parent / "shared" / "data"
CSV_NAME = "coinbase_BTC-USD_3600_2024-01-01_2024-07-01.csv"
RUNS = "price_model_v1:return,price_model_v1:price,price_model_v2:return"


def prepare_home(home: Path) -> None:
    """Point CANDLECAST_HOME at ``home`` and load candles + features once."""
    from candlecast.settings import get_settings, reset_settings
    from ingestion.csv_import import load_csv
    from ingestion.feature_jobs import compute_job
    from ingestion.store import CandleStore

    os.environ["CANDLECAST_HOME"] = str(home)
    os.environ.setdefault("BENTOML_HOME", str(home / "bentoml"))
    reset_settings()
    store = CandleStore(get_settings().candles_dir)
    if not store.files("BTC-USD"):
        load_csv(store, CSV / CSV_NAME, "BTC-USD")
    compute_job(["BTC-USD"])


def run_one(service: str, target: str, families: list[str], reports: Path) -> dict:
    from training import plots
    from training.backtest import report, run_backtest, write_json
    from training.dataset import load_dataset
    from training.models import FitConfig
    from training.walkforward import utc

    data = load_dataset("BTC-USD", service, target)
    started = time.perf_counter()

    def progress(family: str, fold) -> None:
        print(f"  {service}/{target} {family} fold {fold.index + 1} done", flush=True)

    results = run_backtest(data, families, utc(TEST_START), utc(TEST_END), FitConfig(), progress)
    payload = report(data, results)
    stem = f"btc-usd_{service}_{target}"
    write_json(payload, reports / f"{stem}.json")
    plots.report_paths(reports, stem, results, f"BTC-USD {service} target={target}")
    print(f"{service}/{target}: {time.perf_counter() - started:.0f} s", flush=True)
    return payload


def markdown(payloads: list[dict]) -> str:
    naive = payloads[0]["persistence"]
    lines = [
        f"Persistence (naive) MAE ${naive['mae']:.2f}, RMSE {naive['rmse']:.2f}, "
        f"n = {naive['n']}, period {TEST_START} .. {TEST_END}.",
        "",
        "| model | features | target | MAE ($) | ratio vs persistence | directional acc. "
        "[95% band] | fit time (s, 9 folds) |",
        "|---|---|---|---:|---:|---|---:|",
    ]
    for p in payloads:
        for family, m in p["models"].items():
            low, high = m["directional_accuracy_ci95"]
            flag = " (leak?)" if m["leakage_suspect"] else ""
            lines.append(
                f"| {family} | {p['feature_service']} | {p['target']} | {m['mae']:.2f} | "
                f"{m['mae_ratio_vs_persistence']:.4f}{flag} | {m['directional_accuracy']:.3f} "
                f"[{low:.3f}, {high:.3f}] | {m['fit_seconds']:.0f} |"
            )
    return "\n".join(lines)


def intervals_markdown(payloads: list[dict]) -> str:
    """Calibration beside persistence's on the same hours, and the DM test of each MAE."""
    lines = [
        "| model | features | target | DM p | beats | cov 80 | cov 95 | width 80 ($) | "
        "width 95 ($) | interval score 80 | Brier p_up | hours |",
        "|---|---|---|---:|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for p in payloads:
        rows = [
            ("persistence", p["persistence"], None),
            *((f, m, m) for f, m in p["models"].items()),
        ]
        for family, m, own in rows:
            lines.append(
                f"| {family} | {p['feature_service']} | {p['target']} | "
                f"{'' if own is None else format(own['dm_pvalue'], '.3f')} | "
                f"{'' if own is None else ('yes' if own['beats_persistence'] else 'no')} | "
                f"{m['coverage_80']:.3f} | {m['coverage_95']:.3f} | {m['interval_width_80']:.0f} | "
                f"{m['interval_width_95']:.0f} | {m['interval_score_80']:.0f} | "
                f"{m['brier_up']:.4f} | {m['interval_n']} |"
            )
    return "\n".join(lines)


def real_home(prefix: str) -> Path | None:
    """The home of a real-data bench, loaded (``BENCH_MODELS_HOME`` or a temporary one);
    None, after saying so, when ``../shared/data`` is absent."""
    if not (CSV / CSV_NAME).exists():
        print(f"skipped: {CSV / CSV_NAME} not found")
        return None
    home = Path(os.environ.get("BENCH_MODELS_HOME") or tempfile.mkdtemp(prefix=prefix)).resolve()
    prepare_home(home)
    return home


def main() -> None:
    home = real_home("bench-models-")
    if home is None:
        return
    families = os.environ.get("BENCH_MODELS_FAMILIES", "lasso,lgbm,cnn,lstm").split(",")
    reports = home / "reports"
    payloads = []
    for run in os.environ.get("BENCH_MODELS_RUNS", RUNS).split(","):
        service, target = run.split(":")
        payloads.append(run_one(service, target, families, reports))
    print(markdown(payloads))
    print()
    print(intervals_markdown(payloads))
    print(f"\nJSON and PNG files: {reports}")


if __name__ == "__main__":
    main()
