"""Logs of the jobs through the real CLI (``python -m candlecast`` subprocesses).

Every job step logs its figures at INFO on stderr in the one format
(``candlecast.logs.FORMAT``), ``-v`` adds DEBUG, and by default nothing from the
libraries underneath reaches the terminal: no Python warnings, no TensorFlow
native lines (absl, cuda), no Feast materialize chatter.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from candlecast.settings import PROJECT_ROOT, get_settings
from ingestion.feature_jobs import compute_job
from ingestion.sample import synthetic_candles, write_sample
from ingestion.store import CandleStore

pytestmark = pytest.mark.integration
#: ``%(asctime)s %(levelname)-7s %(name)s: %(message)s`` with DATEFMT.
LOG_LINE = re.compile(
    r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d (DEBUG  |INFO   |WARNING|ERROR  |CRITICAL) [\w.]+: \S.*$"
)
END = pd.Timestamp("2024-03-01", tz="UTC")
#: What must never reach a default run's stderr (third-party warnings, TF's native log).
NOISE = (
    "DeprecationWarning",
    "FutureWarning",
    "UserWarning",
    "absl",
    "cuda",
    "oneDNN",
    "cpu_feature_guard",
    "I0000",
)


def cli(home: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """``python -m candlecast ARGS`` as a user runs it: no test-only TF/CUDA settings."""
    base = {
        k: v
        for k, v in os.environ.items()
        if k not in ("TF_CPP_MIN_LOG_LEVEL", "CUDA_VISIBLE_DEVICES")
    }
    base.update(
        CANDLECAST_HOME=str(home), BENTOML_HOME=str(home / "bentoml"), COLUMNS="200", **(env or {})
    )
    done = subprocess.run(
        [sys.executable, "-m", "candlecast", *args],
        env=base,
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, f"{args}: {done.stderr[-3000:]}"
    return done


def logged(stderr: str, logger: str, pattern: str, level: str = "INFO") -> str:
    """The one log line of ``logger`` at ``level`` matching ``pattern``, checked for the format."""
    found = [
        line
        for line in stderr.splitlines()
        if re.search(rf" {level} +{re.escape(logger)}: {pattern}", line)
    ]
    assert len(found) == 1, f"{logger} {pattern!r} not logged once in:\n{stderr}"
    assert LOG_LINE.match(found[0]), found[0]
    return found[0]


def log_lines(stderr: str) -> list[str]:
    """Lines that start like a log record; each must be in the one format."""
    lines = [line for line in stderr.splitlines() if re.match(r"^\d{4}-\d\d-\d\dT", line)]
    for line in lines:
        assert LOG_LINE.match(line), line
    return lines


def test_ingestion_jobs_log_their_figures(home, fake_coinbase, tmp_path):
    market = synthetic_candles("BTC-USD", 400, seed=1).drop(index=[100])  # ends this hour
    fake_coinbase.set_candles("BTC-USD", market)
    fake_coinbase.inject(500)  # one retry, logged at WARNING
    start = f"{market['time'].iloc[0]:%Y-%m-%dT%H:%M}"
    end = f"{market['time'].iloc[-1] + pd.Timedelta(hours=1):%Y-%m-%dT%H:%M}"  # the hour may roll

    backfill = cli(home, "backfill", "--symbol", "BTC-USD", "--start", start, "--end", end).stderr
    logged(
        backfill,
        "ingestion.backfill",
        r"BTC-USD backfill \S+ \.\. \S+: 2 pages \(\d writes\), 3 requests, 399 fetched, 399 new, "
        r"0 already stored, 1 gaps \(1 h\), [\d.]+ s$",
    )
    logged(
        backfill,
        "ingestion.coinbase",
        r"BTC-USD candles \S+ \.\. \S+: HTTP 500 fault 500; retry 1 of 3 in [\d.]+ s$",
        level="WARNING",
    )

    csv = tmp_path / "eth.csv"
    eth = synthetic_candles("ETH-USD", 50, seed=2, end=END)
    eth.assign(time=eth["time"].astype("int64") // 10**6)[
        ["time", "low", "high", "open", "close", "volume"]
    ].to_csv(csv, index=False)
    logged(
        cli(home, "load-csv", str(csv), "--symbol", "ETH-USD").stderr,
        "ingestion.csv_import",
        r"ETH-USD load-csv \S+eth\.csv: 50 candles 2024-02-27T22:00:00Z \.\. "
        r"2024-02-29T23:00:00Z, 50 new, 0 already stored, 0 gaps \(0 h\)$",
    )

    logged(
        cli(home, "sample", "--symbol", "SOL-USD", "--hours", "30", "--end", "2024-03-01").stderr,
        "ingestion.sample",
        r"SOL-USD sample: 30 synthetic candles \(seed 0\) 2024-02-28T18:00:00Z \.\. "
        r"2024-02-29T23:00:00Z, 30 new, 0 already stored$",
    )

    features = cli(home, "features", "--symbol", "BTC-USD", "--materialize")
    logged(
        features.stderr,
        "ingestion.feature_dataset",
        r"BTC-USD features: 399 new rows, full \(no rows yet\), [\d.]+ s$",
    )
    logged(
        features.stderr,
        "ingestion.feature_jobs",
        r"materialized the newest rows of 1 symbols online \(1 windows, \S+ \.\. \S+ UTC\) "
        r"in [\d.]+ s$",
    )
    assert "Materializing" not in features.stdout + features.stderr  # Feast's own prints
    assert not [line for line in log_lines(features.stderr) if " DEBUG " in line]

    update = cli(home, "update", "--symbol", "BTC-USD").stderr
    logged(
        update,
        "ingestion.feature_jobs",
        r"BTC-USD update: \d+ fetched \(\d+ requests\), \d+ new candles, \d+ feature rows "
        r"\((full|incremental)\), latest close \S+Z, \d+ gaps \(\d+ h\), [\d.]+ s to online$",
    )


def test_verbose_adds_debug_lines_and_feast_chatter(home):
    write_sample(CandleStore(get_settings().candles_dir), "BTC-USD", 60, seed=0, end=END)
    verbose = cli(home, "-v", "features", "--symbol", "BTC-USD", "--materialize")
    debug = [line for line in log_lines(verbose.stderr) if " DEBUG " in line]
    assert any(" ingestion.feature_dataset: BTC-USD: 60 rows in " in line for line in debug), (
        verbose.stderr
    )
    assert "Materializing" in verbose.stdout  # verbose hides nothing


def tiny_training_home(home: Path) -> None:
    """700 synthetic hours with features: enough for one weekly fold on 2024-02-27 .. 03-01."""
    write_sample(CandleStore(get_settings().candles_dir), "BTC-USD", 700, seed=0, end=END)
    compute_job(["BTC-USD"])


def test_train_is_quiet_by_default_and_logs_each_fold(home):
    tiny_training_home(home)
    done = cli(
        home,
        "train",
        "--symbol",
        "BTC-USD",
        "--models",
        "cnn",
        "--max-epochs",
        "1",
        "--test-start",
        "2024-02-27",
    )
    leaked = [line for line in done.stderr.splitlines() if any(n in line for n in NOISE)]
    assert leaked == [], done.stderr
    logged(
        done.stderr,
        "training.walkforward",
        r"BTC-USD cnn fold 1 \(2024-02-27T00:00Z \.\. 2024-03-01T00:00Z\): \d{3} train rows, "
        r"\d+ test rows, fit [\d.]+ s, MAE [\d.]+ vs persistence [\d.]+ \(ratio [\d.]+\)$",
    )
    logged(done.stderr, "training.registry", r"registered candlecast-cnn-btc-usd:\w+ as \w+$")
    log_lines(done.stderr)


def test_backtest_logs_its_summary(home):
    tiny_training_home(home)
    done = cli(
        home,
        "backtest",
        "--symbol",
        "BTC-USD",
        "--models",
        "lasso",
        "--test-start",
        "2024-02-27",
        "--no-plots",
    )
    logged(
        done.stderr,
        "training.backtest",
        r"BTC-USD backtest lasso 2024-02-27T00:00:00\+00:00 \.\. \S+ \(1 folds, \d+ rows\): "
        r"MAE [\d.]+ vs persistence [\d.]+ \(ratio [\d.]+, DM p [\d.]+, "
        r"(beats|does not beat) persistence\), direction [\d.]+, 80% coverage ([\d.]+|nan) "
        r"\(persistence ([\d.]+|nan)\), fit [\d.]+ s$",
    )
    assert not [line for line in done.stderr.splitlines() if any(n in line for n in NOISE)]


ABSL_NOTICE = (
    "WARNING: All log messages before absl::InitializeLog() is called are written to STDERR"
)
CUDA_LINE = (
    "I0000 00:00:1796114888.589554   15882 cudart_stub.cc:31] Could not find cuda drivers on "
    "your machine, GPU will not be used."
)
NATIVE_ERROR = "E0000 00:00:1796114888.589554   15882 real.cc:1] a native error stays"
#: A stand-in ``tensorflow`` package printing at fd 2 on import as the real one does.
FAKE_TENSORFLOW = f"""
import os, sys
for line in {[ABSL_NOTICE, CUDA_LINE, NATIVE_ERROR]!r}:
    os.write(2, line.encode() + b"\\n")
print("python stderr during the import stays", file=sys.stderr)
"""


@pytest.mark.parametrize("verbose", [False, True])
def test_native_import_lines_are_filtered_unless_verbose(tmp_path, verbose):
    """TF's import-time absl lines ignore TF_CPP_MIN_LOG_LEVEL: filtered at fd 2, only them."""
    (tmp_path / "tensorflow").mkdir()
    (tmp_path / "tensorflow" / "__init__.py").write_text(FAKE_TENSORFLOW)
    script = (
        "import sys\nfrom candlecast import logs\n"
        f"logs.configure(verbose={verbose})\n"
        "import tensorflow\nprint('after', file=sys.stderr)\n"
    )
    env = {**os.environ, "PYTHONPATH": f"{tmp_path}{os.pathsep}{PROJECT_ROOT}"}
    done = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    lines = done.stderr.splitlines()
    assert NATIVE_ERROR in lines
    assert "python stderr during the import stays" in lines and lines[-1] == "after"
    noisy = [line for line in lines if "absl::InitializeLog" in line or "cudart_stub" in line]
    assert len(noisy) == (2 if verbose else 0), done.stderr
