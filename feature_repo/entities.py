"""The one entity: a Coinbase product id such as ``BTC-USD``."""

from feast import Entity, ValueType

symbol = Entity(
    name="symbol",
    join_keys=["symbol"],
    value_type=ValueType.STRING,
    description="Coinbase product id (BASE-QUOTE), e.g. BTC-USD",
)
