"""The model input/output transform, driven only by a registered model's metadata.

Training (stage C) records in each model's metadata the ordered feature list,
optional input/output scaling and the target mode; this module is the single
place the server applies them, so a model is served exactly as it was fit.
No BentoML, Feast or TensorFlow here: it is unit-tested with plain arrays.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

NAIVE = "naive"
PRICE_FEATURE_SERVICE = "price_model_v1"
PAST_HOURS = 24
#: v1 features that carry the current close and the past 24 closes, newest first.
PRICE_FEATURES = ("close", *(f"price_{h}_hour_ago" for h in range(1, PAST_HOURS + 1)))


@dataclass(frozen=True)
class ModelSpec:
    """What the server needs to know about one registered model version."""

    family: str
    symbol: str
    version: str
    feature_service: str
    features: tuple[str, ...]
    target: str = "return"
    input_shape: str = "flat"
    input_mean: np.ndarray | None = None
    input_scale: np.ndarray | None = None
    output_mean: float | None = None
    output_scale: float | None = None
    metrics: Mapping[str, Any] = field(default_factory=dict)
    leakage_suspect: bool = False  # training flagged it: > 5 % better than persistence

    @classmethod
    def from_metadata(cls, version: str, meta: Mapping[str, Any]) -> ModelSpec:
        """Parse contract metadata; raise ValueError naming the field that is wrong."""
        features = tuple(meta.get("features") or ())
        if not features:
            raise ValueError(f"model {version}: metadata has no 'features' list")
        if meta.get("target", "return") not in ("return", "price"):
            raise ValueError(f"model {version}: target must be 'return' or 'price'")
        spec = cls(
            family=str(meta["family"]),
            symbol=str(meta["symbol"]),
            version=version,
            feature_service=str(meta["feature_service"]),
            features=features,
            target=str(meta.get("target", "return")),
            input_shape=str(meta.get("input_shape", "flat")),
            input_mean=_vector(meta.get("input_mean")),
            input_scale=_vector(meta.get("input_scale")),
            output_mean=_scalar(meta.get("output_mean")),
            output_scale=_scalar(meta.get("output_scale")),
            metrics=dict(meta.get("metrics") or {}),
            leakage_suspect=bool(meta.get("leakage_suspect", False)),
        )
        for name in ("input_mean", "input_scale"):
            value = getattr(spec, name)
            if value is not None and value.shape != (len(features),):
                raise ValueError(f"model {version}: {name} length != {len(features)} features")
        return spec

    @property
    def mae_ratio_vs_persistence(self) -> float | None:
        ratio = self.metrics.get("mae_ratio_vs_persistence")
        return None if ratio is None else float(ratio)


def naive_spec(symbol: str) -> ModelSpec:
    """The persistence forecast (next close = this close), ratio 1.0 by definition."""
    return ModelSpec(
        family=NAIVE,
        symbol=symbol,
        version=NAIVE,
        feature_service=PRICE_FEATURE_SERVICE,
        features=("close",),
        target="price",
        metrics={"mae_ratio_vs_persistence": 1.0},
    )


def feature_row(spec: ModelSpec, values: Mapping[str, Any]) -> np.ndarray:
    """Order one entity's feature values as the model's columns; None if any is missing."""
    row = np.array([_number(values.get(name)) for name in spec.features], dtype=np.float64)
    return row if np.isfinite(row).all() else None


def model_input(spec: ModelSpec, rows: np.ndarray) -> np.ndarray:
    """Apply the recorded input standardisation: (x - mean) / scale, as float32."""
    x = np.asarray(rows, dtype=np.float64)
    if spec.input_mean is not None:
        x = x - spec.input_mean
    if spec.input_scale is not None:
        x = x / spec.input_scale
    return x.astype(np.float32)


def to_price(spec: ModelSpec, outputs: np.ndarray, close: np.ndarray) -> np.ndarray:
    """Undo output scaling, then turn the target (log return or price) into a price."""
    raw = np.asarray(outputs, dtype=np.float64).reshape(-1)
    if spec.output_scale is not None:
        raw = raw * spec.output_scale
    if spec.output_mean is not None:
        raw = raw + spec.output_mean
    if spec.target == "return":
        return np.asarray(close, dtype=np.float64) * np.exp(raw)
    return raw


def _vector(value: Any) -> np.ndarray | None:
    return None if value is None else np.asarray(value, dtype=np.float64)


def _scalar(value: Any) -> float | None:
    return None if value is None else float(value)


def _number(value: Any) -> float:
    if value is None:
        return math.nan
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan
