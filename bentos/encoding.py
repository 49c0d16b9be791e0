"""The rows the API sends a model service, and the rows it answers.

A request row is ``[symbol_index, version_code, x_1 .. x_n, NaN padding]``,
:data:`ROW_WIDTH` floats for every model: the version travels with its features, so
the model service runs each row through exactly the version the API chose (and
names in its answer), and adaptive batching may concatenate rows of several
symbols and of old and new versions alike. ``symbol_index`` is the position in the
served symbols (``CANDLECAST_SERVE_SYMBOLS``, the same list in every process);
``version_code`` is :func:`version_code` of the stored tag. Features arrive already
standardised (``candlecast.contract.model_input``).

A response row is ``[output, status]``: the raw model output, and :data:`OK`, or
:data:`MISSING` (no such version in the model store) or :data:`FAILED` (it could not
be loaded) with a NaN output. One row's unknown version never fails the other rows
of its batch.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Sequence

import numpy as np

from candlecast.contract import ModelSpec, Predict
from candlecast.feature_catalog import FEATURE_COLUMNS

log = logging.getLogger(__name__)

#: Width of every request row: symbol index, version code, room for every catalogued feature.
ROW_WIDTH = 2 + len(FEATURE_COLUMNS)
OK, MISSING, FAILED = 0, 1, 2

#: (symbol_index, version_code) -> (spec, forward pass); raises VersionNotFound when unknown.
Resolve = Callable[[int, int], tuple[ModelSpec, Predict]]


class VersionNotFound(LookupError):  # noqa: N818 (reads as the answer's status)
    """No stored version of that symbol has that version code."""


def version_code(tag: str) -> int:
    """The first 6 bytes of ``sha1(tag)`` as an integer: below 2**48, so exact in a float64."""
    digest = hashlib.sha1(tag.encode(), usedforsecurity=False).digest()
    return int.from_bytes(digest[:6], "big")


def encode(symbol_index: int, tag: str, x: np.ndarray) -> np.ndarray:
    """One request row for the version ``tag`` (see module docstring)."""
    values = np.asarray(x, dtype=np.float64).reshape(-1)
    if values.size > ROW_WIDTH - 2:
        raise ValueError(f"{tag}: {values.size} features, a request row holds {ROW_WIDTH - 2}")
    row = np.full((1, ROW_WIDTH), np.nan, dtype=np.float64)
    row[0, :2] = symbol_index, version_code(tag)
    row[0, 2 : 2 + values.size] = values
    return row


def run_grouped(
    inputs: np.ndarray, models: Resolve | Sequence[tuple[ModelSpec, Predict]]
) -> np.ndarray:
    """Response rows for request rows: each group of one symbol and version runs through its
    model, in row order.

    ``models`` resolves ``(symbol_index, version_code)`` (a model service's cache), or
    is the ``(spec, forward)`` pairs to choose from by version code (in-process callers).
    """
    resolve = models if callable(models) else _choose_from(models)
    inputs = np.asarray(inputs, dtype=np.float64)
    out = np.full((inputs.shape[0], 2), np.nan, dtype=np.float64)
    keys = inputs[:, :2].astype(np.int64)
    # One request row (the usual in-process call): np.unique(axis=0) costs ~40 us.
    groups = keys if len(keys) == 1 else np.unique(keys, axis=0)
    for index, code in groups:
        mask = (keys[:, 0] == index) & (keys[:, 1] == code)
        try:
            spec, predict = resolve(int(index), int(code))
        except VersionNotFound as exc:
            log.warning("no model for %d request rows: %s", mask.sum(), exc)
            out[mask, 1] = MISSING
            continue
        except Exception:  # a version that exists but cannot be loaded: said in its log
            log.exception("cannot load the model of version code %d (symbol #%d)", code, index)
            out[mask, 1] = FAILED
            continue
        x = inputs[mask, 2 : 2 + len(spec.features)]
        out[mask, 0] = np.asarray(predict(x), dtype=np.float64).reshape(-1)
        out[mask, 1] = OK
    return out


def _choose_from(models: Sequence[tuple[ModelSpec, Predict]]) -> Resolve:
    by_code = {version_code(spec.version): (spec, predict) for spec, predict in models}

    def resolve(_: int, code: int) -> tuple[ModelSpec, Predict]:
        if code not in by_code:
            raise VersionNotFound(f"version code {code} is none of {len(by_code)} models")
        return by_code[code]

    return resolve


def decode(raw: np.ndarray) -> tuple[float, int]:
    """(output, status) of the first response row; plain outputs (no status column) are OK."""
    values = np.asarray(raw, dtype=np.float64)
    if values.ndim == 1:
        return float(values[0]), OK
    return float(values[0, 0]), int(values[0, 1])
