"""Turning AutoencoderWeights into the backend layer list for a precision (fp32, fp16, int8).

Layer dicts follow the `_core.Network` contract: weight (in, out) C-contiguous float32 | float16 | int8,
scale float32 (out,) only for int8 (w_real[k, j] = w_q[k, j] * scale[j]), bias float32 (out,), activation.
"""
from __future__ import annotations

import numpy as np

from ..modelfile import AutoencoderWeights

PRECISIONS = ("fp32", "fp16", "int8")
INT8_MAX = 127


def quantize_int8(kernel: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-output-channel symmetric int8: scale_j = max_k |W[k, j]| / 127, w_q = round(W / scale_j).

    kernel (in, out) -> (w_q int8 (in, out), scale float32 (out,)). An all-zero column gets scale 1 (w_q = 0).
    """
    w = np.asarray(kernel, dtype=np.float32)
    amax = np.abs(w).max(axis=0)
    scale = np.where(amax > 0, amax / INT8_MAX, 1.0).astype(np.float32)
    q = np.clip(np.rint(w / scale), -INT8_MAX, INT8_MAX).astype(np.int8)
    return np.ascontiguousarray(q), scale


def backend_layers(weights: AutoencoderWeights, precision: str) -> list[dict]:
    """The layer list for `_core.Network` / the numba Network at `precision`."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    layers = []
    for i, (k, b, act) in enumerate(zip(weights.kernels, weights.biases, weights.activations)):
        layer = {"bias": np.ascontiguousarray(b, dtype=np.float32), "activation": act}
        if precision == "fp32":
            layer["weight"] = np.ascontiguousarray(k, dtype=np.float32)
        elif precision == "fp16":
            w16 = np.ascontiguousarray(k, dtype=np.float16)
            if not np.isfinite(w16).all():
                raise ValueError(f"layer {i}: weights exceed the float16 range (|w| > 65504); use fp32")
            layer["weight"] = w16
        else:
            layer["weight"], layer["scale"] = quantize_int8(k)
        layers.append(layer)
    return layers
