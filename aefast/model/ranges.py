"""Value ranges: the largest magnitude any layer of a model can compute from the inputs an engine accepts.

Finite weights can still be unusable: a chain of large kernels overflows float32 (3.4e38) inside the network, and
the engine would return NaN, inf, or (clipped) zeros. `check_value_range` bounds every value the engine computes by
interval arithmetic in float64 and refuses a model whose bound passes VALUE_LIMIT.

Per layer, with the layer's input x_k in [lo_k, hi_k] (m_k = max(|lo_k|, |hi_k|)):
  every partial sum of the accumulation, and z_j itself, is at most  A_j = sum_k |W_kj| m_k + |b_j|  in magnitude;
  z_j lies in c . W_j + b_j -+ r . |W_j|, with c = (lo + hi) / 2 and r = (hi - lo) / 2 (the interval product);
  the activation maps that interval through itself (each activation is monotone on z <= 0 and on z >= 0, so the
  image's extremes lie at the ends or at 0: sigmoid lands in [0, 1], ELU in [-alpha, hi], leaky ReLU with slope s
  in [s lo, hi]), which gives the next layer's input interval.
The first layer's input interval, INPUT_LOW..max(INPUT_HIGH, 255 / pixel_scale), covers what the engine accepts:
float pixels in [-1e-3, 1 + 1e-3] and uint8 pixels divided by pixel_scale.
VALUE_LIMIT = 1e37 leaves a 34x margin below float32's largest value for the kernels' rounding (float32
accumulation, fp16/bf16 weights, int8 quantization change each bound by far less than that factor).
"""
from __future__ import annotations

import numpy as np

from ..errors import ModelFileError
from .activations import activation_range

VALUE_LIMIT = 1e37
INPUT_LOW = -0.01
INPUT_HIGH = 1.01


def input_interval(width: int, pixel_scale: float) -> tuple[np.ndarray, np.ndarray]:
    """(lo, hi) float64 (width,): the first layer's input range (see the module docstring)."""
    high = max(INPUT_HIGH, 255.0 / float(pixel_scale))
    return np.full(width, INPUT_LOW), np.full(width, high)


def layer_bounds(w) -> list[float]:
    """For each layer i, max_j A_j (see the module docstring): a bound on the magnitude of every value layer i
    computes (partial sums and outputs), for any input the engine accepts. Float64; inf where it overflows."""
    lo, hi = input_interval(int(w.kernels[0].shape[0]), w.pixel_scale)
    bounds = []
    with np.errstate(over="ignore", invalid="ignore"):
        for k, b, act in zip(w.kernels, w.biases, w.activations):
            k = np.asarray(k, np.float64)
            b = np.asarray(b, np.float64)
            magnitude = np.abs(k)
            m = np.maximum(np.abs(lo), np.abs(hi))
            bounds.append(float((m @ magnitude + np.abs(b)).max()))
            if not bounds[-1] <= VALUE_LIMIT:   # later layers' intervals would only be larger
                break
            center, radius = (lo + hi) / 2 @ k + b, (hi - lo) / 2 @ magnitude
            lo, hi = activation_range(act, center - radius, center + radius)
    return bounds


def check_value_range(w, source: str = "model") -> None:
    """ModelFileError naming `source`, the first layer whose bound passes VALUE_LIMIT, and the bound."""
    for i, bound in enumerate(layer_bounds(w)):
        if not bound <= VALUE_LIMIT:
            raise ModelFileError(
                f"{source}: layer {i} (dense_{i}) can compute values up to {bound:.3g} in magnitude for inputs the "
                f"engine accepts (pixels in [0, 1]), beyond the bound {VALUE_LIMIT:.0e} that keeps float32 "
                "(largest 3.4e38) from overflowing: its outputs would be NaN, inf or zeros; expected weights "
                "whose every layer stays within float32")
