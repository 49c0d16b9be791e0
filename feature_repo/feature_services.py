"""One FeatureService per model version: training and serving read the same list."""

from feast import FeatureService
from features import price_features_v1, price_features_v2

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
