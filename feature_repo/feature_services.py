"""One FeatureService per model version: training and serving read the same list.

Never edit a service a model was trained on: add a version. The v3 services put one
group on top of v2 each (the ablation) and ``price_model_v3`` puts all of them.
"""

from feast import FeatureService
from features import (
    price_features_v1,
    price_features_v2,
    price_features_v3_cross,
    price_features_v3_rvol,
    price_features_v3_seasonal,
    price_features_v3_volume,
)

price_model_v1 = FeatureService(
    name="price_model_v1",
    features=[price_features_v1],
    description="Reference 68 features (price-space models).",
)

price_model_v2 = FeatureService(
    name="price_model_v2",
    features=[price_features_v2],
    description="Stationary features (return-space models).",
)

price_model_v3_rvol = FeatureService(
    name="price_model_v3_rvol",
    features=[price_features_v2, price_features_v3_rvol],
    description="v2 + realised volatility from OHLC (Parkinson, Garman-Klass; 1 h, 24 h, 168 h).",
)

price_model_v3_cross = FeatureService(
    name="price_model_v3_cross",
    features=[price_features_v2, price_features_v3_cross],
    description="v2 + the peer symbol's returns and volatility (ETH for BTC, BTC for others).",
)

price_model_v3_volume = FeatureService(
    name="price_model_v3_volume",
    features=[price_features_v2, price_features_v3_volume],
    description="v2 + ln-volume z-scores (24 h, 168 h).",
)

price_model_v3_seasonal = FeatureService(
    name="price_model_v3_seasonal",
    features=[price_features_v2, price_features_v3_seasonal],
    description="v2 + hour-of-week seasonality of |log return| (4 weeks).",
)

price_model_v3 = FeatureService(
    name="price_model_v3",
    features=[
        price_features_v2,
        price_features_v3_rvol,
        price_features_v3_cross,
        price_features_v3_volume,
        price_features_v3_seasonal,
    ],
    description="v2 + every v3 group (rvol, cross, volume, seasonal).",
)
