"""A small Keras ``Sequential`` as numpy, with its leading affine layers folded into one.

Why: the reference CNN is ``Conv1D(256, 4)`` (no activation) -> ``Flatten`` ->
``Dense(128, relu)`` -> ... . Convolution, flatten and the Dense layer's
pre-activation are all affine, so together they are **one** affine map of the
``n_features`` inputs: a ``(n_features, 128)`` matrix instead of a ``(48, 256)``
feature map times a ``(12288, 128)`` kernel. TensorFlow reads that 6.3 MB kernel on
every one-row call (about 1 ms here, plus ~1.5 ms of TensorFlow's Python call path);
the folded map is 26 KB and a one-row forward pass takes a few microseconds.

The fold is exact algebra, evaluated in float64: answers differ from TensorFlow's
float32 graph by float32 rounding only. :func:`fold` returns ``None`` for any layer
it does not know (an LSTM, a padded or strided convolution, an unknown activation),
and the caller keeps TensorFlow's forward pass.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

Op = Callable[[np.ndarray], np.ndarray]
_ACTIVATIONS: dict[str, Op] = {
    "linear": lambda x: x,
    "relu": lambda x: np.maximum(x, 0.0),
}


def fold(model: Any, n_features: int) -> Callable[[np.ndarray], np.ndarray] | None:
    """``(n, n_features)`` standardised rows -> ``(n,)``, or None if a layer is unsupported."""
    steps = _steps(model)
    if steps is None:
        return None
    split = _affine_prefix(steps)
    if split == 0:
        return None
    basis = np.vstack([np.zeros(n_features), np.eye(n_features)])  # f(0), then f(e_i)
    state = basis.reshape(n_features + 1, *_input_shape(model))
    for op, _affine in steps[:split]:
        state = op(state)
    state = state.reshape(n_features + 1, -1)
    offset, matrix = state[0], state[1:] - state[0]
    rest = [op for op, _affine in steps[split:]]

    def predict(x: np.ndarray) -> np.ndarray:
        out = np.asarray(x, dtype=np.float64).reshape(-1, n_features) @ matrix + offset
        for op in rest:
            out = op(out)
        return out.reshape(-1)

    return predict


def _input_shape(model: Any) -> tuple[int, ...]:
    return tuple(int(d) for d in model.inputs[0].shape[1:])


def _steps(model: Any) -> list[tuple[Op, bool]] | None:
    """Each layer as ``(op, is_affine)``; a Dense with an activation is two steps."""
    steps: list[tuple[Op, bool]] = []
    for layer in getattr(model, "layers", None) or []:
        converted = _convert(layer)
        if converted is None:
            return None
        steps.extend(converted)
    return steps or None


def _convert(layer: Any) -> list[tuple[Op, bool]] | None:
    kind = type(layer).__name__
    if kind == "InputLayer":
        return []
    if kind in ("Flatten", "Reshape"):
        return [(_reshape(getattr(layer, "target_shape", None)), True)]
    if kind == "Activation":
        act = _activation(layer.activation)
        return None if act is None else [(act, act is _ACTIVATIONS["linear"])]
    if kind == "Dense":
        return _with_activation(_dense(layer), layer)
    if kind == "Conv1D":
        conv = _conv1d(layer)
        return None if conv is None else _with_activation(conv, layer)
    return None


def _with_activation(op: Op, layer: Any) -> list[tuple[Op, bool]] | None:
    act = _activation(layer.activation)
    if act is None:
        return None
    if act is _ACTIVATIONS["linear"]:
        return [(op, True)]
    return [(op, True), (act, False)]


def _activation(fn: Any) -> Op | None:
    return _ACTIVATIONS.get(getattr(fn, "__name__", ""))


def _reshape(target: tuple[int, ...] | None) -> Op:
    if target is None:
        return lambda x: x.reshape(x.shape[0], -1)
    return lambda x: x.reshape(x.shape[0], *target)


def _dense(layer: Any) -> Op:
    kernel, *bias = (np.asarray(w, dtype=np.float64) for w in layer.get_weights())
    b = bias[0] if bias else 0.0
    return lambda x: x @ kernel + b


def _conv1d(layer: Any) -> Op | None:
    """A valid, unit-stride, undilated, ungrouped channels-last Conv1D, else None."""
    plain = (
        layer.padding == "valid"
        and tuple(layer.strides) == (1,)
        and tuple(layer.dilation_rate) == (1,)
        and getattr(layer, "groups", 1) == 1
        and layer.data_format == "channels_last"
    )
    if not plain:
        return None
    kernel, *bias = (np.asarray(w, dtype=np.float64) for w in layer.get_weights())
    b = bias[0] if bias else 0.0
    width = kernel.shape[0]

    def conv(x: np.ndarray) -> np.ndarray:  # (n, steps, channels) -> (n, steps-width+1, filters)
        out_steps = x.shape[1] - width + 1
        return sum(x[:, j : j + out_steps, :] @ kernel[j] for j in range(width)) + b

    return conv


def _affine_prefix(steps: list[tuple[Op, bool]]) -> int:
    """How many leading steps are affine (and so fold into one matrix)."""
    count = 0
    for _op, affine in steps:
        if not affine:
            break
        count += 1
    return count
