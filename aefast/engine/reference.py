"""The plain float64 NumPy twin of the engine, for tests and benchmarks (slow, obviously right)."""
from __future__ import annotations

import numpy as np

from ..model.activations import apply_activation, parse_activation
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


# ---- the quantized chain: the engine's arithmetic in float64, with a bound on the engine's distance from it --------
_U32 = 2.0 ** -24   # unit roundoff of float32 (round to nearest)
# Activation error of the kernels' float32 ELU / sigmoid against the float64 function of the same float32 argument,
# relative to the result: 4 float32 ulps measured (tests/test_lowp.py ULP_TOL), doubled; plus the ELU polynomial's
# 2.1e-10 absolute truncation error (numba_kernels._elu, csrc/kernels/simd_math.h).
_ACT_REL, _ACT_ABS = 8 * 2 * _U32, 3e-10


def _lipschitz(act: str) -> float:
    """The activation's Lipschitz constant: 1 for linear, relu and tanh; 1/4 for sigmoid; max(1, |alpha|) for ELU
    and leaky ReLU."""
    kind, alpha = parse_activation(act)
    if kind == "sigmoid":
        return 0.25
    return max(1.0, abs(alpha)) if kind in ("elu", "leaky_relu") else 1.0


# Confidence of the probabilistic bounds: each holds with probability >= 1 - 2 exp(-LAMBDA^2 / 2) = 1 - 2.5e-14.
LAMBDA = 8.0


def _gamma(k: int) -> float:
    """A bound on |error| / sum |term| of a float32 sum of k terms (products included), in any order: the smaller of
    the worst case gamma_k = k u / (1 - k u) (Higham, Accuracy and Stability, Lemma 3.1) and the probabilistic
    exp(LAMBDA sqrt(k) u + k u^2 / (1 - u)) - 1 (Higham & Mary 2019, Theorem 2.4: rounding errors independent,
    mean zero), about LAMBDA sqrt(k) u."""
    return min(k * _U32 / (1 - k * _U32), float(np.expm1(LAMBDA * np.sqrt(k) * _U32 + k * _U32 ** 2 / (1 - _U32))))


def _propagated(spread: np.ndarray, w: np.ndarray) -> np.ndarray:
    """A bound on |sum_k e_k w_kj| for input errors |e_k| <= spread_k: the smaller of the worst case
    sum_k spread_k |w_kj| and Hoeffding's LAMBDA sqrt(sum_k (spread_k w_kj)^2) (errors independent, mean zero);
    with one nonzero term the two agree up to LAMBDA, and the worst case wins."""
    return np.minimum(spread @ np.abs(w), LAMBDA * np.sqrt(np.square(spread) @ np.square(w)))


def _f32(a) -> np.ndarray:
    return np.asarray(a, dtype=np.float32)


def row_quantization(lo, hi):
    """The kernels' RowQuantization (csrc/kernels/dense.h) in float32 for rows with lo <= 0 <= hi (arrays):
    -> (inv, scale, zero); a zero-span row gets inv 0, scale 1, zero 0."""
    lo, hi = _f32(lo), _f32(hi)
    span = _f32(hi - lo)
    live = span > 0
    safe = np.where(live, span, np.float32(1)).astype(np.float32)
    inv = np.where(live, _f32(np.float32(255) / safe), np.float32(0)).astype(np.float32)
    scale = np.where(live, _f32(safe / np.float32(255)), np.float32(1)).astype(np.float32)
    zero = np.clip(np.rint(_f32(-lo * inv)), 0, 255)
    return inv, scale, zero


def quantize_rows(x: np.ndarray):
    """Per-row asymmetric uint8 quantization of float32 rows (N, K), the float32 operations of the kernels'
    quantize_rows: -> (q (N, K) float64 integers, scale (N,) float32, zero (N,) float64 integers)."""
    x = _f32(x)
    lo, hi = np.minimum(x.min(axis=1, initial=0), 0), np.maximum(x.max(axis=1, initial=0), 0)
    inv, scale, zero = row_quantization(lo, hi)
    q = np.clip(np.rint(_f32(x * inv[:, None])) + zero[:, None], 0, 255)
    return q.astype(np.float64), scale, zero.astype(np.float64)


def _q8_input_spread(y: np.ndarray, bound: np.ndarray, value: np.ndarray) -> np.ndarray:
    """How far the dequantized value (q - zero) * scale of the kernels' quantize_rows can lie from `value` (the one
    of the float32 row f32(y)) when the kernel quantizes some float32 row within y +- bound instead. Interval
    arithmetic through every monotone step (min/max, span, 255 / span, -lo * inv, x * inv, rint, clamp): exactly 0
    where the bound is 0, a few float32 ulps of the row range where no rounding decision can change, one level
    (scale) plus that where one can."""
    x_lo, x_hi = _f32(y - bound), _f32(y + bound)   # nearest float32 of the ends: still below / above the kernel's
    lo_a, lo_b = np.minimum(x_lo.min(axis=1, initial=0), 0), np.minimum(x_hi.min(axis=1, initial=0), 0)
    hi_a, hi_b = np.maximum(x_lo.max(axis=1, initial=0), 0), np.maximum(x_hi.max(axis=1, initial=0), 0)
    corners = [row_quantization(lo, hi) for lo in (lo_a, lo_b) for hi in (hi_a, hi_b)]
    inv_min = np.min([c[0] for c in corners], axis=0)
    inv_max = np.max([c[0] for c in corners], axis=0)
    s_min = np.min([c[1] for c in corners], axis=0).astype(np.float64)
    s_max = np.max([c[1] for c in corners], axis=0).astype(np.float64)
    zeros = [np.clip(np.rint(_f32(-lo * inv)), 0, 255) for lo in (lo_a, lo_b) for inv in (inv_min, inv_max)]
    z_min, z_max = np.min(zeros, axis=0)[:, None], np.max(zeros, axis=0)[:, None]
    products = [_f32(xx * inv[:, None]) for xx in (x_lo, x_hi) for inv in (inv_min, inv_max)]
    q_min = np.clip(np.rint(np.min(products, axis=0)) + z_min, 0, 255)
    q_max = np.clip(np.rint(np.max(products, axis=0)) + z_max, 0, 255)
    d_lo, d_hi = (q_min - z_max).astype(np.float64), (q_max - z_min).astype(np.float64)
    ends = [d * s[:, None] for d in (d_lo, d_hi) for s in (s_min, s_max)]
    spread = np.maximum(np.abs(np.min(ends, axis=0) - value), np.abs(np.max(ends, axis=0) - value))
    dead = (lo_a == 0) & (hi_b == 0)   # the span may be 0 on one side and not on the other: no interval holds
    return np.where(dead[:, None] & (bound > 0), np.abs(value) + np.abs(y) + bound, spread)


def _bf16_input_spread(y: np.ndarray, bound: np.ndarray, value: np.ndarray) -> np.ndarray:
    """How far bf16(v) can lie from `value` = bf16(f32(y)) for a float32 v within y +- bound (bf16 rounding is
    monotone): 0 unless a rounding midpoint lies inside the interval, then one bf16 step."""
    from .precisions import round_to_bf16

    ends = (round_to_bf16(_f32(y - bound)).astype(np.float64), round_to_bf16(_f32(y + bound)).astype(np.float64))
    return np.maximum(np.abs(ends[0] - value), np.abs(ends[1] - value))


def quantized_forward(layers: list[dict], x, begin: int = 0, end: int | None = None, clip: bool = False,
                      input_scale: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """The engine's quantized arithmetic in float64, and a bound on how far the engine's float32 result may lie.

    layers: the backend layer dicts (aefast/engine/precisions.py backend_layers: the weights exactly as the kernels
    hold them: float32, float16, bf16 bits or int8 with per-channel scales, and the biases they add). x: (N, in)
    uint8 or float32, as the engine passes it to `Network.forward`. Per compute:
      f32  (fp32, fp16 weights): h = act(x @ W * input_scale + b) for each layer.
      bf16 float32 inputs rounded to bf16 (uint8 ones are exact), h = act(x @ W_bf16 * input_scale + b), every
           layer's output but the last rounded to bf16 (as the kernels store it into the next layer's input).
      q8   float32 inputs quantized per row (quantize_rows, scale * input_scale), uint8 inputs taken as they are
           (scale input_scale, zero 0); exact integer sums; h = act((q - zero) @ Wq * scale * w_scale + b); every
           output but the last re-quantized per row.
    -> (h (N, out) float64, bound (N, out) float64): |engine - h| <= bound elementwise (clip included), from a
    forward error analysis of float32 arithmetic: a K-term sum errs by at most gamma_{K+4} sum |x w| (the sum in
    any order, then scale and bias), a layer's input errors reach its outputs through |W| (|a w| summed) and the
    activation's Lipschitz constant, the activations add _ACT_REL relative / _ACT_ABS absolute, and where the
    engine's float32 value may round (bf16) or quantize (uint8) to a different neighbour than the reference's, the
    interval analysis above counts that step in full. Tight (a few ulps) wherever no rounding decision can differ.
    """
    end = len(layers) if end is None else end
    compute = layers[begin].get("compute", "f32")
    x = np.asarray(x)
    n = x.shape[0]
    if compute == "q8":
        if x.dtype == np.uint8:
            a = x.astype(np.float64)
            zero = np.zeros((n, 1))
            scale = np.full(n, np.float32(input_scale), np.float64)
        else:
            a, s32, zero = quantize_rows(x)
            zero = zero[:, None]
            scale = _f32(s32 * np.float32(input_scale)).astype(np.float64)
        a = a - zero   # exact small integers: the sums below are exact in float64
    elif compute == "bf16" and x.dtype != np.uint8:
        from .precisions import round_to_bf16

        a = round_to_bf16(_f32(x)).astype(np.float64)
    else:
        a = x.astype(np.float64)
    spread = np.zeros_like(a)   # |engine's input value - reference's input value| per element (0 at the start)
    step = np.float64(np.float32(input_scale)) if compute != "q8" else None
    for i in range(begin, end):
        layer = layers[i]
        w = layer["weight"]
        if compute == "bf16":
            from .precisions import bf16_bits_to_float

            w = bf16_bits_to_float(w)
        w = w.astype(np.float64)
        b = layer["bias"].astype(np.float64)
        k = w.shape[0]
        if compute == "q8":
            col = scale[:, None] * layer["scale"].astype(np.float64)   # the kernels' float32 product scale * w_scale
            z = (a @ w) * col + b
            magnitude = (np.abs(a) @ np.abs(w)) * col + np.abs(b)
            err = _gamma(4) * magnitude   # exact integer sums; float32(sum), one product of scales, * and +
            err += _propagated(spread, w) * layer["scale"].astype(np.float64)   # spread is in real units for q8
        else:
            z = (a @ w) * step + b
            magnitude = (np.abs(a) @ np.abs(w)) * step + np.abs(b)
            err = _gamma(k + 4) * magnitude + _propagated(spread, w) * step
        y = apply_activation(layer["activation"], z)
        gain = _lipschitz(layer["activation"])
        err = gain * err
        if layer["activation"] != "linear":
            err += _ACT_REL * np.abs(y) + _ACT_ABS * gain
        last = i == end - 1
        if last:
            if clip:
                y = np.clip(y, 0.0, 1.0)
            return y, err
        if compute == "bf16":
            from .precisions import round_to_bf16

            a = round_to_bf16(_f32(y)).astype(np.float64)
            spread = _bf16_input_spread(y, err, a)
        elif compute == "q8":
            q, s32, zq = quantize_rows(_f32(y))
            scale = s32.astype(np.float64)
            value = (q - zq[:, None]) * scale[:, None]
            spread = _q8_input_spread(y, err, value)   # in real units: the next layer multiplies it by w_scale
            a = q - zq[:, None]
        else:
            a, spread = y, err
        step = np.float64(1.0)
    raise ValueError(f"need begin < end, got begin={begin} end={end}")


def layer_by_layer(network, layers: list[dict], x, begin: int = 0, end: int | None = None,
                   input_scale: float = 1.0) -> tuple[np.ndarray, float]:
    """Run `network` (a `_core.Network` or the numba one built from `layers`) one layer at a time over [begin, end),
    feeding each layer the network's own float32 output of the one before, and compare every layer with
    quantized_forward on that same input (so no rounding decision can differ and each bound is one layer's: a few
    float32 ulps of sum |x w|). -> (the last layer's output, the largest |network - reference| / bound seen);
    the output equals network.forward(x, out, begin, end) bit for bit (the kernels store between layers exactly what
    a float32 input of the next layer becomes)."""
    end = len(layers) if end is None else end
    h, scale, worst = x, input_scale, 0.0
    for i in range(begin, end):
        out = np.full((len(h), layers[i]["weight"].shape[1]), np.nan, np.float32)
        network.forward(h, out, i, i + 1, False, scale)
        want, bound = quantized_forward(layers, h, i, i + 1, input_scale=scale)
        err = np.abs(out - want)
        if not np.isfinite(out).all():
            return out, np.inf
        worst = max(worst, float(np.max(err / np.maximum(bound, np.finfo(np.float64).tiny), initial=0.0)))
        h, scale = out, 1.0
    return h, worst
