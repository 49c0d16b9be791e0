"""Where feature rows come from: the feature parquet dataset and the online push.

The FileSource path is the absolute glob of ``$CANDLECAST_HOME/features/*/*.parquet``
built from the settings, so it resolves the same from any working directory (the
DuckDB offline store resolves relative paths against the CWD). Rows are written
by ``candlecast features`` / ``update`` (``ingestion.features``), never by
Feast: pushes go to the online store only.
"""

import os

from feast import FileSource, PushSource
from feast.data_format import ParquetFormat

from candlecast.feature_catalog import FEATURE_FILES
from candlecast.settings import get_settings

if not os.path.isabs(os.environ.get("CANDLECAST_HOME", "")):
    # The bare Feast CLI chdirs into feature_repo/ and expands ${CANDLECAST_HOME} in
    # feature_store.yaml verbatim: without an absolute path it would silently register
    # an empty dataset and write a registry under a folder literally named "${CANDLECAST_HOME}".
    raise RuntimeError(
        "CANDLECAST_HOME must be an absolute path in the environment before Feast loads "
        "feature_repo/: run `export CANDLECAST_HOME=$PWD/data` from the project root "
        "(the candlecast commands and the service set it themselves)"
    )

price_features_source = FileSource(
    name="price_features_source",
    path=str(get_settings().features_dir / FEATURE_FILES),
    file_format=ParquetFormat(),
    timestamp_field="event_timestamp",
    description="Hourly feature rows, event_timestamp = candle close time (UTC, us)",
)

price_features_push = PushSource(
    name="price_features_push",
    batch_source=price_features_source,
    description="Real-time rows from `candlecast update`, pushed to the online store",
)
