"""Plain float32 NumPy (x @ W + b, then the activation in place, layer after layer) as a contender."""
from __future__ import annotations

import numpy as np

from ..models import op_layers
from .base import Contender, Runner
from .context import BuildContext


def _elu_inplace(h: np.ndarray) -> None:
    """h <- ELU(h) (alpha 1) without temporaries the size of h beyond one."""
    neg = np.minimum(h, 0)
    np.expm1(neg, out=neg)
    np.maximum(h, 0, out=h)
    h += neg


def _sigmoid_inplace(h: np.ndarray) -> None:
    np.negative(h, out=h)
    np.exp(h, out=h)
    h += 1
    np.reciprocal(h, out=h)


_NUMPY_ACTIVATIONS = {"elu": _elu_inplace, "sigmoid": _sigmoid_inplace, "linear": lambda h: None}


def numpy_forward(layers) -> Runner:
    """Plain float32 NumPy: x @ W + b then the activation in place, layer after layer."""
    steps = [(k, b, _NUMPY_ACTIVATIONS[a]) for k, b, a in layers]

    def run(x: np.ndarray) -> np.ndarray:
        h = x
        for k, b, activation in steps:
            h = h @ k
            h += b
            activation(h)
        return h
    return run


def _numpy(ctx: BuildContext, op: str, batch: int) -> Runner:
    return numpy_forward(op_layers(ctx.weights, op))


CONTENDERS = (Contender("numpy fp32", "peer", "fp32", _numpy),)
