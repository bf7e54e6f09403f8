"""The activations a model file can name, with their parameters, and their float64 definitions.

Each layer's activation is one string (the model file's `activations` list holds these strings as they are):

    "linear"            z
    "sigmoid"           1 / (1 + exp(-z))
    "tanh"              tanh(z)
    "relu"              max(z, 0)
    "elu"               z if z > 0 else expm1(z)              (ELU with alpha 1)
    "elu(A)"            z if z > 0 else A * expm1(z)          (ELU with alpha A != 1)
    "leaky_relu(A)"     z if z > 0 else A * z                 (the slope A is always written)

A is a finite float32 number written as the shortest decimal that reads back as that float32 (`str(np.float32(A))`,
e.g. "0.01", "1e-05"): the engine computes with float32(A), ONNX stores A as a float32, and one spelling per value
keeps the file's digest and the ONNX round trip exact. `activation_spec(kind, alpha)` builds the string;
`parse_activation(s)` reads it back and refuses every other spelling.
"""
from __future__ import annotations

import math
import re

import numpy as np

# Kinds without a parameter, and with one (alpha).
PLAIN_KINDS = ("linear", "elu", "sigmoid", "relu", "tanh")
PARAMETRIC_KINDS = ("elu", "leaky_relu")
KINDS = ("linear", "elu", "sigmoid", "relu", "leaky_relu", "tanh")
_SPEC = re.compile(r"(elu|leaky_relu)\(([^()]{1,40})\)\Z")


def format_alpha(alpha) -> str:
    """The canonical spelling of float32(alpha): the shortest decimal that reads back as the same float32."""
    return str(np.float32(alpha))


def activation_spec(kind: str, alpha: float | None = None) -> str:
    """The canonical activation string for `kind` (one of KINDS) and its parameter: alpha for "elu" (None or 1
    gives "elu"), the slope for "leaky_relu" (required). ValueError for anything else."""
    if kind not in KINDS:
        raise ValueError(f"unknown activation {kind!r:.100}, expected one of {KINDS}")
    if kind in ("linear", "sigmoid", "relu", "tanh"):
        if alpha is not None:
            raise ValueError(f"activation {kind!r} takes no parameter, got alpha={alpha!r:.40}")
        return kind
    if alpha is None:
        if kind == "leaky_relu":
            raise ValueError("leaky_relu needs its slope, e.g. activation_spec('leaky_relu', 0.01)")
        return kind
    if isinstance(alpha, bool) or not isinstance(alpha, (int, float, np.floating, np.integer)):
        raise ValueError(f"{kind} alpha must be a number, got {type(alpha).__name__}")
    with np.errstate(over="ignore"):
        a32 = np.float32(alpha)
    if not (math.isfinite(float(alpha)) and np.isfinite(a32)):
        raise ValueError(f"{kind} alpha must be a finite float32 number, got {alpha!r:.40}")
    if kind == "elu" and a32 == 1:
        return "elu"
    return f"{kind}({format_alpha(a32)})"


def parse_activation(spec) -> tuple[str, float | None]:
    """(kind, alpha) of a canonical activation string: alpha is the float32 value as a Python float (1.0 for
    "elu"), None for kinds without one. ValueError naming the spelling expected for anything else."""
    if not isinstance(spec, str):
        raise ValueError(f"an activation must be a string, got {type(spec).__name__}")
    if spec in PLAIN_KINDS:
        return spec, (1.0 if spec == "elu" else None)
    m = _SPEC.match(spec)
    if m is None:
        raise ValueError(f"unknown activation {spec!r:.100}, expected one of {PLAIN_KINDS}, 'elu(ALPHA)' or "
                         "'leaky_relu(SLOPE)'")
    kind, text = m.groups()
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"activation {spec!r:.100}: {text!r} is not a number") from None
    canonical = activation_spec(kind, value)
    if canonical != spec:
        raise ValueError(f"activation {spec!r:.100} is not in canonical form; write it as {canonical!r}")
    return kind, float(np.float32(value))


def apply_activation(spec: str, z: np.ndarray) -> np.ndarray:
    """The activation `spec` applied to z in float64 (the definition the engine's kernels are tested against)."""
    kind, alpha = parse_activation(spec)
    z = np.asarray(z, dtype=np.float64)
    if kind == "elu":
        neg = np.expm1(np.minimum(z, 0))
        return np.where(z > 0, z, neg if alpha == 1.0 else alpha * neg)
    if kind == "sigmoid":
        with np.errstate(over="ignore"):  # exp(-z) -> inf for very negative z gives the right limit, 0
            return 1.0 / (1.0 + np.exp(-z))
    if kind == "relu":
        return np.maximum(z, 0.0)
    if kind == "leaky_relu":
        return np.where(z > 0, z, alpha * z)
    if kind == "tanh":
        return np.tanh(z)
    return z


def activation_range(spec: str, lo: np.ndarray, hi: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The interval the activation maps [lo, hi] to (element-wise, float64). Every activation above is monotone on
    z <= 0 and on z >= 0 (whatever the sign of alpha), so its extremes over [lo, hi] lie at lo, hi or 0."""
    zero = np.clip(0.0, lo, hi)
    values = [apply_activation(spec, v) for v in (lo, hi, zero)]
    return np.minimum.reduce(values), np.maximum.reduce(values)
