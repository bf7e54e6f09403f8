"""The plain float64 NumPy twin of the engine, for tests and benchmarks (slow, obviously right)."""
from __future__ import annotations

import numpy as np

from ..model.activations import apply_activation
from ..model.weights import AutoencoderWeights


def reference_forward(weights: AutoencoderWeights, x, begin: int = 0, end: int | None = None,
                      clip: bool = False, input_scale: float = 1.0) -> np.ndarray:
    """Layers [begin, end) of `weights` on x (N, layer_sizes[begin]) in float64 -> (N, layer_sizes[end]); each
    activation as aefast.model.activations.apply_activation defines it (alpha is its float32 value)."""
    end = len(weights.kernels) if end is None else end
    h = np.asarray(x, dtype=np.float64) * input_scale
    for i in range(begin, end):
        h = h @ weights.kernels[i].astype(np.float64) + weights.biases[i].astype(np.float64)
        h = apply_activation(weights.activations[i], h)
    return np.clip(h, 0.0, 1.0) if clip else h


def random_weights(layer_sizes=(784, 64, 16, 64, 784), encoder_layers: int | None = None, seed: int = 0,
                   last_activation: str = "sigmoid") -> AutoencoderWeights:
    """A random (untrained) autoencoder with He-scaled weights, for tests; ELU except the last layer."""
    rng = np.random.default_rng(seed)
    sizes = list(layer_sizes)
    n = len(sizes) - 1
    kernels = [(rng.standard_normal((a, b)) * np.sqrt(2.0 / a)).astype(np.float32) for a, b in zip(sizes, sizes[1:])]
    biases = [(rng.standard_normal(b) * 0.1).astype(np.float32) for b in sizes[1:]]
    acts = ["elu"] * (n - 1) + [last_activation]
    side = int(round(np.sqrt(sizes[0])))
    shape = (side, side) if side * side == sizes[0] else (sizes[0],)
    return AutoencoderWeights(kernels, biases, acts, encoder_layers or n // 2, shape).validate("random_weights")
