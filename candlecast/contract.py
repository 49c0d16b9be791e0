"""The model contract: what a stored model is called, what it eats and what it emits.

Training writes every model through this module and serving reads every model
through it, so there is one definition of

- a stored model's **name** (``candlecast-{family}-{symbol}``) and **labels**
  (``stage``, ``family``, ``symbol``);
- its **metadata schema** (:class:`ModelSpec`: the FeatureService and ordered
  features it was trained on, the scaling around it, the target, the training
  window and its walk-forward metrics beside persistence);
- its **input**: a feature row in the spec's column order, standardised with the
  recorded scaling (:func:`model_input`);
- its **output**: raw model outputs, un-scaled to the target, turned into a
  next-hour price (:func:`to_target`, :func:`to_price`, :func:`forecast_prices`).

No BentoML, Feast or TensorFlow here: plain numpy, so both sides and the unit
tests share it cheaply. Files and forward passes are :mod:`candlecast.artifacts`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from typing import Any

import numpy as np

from candlecast.symbols import symbol_slug

FAMILIES = ("lasso", "lgbm", "cnn", "lstm")
#: Families whose network reads the feature vector as a sequence ``(n, features, 1)``.
SEQUENCE_FAMILIES = ("cnn", "lstm")
#: The persistence forecast (next close = this close): served beside every model.
NAIVE = "naive"
TARGETS = ("return", "price")
CHAMPION, CANDIDATE = "champion", "candidate"
STAGES = (CHAMPION, CANDIDATE)
NAME_PREFIX = "candlecast-"

#: A model's raw forward pass on standardised ``(n, features)`` rows.
Predict = Callable[[np.ndarray], np.ndarray]


class ContractError(ValueError):
    """Stored metadata that breaks the contract; the message names the field."""


def check_family(family: str) -> str:
    if family not in FAMILIES:
        raise ValueError(f"unknown model family {family!r}: expected one of {', '.join(FAMILIES)}")
    return family


def check_target(target: str) -> str:
    if target not in TARGETS:
        raise ValueError(f"unknown target {target!r}: expected one of {', '.join(TARGETS)}")
    return target


def model_name(family: str, symbol: str) -> str:
    """``candlecast-cnn-btc-usd`` for family ``cnn`` and symbol ``BTC-USD``."""
    return f"{NAME_PREFIX}{family}-{symbol_slug(symbol)}"


def labels(family: str, symbol: str, stage: str) -> dict[str, str]:
    """The labels a stored version carries; serving finds champions by them."""
    if stage not in STAGES:
        raise ValueError(f"unknown stage {stage!r}: expected one of {', '.join(STAGES)}")
    return {"stage": stage, "family": family, "symbol": symbol_slug(symbol)}


@dataclass(frozen=True)
class Scaling:
    """Standardisation around a model: ``(x - input_mean) / input_scale`` in,
    ``out * output_scale + output_mean`` out. ``None`` means identity."""

    input_mean: np.ndarray | None = None
    input_scale: np.ndarray | None = None
    output_mean: float | None = None
    output_scale: float | None = None


@dataclass(frozen=True)
class ModelSpec:
    """Everything recorded with a stored model version: the metadata schema.

    ``version`` is the stored tag (``name:version``), not part of the metadata.
    Training fills every field; serving needs the first group (what to feed the
    model, how to read its output) and shows the metrics.
    """

    family: str
    symbol: str
    feature_service: str
    features: tuple[str, ...]
    target: str = "return"
    scaling: Scaling = field(default_factory=Scaling)
    version: str = ""
    # Training context and walk-forward evidence (absent = unknown).
    train_start: str | None = None
    train_end: str | None = None
    cut: str | None = None
    n_train: int | None = None
    data_fingerprint: str | None = None
    metrics: Mapping[str, Any] = field(default_factory=dict)
    persistence: Mapping[str, Any] = field(default_factory=dict)
    beats_persistence: bool | None = None
    leakage_suspect: bool = False
    fit_details: Mapping[str, float] = field(default_factory=dict)
    champion_comparison: Mapping[str, Any] | None = None
    # Interval calibrations (candlecast.intervals.Calibration.to_dict()): the model's
    # own, and persistence's on the same period (the naive model is served with it).
    intervals: Mapping[str, Any] = field(default_factory=dict)
    persistence_intervals: Mapping[str, Any] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return model_name(self.family, self.symbol)

    @property
    def input_shape(self) -> str:
        """``sequence`` for networks that read ``(features, 1)``, else ``flat``."""
        return "sequence" if self.family in SEQUENCE_FAMILIES else "flat"

    @property
    def mae_ratio_vs_persistence(self) -> float | None:
        ratio = self.metrics.get("mae_ratio_vs_persistence")
        return None if ratio is None else float(ratio)

    def to_metadata(self) -> dict[str, Any]:
        """The JSON metadata stored with the version (BentoML rejects None: absent = null)."""
        meta: dict[str, Any] = {}
        for f in fields(self):
            if f.name in ("version", "scaling"):
                continue
            meta[f.name] = getattr(self, f.name)
        meta["features"] = list(self.features)
        meta["input_shape"] = self.input_shape
        meta["input_mean"] = _as_list(self.scaling.input_mean)
        meta["input_scale"] = _as_list(self.scaling.input_scale)
        meta["output_mean"] = self.scaling.output_mean
        meta["output_scale"] = self.scaling.output_scale
        return _json(meta)

    @classmethod
    def from_metadata(cls, version: str, meta: Mapping[str, Any]) -> ModelSpec:
        """Parse stored metadata; raise :class:`ContractError` naming the field that is wrong."""
        features = tuple(meta.get("features") or ())
        if not features:
            raise ContractError(f"model {version}: metadata has no 'features' list")
        for key in ("family", "symbol", "feature_service"):
            if not meta.get(key):
                raise ContractError(f"model {version}: metadata has no {key!r}")
        target = str(meta.get("target", "return"))
        if target not in TARGETS:
            raise ContractError(f"model {version}: target must be one of {', '.join(TARGETS)}")
        scaling = Scaling(
            _vector(meta.get("input_mean")),
            _vector(meta.get("input_scale")),
            _scalar(meta.get("output_mean")),
            _scalar(meta.get("output_scale")),
        )
        for key in ("input_mean", "input_scale"):
            value = getattr(scaling, key)
            if value is not None and value.shape != (len(features),):
                raise ContractError(f"model {version}: {key} length != {len(features)} features")
        known = {f.name for f in fields(cls)} - {"features", "target", "scaling", "version"}
        extra = {k: meta[k] for k in known if k in meta}
        extra["leakage_suspect"] = bool(extra.get("leakage_suspect", False))
        return cls(features=features, target=target, scaling=scaling, version=version, **extra)


def naive_spec(symbol: str, feature_service: str) -> ModelSpec:
    """The persistence forecast (next close = this close), ratio 1.0 by definition."""
    return ModelSpec(
        family=NAIVE,
        symbol=symbol,
        feature_service=feature_service,
        features=("close",),
        target="price",
        version=NAIVE,
        metrics={"mae_ratio_vs_persistence": 1.0},
    )


def feature_vector(spec: ModelSpec, values: Mapping[str, Any]) -> np.ndarray | None:
    """One entity's feature values in the model's column order; None if any is missing."""
    row = np.array([_number(values.get(name)) for name in spec.features], dtype=np.float64)
    return row if np.isfinite(row).all() else None


def model_input(spec: ModelSpec | Scaling, rows: np.ndarray) -> np.ndarray:
    """Raw feature rows ``(n, features)`` -> what the model's forward pass takes.

    float64, so price-level features keep their cents; a network's forward pass
    casts to its own float32 (``candlecast.artifacts.forward``).
    """
    scaling = spec.scaling if isinstance(spec, ModelSpec) else spec
    x = np.asarray(rows, dtype=np.float64)
    if scaling.input_mean is not None:
        x = x - scaling.input_mean
    if scaling.input_scale is not None:
        x = x / scaling.input_scale
    return x


def to_target(spec: ModelSpec | Scaling, outputs: np.ndarray) -> np.ndarray:
    """Raw model outputs -> target units (undo the recorded output standardisation)."""
    scaling = spec.scaling if isinstance(spec, ModelSpec) else spec
    raw = np.asarray(outputs, dtype=np.float64).reshape(-1)
    if scaling.output_scale is not None:
        raw = raw * scaling.output_scale
    if scaling.output_mean is not None:
        raw = raw + scaling.output_mean
    return raw


def target_values(next_close: np.ndarray, price_now: np.ndarray, target: str) -> np.ndarray:
    """The training label: the next-hour log return, or the next-hour close itself."""
    next_close = np.asarray(next_close, dtype=np.float64)
    if check_target(target) == "return":
        return np.log(next_close / np.asarray(price_now, dtype=np.float64))
    return next_close


def to_price(values: np.ndarray, close: np.ndarray, target: str) -> np.ndarray:
    """Target values -> next-hour prices (the inverse of :func:`target_values`)."""
    values = np.asarray(values, dtype=np.float64).reshape(-1)
    if check_target(target) == "return":
        return np.asarray(close, dtype=np.float64).reshape(-1) * np.exp(values)
    return values


def forecast_prices(spec: ModelSpec, outputs: np.ndarray, close: np.ndarray) -> np.ndarray:
    """Raw model outputs -> next-hour prices: the one output path of training and serving."""
    return to_price(to_target(spec, outputs), close, spec.target)


def _as_list(values: np.ndarray | None) -> list[float] | None:
    return None if values is None else [float(v) for v in values]


def _json(value: Any) -> Any:
    """BentoML metadata is JSON without nulls or non-finite floats: drop and stringify."""
    if isinstance(value, Mapping):
        return {str(k): _json(v) for k, v in value.items() if v is not None}
    if isinstance(value, list | tuple):
        return [_json(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    return value


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
