"""What a valid autoencoder is: the structural invariants every AutoencoderWeights must hold, and their limits.

`check_structure(weights, source)` raises ModelFileError("{source}: ...") naming the first defect found. It reads
the weights' attributes only (kernels, biases, activations, encoder_layers, input_shape, pixel_scale, input_means),
so it needs nothing above aefast.errors.
"""
from __future__ import annotations

import math

import numpy as np

from ..errors import ModelFileError
from .activations import KINDS, parse_activation

ACTIVATIONS = KINDS   # the activation kinds; "elu" and "leaky_relu" also take a parameter (aefast.model.activations)
MAX_LAYERS = 64
MAX_WIDTH = 1 << 20
# pixel_scale range: 1/pixel_scale and 255/pixel_scale are then normal float32 numbers (no NaN, no subnormal
# flush to 0 when the engine folds 1/pixel_scale into the first layer), and a pixel of 1 maps to more than 5e-8.
MIN_PIXEL_SCALE = 2.0 ** -16
MAX_PIXEL_SCALE = 2.0 ** 24


def is_int(v) -> bool:
    """A Python int that is not a bool."""
    return isinstance(v, int) and not isinstance(v, bool)


def check_structure(w, source: str = "model") -> None:
    """Layer count, shapes that chain, dtypes, finite weights, known activations, encoder_layers, input_shape,
    pixel_scale and the optional calibration means; ModelFileError naming `source` and the defect."""
    def fail(msg: str):
        raise ModelFileError(f"{source}: {msg}")

    n = len(w.kernels)
    if not 2 <= n <= MAX_LAYERS:
        fail(f"expected 2..{MAX_LAYERS} layers (an encoder and a decoder), found {n}")
    if len(w.biases) != n or len(w.activations) != n:
        fail(f"{n} kernels but {len(w.biases)} biases and {len(w.activations)} activations")
    if not 1 <= w.encoder_layers <= n - 1:
        fail(f"encoder_layers={w.encoder_layers} must be between 1 and {n - 1}")
    for i, (k, b, a) in enumerate(zip(w.kernels, w.biases, w.activations)):
        if not isinstance(k, np.ndarray) or k.ndim != 2:
            fail(f"dense_{i}.kernel must be a 2-D array, got shape {getattr(k, 'shape', None)}")
        if not isinstance(b, np.ndarray) or b.ndim != 1:
            fail(f"dense_{i}.bias must be a 1-D array, got shape {getattr(b, 'shape', None)}")
        if k.dtype not in (np.float32, np.float16) or b.dtype not in (np.float32, np.float16):
            fail(f"layer {i}: weights must be float32 or float16, got {k.dtype} and {b.dtype}")
        if min(k.shape) < 1 or max(k.shape) > MAX_WIDTH:
            fail(f"dense_{i}.kernel shape {k.shape} out of range 1..{MAX_WIDTH}")
        if b.shape[0] != k.shape[1]:
            fail(f"dense_{i}.bias has {b.shape[0]} values, expected {k.shape[1]} (kernel {k.shape})")
        if i > 0 and k.shape[0] != w.kernels[i - 1].shape[1]:
            fail(f"dense_{i}.kernel takes {k.shape[0]} inputs but dense_{i-1} gives "
                 f"{w.kernels[i - 1].shape[1]}: shapes do not chain")
        try:
            parse_activation(a)
        except ValueError as e:
            fail(f"layer {i}: {e}")
        if not (np.isfinite(k).all() and np.isfinite(b).all()):
            fail(f"layer {i}: weights contain NaN or infinite values")
    sizes = [int(w.kernels[0].shape[0])] + [int(k.shape[1]) for k in w.kernels]
    if w.input_means is not None:
        means = w.input_means
        if not isinstance(means, (list, tuple)) or len(means) != n:
            fail(f"input_means must hold one vector per layer ({n}), got {type(means).__name__}")
        for i, (m, width) in enumerate(zip(means, sizes)):
            if not isinstance(m, np.ndarray) or m.shape != (width,) or m.dtype != np.float32:
                fail(f"dense_{i}.input_mean must be float32 ({width},), got "
                     f"{getattr(m, 'dtype', type(m).__name__)} {getattr(m, 'shape', '')}")
            if not np.isfinite(m).all():
                fail(f"dense_{i}.input_mean contains NaN or infinite values")
    if sizes[-1] != sizes[0]:
        fail(f"output width {sizes[-1]} differs from input width {sizes[0]}")
    shape = tuple(w.input_shape)
    if not shape or any(not is_int(s) or s < 1 for s in shape) or math.prod(shape) != sizes[0]:
        fail(f"input_shape {shape} does not hold {sizes[0]} values")
    scale = w.pixel_scale
    if not (isinstance(scale, (int, float)) and not isinstance(scale, bool) and math.isfinite(scale)
            and scale > 0):
        fail(f"pixel_scale must be a positive number, got {scale!r:.200}")
    if not MIN_PIXEL_SCALE <= scale <= MAX_PIXEL_SCALE:
        fail(f"pixel_scale {scale!r:.40} is outside {MIN_PIXEL_SCALE!r}..{MAX_PIXEL_SCALE:.0f} (pixels would "
             "become NaN, infinite or all ~0 in float32); expected e.g. 255 for 8-bit or 1 for [0, 1] images")
