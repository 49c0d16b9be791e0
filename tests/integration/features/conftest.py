"""Feature integration fixtures: the fake Coinbase exchange (see tests/fakes/coinbase.py)."""

from tests.fakes.coinbase import fake_coinbase  # noqa: F401 (re-exported pytest fixture)
