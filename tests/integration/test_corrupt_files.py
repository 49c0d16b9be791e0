"""A corrupt parquet file is answered by every stage with one ``error:`` line, exit 1.

The line names the file and what to do about it; no traceback, and nothing in the
candle store or the feature dataset changes (bytes and mtimes compared). Commands
run through the real ``candlecast`` app (``candlecast.cli.build_app``).
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from candlecast.cli import build_app
from candlecast.settings import get_settings
from ingestion.feature_dataset import FeatureDataset
from ingestion.feature_jobs import compute_job
from ingestion.sample import synthetic_candles, write_sample
from ingestion.store import CandleStore

pytestmark = pytest.mark.integration
END = pd.Timestamp("2024-03-01", tz="UTC")
HOURS = 1000  # 2024-01-19 08:00 .. 2024-02-29 23:00: two month files per symbol
KINDS = ("truncated", "not_parquet", "empty")
APP = build_app()


def run(*args: str):
    return CliRunner(env={"COLUMNS": "200"}).invoke(APP, list(args))


def candles() -> CandleStore:
    return CandleStore(get_settings().candles_dir)


def dataset() -> FeatureDataset:
    return FeatureDataset(get_settings().features_dir)


def corrupt(path: Path, kind: str = "truncated") -> None:
    data = path.read_bytes()
    path.write_bytes(
        {"truncated": data[: len(data) // 2], "not_parquet": b"not a parquet file\n", "empty": b""}[
            kind
        ]
    )


def snapshot(home: Path) -> dict[str, tuple[bytes, int]]:
    """Bytes and mtime of every data file under the candle store and the feature dataset."""
    files = [p for folder in ("candles", "features") for p in (home / folder).rglob("*")]
    return {
        str(p.relative_to(home)): (p.read_bytes(), p.stat().st_mtime_ns)
        for p in files
        if p.is_file() and p.name != ".lock"
    }


def assert_one_error(result, path: Path, remedy: str) -> str:
    """Exit 1, exactly one ``error:`` line naming ``path`` and ``remedy``, no traceback."""
    assert isinstance(result.exception, SystemExit), result.exception  # not an unhandled error
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    errors = [line for line in result.output.splitlines() if "error" in line.lower()]
    assert len(errors) == 1 and errors[0].startswith("error: "), result.output
    assert str(path) in errors[0] and "is corrupt or unreadable" in errors[0], errors[0]
    assert remedy in errors[0], errors[0]
    return errors[0]


@pytest.fixture
def synthetic(home: Path) -> Path:
    """BTC-USD: the synthetic market (two months) with its features computed."""
    write_sample(candles(), "BTC-USD", HOURS, seed=0, end=END)
    compute_job(["BTC-USD"])
    return home


@pytest.fixture
def real(home: Path) -> Path:
    """ETH-USD: candles stored as an exchange backfill would (no synthetic label), features."""
    candles().write(synthetic_candles("ETH-USD", HOURS, seed=1, end=END))
    compute_job(["ETH-USD"])
    return home


SAMPLE_REMEDY = (
    f"delete it and re-run `candlecast sample --symbol BTC-USD --hours {HOURS} --seed 0`"
)
FEATURES_REMEDY = "delete it, or run `candlecast features --full --symbol {}`"


def test_status_names_a_corrupt_candle_file(synthetic):
    bad = candles().files("BTC-USD")[0]
    corrupt(bad)
    before = snapshot(synthetic)
    assert_one_error(run("status"), bad, SAMPLE_REMEDY)
    assert snapshot(synthetic) == before


@pytest.mark.parametrize("kind", KINDS)
def test_features_names_a_corrupt_candle_file_and_writes_nothing(synthetic, kind):
    bad = candles().files("BTC-USD")[1]
    corrupt(bad, kind)
    before = snapshot(synthetic)
    for args in (["features"], ["features", "--full", "--symbol", "BTC-USD"]):
        assert_one_error(run(*args), bad, SAMPLE_REMEDY)
        assert snapshot(synthetic) == before


def test_features_names_a_corrupt_feature_file_and_full_rebuilds_it(synthetic):
    rows = dataset().read("BTC-USD")
    bad = dataset().files("BTC-USD")[0]
    corrupt(bad)
    before = snapshot(synthetic)
    for args in (["features", "--symbol", "BTC-USD"], ["features", "--materialize"]):
        assert_one_error(run(*args), bad, FEATURES_REMEDY.format("BTC-USD"))
        assert snapshot(synthetic) == before
    # the remedy it names works
    assert run("features", "--full", "--symbol", "BTC-USD").exit_code == 0
    pd.testing.assert_frame_equal(dataset().read("BTC-USD"), rows)


@pytest.mark.parametrize("corrupted", ["candles", "features"])
def test_update_stops_before_fetching_anything(real, fake_coinbase, corrupted):
    fake_coinbase.set_candles("ETH-USD", synthetic_candles("ETH-USD", 48, seed=1))
    store = candles() if corrupted == "candles" else dataset()
    bad = store.files("ETH-USD")[-1]
    corrupt(bad)
    before = snapshot(real)
    remedy = (
        "delete it and re-run `candlecast backfill --symbol ETH-USD --start 2024-02-01 "
        "--end 2024-03-01`"
        if corrupted == "candles"
        else FEATURES_REMEDY.format("ETH-USD")
    )
    assert_one_error(run("update", "--symbol", "ETH-USD"), bad, remedy)
    assert fake_coinbase.requests == []
    assert snapshot(real) == before


def test_train_and_backtest_name_a_corrupt_candle_file(synthetic):
    bad = candles().files("BTC-USD")[0]
    corrupt(bad, "not_parquet")
    before = snapshot(synthetic)
    for args in (
        ["train", "--symbol", "BTC-USD", "--models", "lasso"],
        ["backtest", "--symbol", "BTC-USD", "--models", "lasso", "--test-start", "2024-02-20"],
    ):
        assert_one_error(run(*args), bad, SAMPLE_REMEDY)
    assert snapshot(synthetic) == before


def test_train_and_backtest_name_a_corrupt_feature_file(synthetic):
    """Feast reads the whole feature glob; the unreadable file is named, not a DuckDB error."""
    bad = dataset().files("BTC-USD")[1]
    corrupt(bad)
    before = snapshot(synthetic)
    for args in (
        ["train", "--symbol", "BTC-USD", "--models", "lasso"],
        ["backtest", "--symbol", "BTC-USD", "--models", "lasso", "--test-start", "2024-02-20"],
    ):
        assert_one_error(run(*args), bad, FEATURES_REMEDY.format("BTC-USD"))
    assert snapshot(synthetic) == before


def write_csv(frame: pd.DataFrame, path: Path) -> Path:
    out = frame.assign(time=frame["time"].astype("int64") // 10**6)  # microseconds -> seconds
    out[["time", "low", "high", "open", "close", "volume"]].to_csv(path, index=False)
    return path


def test_a_write_into_a_corrupt_month_writes_nothing(real, tmp_path):
    """load-csv spanning a new month and a corrupt one: the new month is not written either."""
    january, february = candles().files("ETH-USD")
    corrupt(february)
    january.unlink()  # so the import adds a whole month before reaching the corrupt one
    before = snapshot(real)
    csv = write_csv(synthetic_candles("ETH-USD", HOURS, seed=1, end=END), tmp_path / "eth.csv")
    line = assert_one_error(
        run("load-csv", str(csv), "--symbol", "ETH-USD"),
        february,
        "delete it and re-run `candlecast backfill --symbol ETH-USD --start 2024-02-01 "
        "--end 2024-03-01` (or `candlecast load-csv FILE --symbol ETH-USD`",
    )
    assert snapshot(real) == before
    assert not january.exists()
    assert "2024-02" in line


def test_the_backfill_it_suggests_restores_the_month(real, fake_coinbase):
    market = synthetic_candles("ETH-USD", HOURS, seed=1, end=END)
    fake_coinbase.set_candles("ETH-USD", market)
    february = candles().files("ETH-USD")[-1]
    original = pq.read_table(february)
    corrupt(february)
    line = assert_one_error(run("features", "--symbol", "ETH-USD"), february, "candlecast backfill")
    command = re.search(r"`candlecast (backfill [^`]+)`", line).group(1)
    february.unlink()
    assert run(*shlex.split(command)).exit_code == 0
    assert pq.read_table(february).equals(original)
    assert run("features", "--symbol", "ETH-USD").exit_code == 0
