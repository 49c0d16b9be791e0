"""A small synthetic market home with every family trained by the real training code.

Used by the train→serve parity test: GARCH candles (``ingestion.sample``) for a
few symbols, features published through Feast, and for each symbol every model
family walk-forwarded, fit and registered by ``training.train.train_family``
exactly as ``candlecast train`` does, only with a short walk-forward and few
epochs so it runs in a test.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd

from candlecast.contract import FAMILIES

#: The candle before this instant is the last one stored (fixed: the market is deterministic).
END = pd.Timestamp("2024-03-01", tz="UTC")


@dataclass(frozen=True)
class MarketSymbol:
    """One synthetic symbol and what its models are trained on."""

    symbol: str
    feature_service: str
    target: str
    seed: int


@dataclass
class TrainedSymbol:
    """The labelled rows a symbol's models were trained on and the tag of each family."""

    market: MarketSymbol
    data: object  # training.dataset.LabelledFrame
    tags: dict[str, str] = field(default_factory=dict)


def publish_market(symbols: list[MarketSymbol], hours: int, end: pd.Timestamp = END) -> None:
    """Synthetic candles of ``symbols`` into the current home, features offline and online."""
    from candlecast.settings import get_settings
    from ingestion.feature_jobs import publish
    from ingestion.sample import write_sample
    from ingestion.store import CandleStore

    store = CandleStore(get_settings().candles_dir)
    for s in symbols:
        write_sample(store, s.symbol, hours=hours, seed=s.seed, end=end)
    publish([s.symbol for s in symbols])


def train_market(
    symbols: list[MarketSymbol],
    cfg: object,  # training.models.FitConfig
    families: tuple[str, ...] = FAMILIES,
    eval_days: int = 7,
) -> dict[str, TrainedSymbol]:
    """Train and register every family of every symbol with ``train_family`` (one fold)."""
    from training.dataset import load_dataset
    from training.train import data_end, train_family

    trained = {}
    for s in symbols:
        data = load_dataset(s.symbol, s.feature_service, s.target)
        cut = data_end(data)
        test_start = cut - pd.Timedelta(days=eval_days)
        result = TrainedSymbol(s, data)
        for family in families:
            result.tags[family] = train_family(data, family, cut, test_start, cfg).tag
        trained[s.symbol] = result
    return trained
