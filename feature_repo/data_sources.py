"""Where feature rows come from: the feature parquet dataset and the online push.

The FileSource path is the absolute glob of ``$CANDLECAST_HOME/features/*/*.parquet``
built from the settings, so it resolves the same from any working directory (the
DuckDB offline store resolves relative paths against the CWD). Rows are written
by ``python -m ingestion features`` / ``update`` (``ingestion.features``), never by
Feast: pushes go to the online store only.
"""

from feast import FileSource, PushSource
from feast.data_format import ParquetFormat

from ingestion.feature_dataset import FeatureDataset
from ingestion.settings import get_settings

price_features_source = FileSource(
    name="price_features_source",
    path=FeatureDataset(get_settings().features_dir).glob,
    file_format=ParquetFormat(),
    timestamp_field="event_timestamp",
    description="Hourly feature rows, event_timestamp = candle close time (UTC, us)",
)

price_features_push = PushSource(
    name="price_features_push",
    batch_source=price_features_source,
    description="Real-time rows from `python -m ingestion update`, pushed to the online store",
)
