"""Turning AutoencoderWeights into the backend layer list for a precision.

Precisions (what a user picks with `aefast.load(..., precision=...)`):
  fp32  float32 weights and activations.
  fp16  float16 weights widened to float32 in the kernel; float32 activations.
  bf16  bf16 weights (round to nearest even from the float32 master) and bf16 activations (each layer's input
        rounded to bf16), float32 accumulation: `vdpbf16ps` on CPUs with AVX512_BF16, the same arithmetic widened
        to float32 elsewhere.
  int8  per-output-channel symmetric int8 weights and per-row asymmetric uint8 activations, quantized at run time
        (uint8 images enter as they are), exact int32 accumulation (`vpdpbusd` with AVX-512 VNNI); biases corrected
        for the weights' rounding when the model file carries calibration means (corrected_bias below; the means
        are computed at export, aefast/export/calibration.py).

Layer dicts follow the `_core.Network` contract: weight (in, out) C-contiguous float32 | float16 | int8 | uint16
(bf16 bits), scale float32 (out,) only for int8 (w_real[k, j] = w_q[k, j] * scale[j]), bias float32 (out,),
activation, and compute ("f32", "q8" or "bf16").
"""
from __future__ import annotations

import numpy as np

from ..model.bits import bf16_bits_to_float, float_to_bf16_bits, round_to_bf16  # noqa: F401 (public here too)
from ..model.weights import AutoencoderWeights

PRECISIONS = ("fp32", "fp16", "bf16", "int8")
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
        elif precision == "bf16":
            w = np.asarray(k, dtype=np.float32)
            bits = float_to_bf16_bits(w)
            if not np.isfinite(bf16_bits_to_float(bits)).all():
                raise ValueError(f"layer {i}: weights are not finite in bf16 (NaN, inf, or |w| beyond 3.39e38)")
            layer["weight"], layer["compute"] = bits, "bf16"
        else:
            layer["weight"], layer["scale"] = quantize_int8(k)
            layer["compute"] = "q8"
            if weights.input_means is not None:   # int8 bias correction
                dequantized = layer["weight"].astype(np.float32) * layer["scale"]
                layer["bias"] = corrected_bias(layer["bias"], k, dequantized, weights.input_means[i])
        layers.append(layer)
    return layers


def corrected_bias(bias: np.ndarray, kernel: np.ndarray, dequantized: np.ndarray, input_mean: np.ndarray) -> np.ndarray:
    """The int8 bias correction: bias - E[x] . (dequantized - kernel), in float64, as float32.

    Rounding the weights of a layer to int8 changes its outputs by x . dW_j (dW = dequantized - float weights), whose
    expectation over the data, E[x] . dW_j, is a systematic offset per output channel. Subtracting it from the bias
    (Nagel et al., "Data-Free Quantization", 2019, bias correction) removes that offset at no cost per call.
    E[x] is the layer's input mean stored in the model file (AutoencoderWeights.input_means)."""
    delta = dequantized.astype(np.float64) - kernel.astype(np.float64)
    return (bias.astype(np.float64) - input_mean.astype(np.float64) @ delta).astype(np.float32)
