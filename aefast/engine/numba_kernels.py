"""The numba backend's compiled kernels: dense layers (float32 / fp16 / int8 weights, bf16 values), per-row uint8
quantization, bf16 rounding, the activation epilogues (ELU with alpha, sigmoid, relu, leaky ReLU, tanh).
`numba_network.py` holds the `Network` that runs them.

Kernel layout (why): each layer's weights are packed ONCE, transposed to (out_pad, in_pad) with out_pad a
multiple of NR (zero rows) and in_pad a multiple of KR (zero columns, so the vectorized k loop has no scalar tail:
K=100 ran at 50 GFLOP/s, K=104 at 61); every output value is then a dot product of two contiguous rows.
The register tile is MR rows x NR output channels: the k loop keeps MR*NR scalar accumulators, which LLVM
(fastmath) turns into vector registers. Row blocks of MB rows are the parallel unit (prange); inside a row block,
output channels go in panels of NB that are decoded (fp16 bits / int8 -> float32) into a contiguous float32
scratch once per row block (float32 weights are read in place). Tiles store their raw sums whole into a panel
scratch; scale, bias and the activation then run as passes over each finished panel (the same vector loop for
every row), the activation with a branch-free ELU that LLVM vectorizes (a libm expm1 per value cost more than the
whole 100->1000 layer). Loops run over 1-D row slices indexed from 0: LLVM vectorizes those, not out[i, c].
The input rows are widened (uint8 -> float32) into a zero-padded MR-multiple scratch, so the tail rows of a batch
run through exactly the same arithmetic as full tiles: rows are bit-identical whatever N is.
"""
from __future__ import annotations

import numba
import numpy as np
from numba import njit, prange
from numba.extending import overload

MR = 6     # rows per register tile
NR = 2     # output channels per register tile
MB = 60    # rows per parallel row block (multiple of MR)
NB = 128   # output channels per decoded weight panel (multiple of NR)
# Batches of at least this many rows decode fp16/int8 weights once per call into a transient float32 copy (4 bytes
# a weight, freed on return) instead of once per row block: decoding per block cost 40% of the fp16 time at N=4096.
DECODE_ONCE_ROWS = 4 * MB
KR = 8     # inputs padded (zero weights) to a multiple of one AVX2 vector: no scalar tail in the dot products
# Activation kinds (aefast/model/activations.py) -> the code the kernels branch on; a layer's `act` argument is the
# tuple (code, alpha): alpha the ELU's alpha or the leaky ReLU's slope as a float32, 1 for the other kinds.
ACTIVATION_CODES = {"linear": 0, "elu": 1, "sigmoid": 2, "relu": 3, "leaky_relu": 4, "tanh": 5}
WEIGHT_DTYPES = (np.dtype(np.float32), np.dtype(np.float16), np.dtype(np.int8), np.dtype(np.uint16))  # uint16: bf16
COMPUTES = {np.dtype(np.float32): ("f32",), np.dtype(np.float16): ("f32",), np.dtype(np.int8): ("f32", "q8"),
            np.dtype(np.uint16): ("bf16",)}

# 2**(e - 25) for fp16 exponent field e (e = 0: subnormal, 2**-24); value = (mantissa | implicit bit) * table[e].
_HALF_EXP_TABLE = np.array([2.0 ** -24] + [2.0 ** (e - 25) for e in range(1, 32)], dtype=np.float32)


def _weight_panel(wt, j0, jn, scratch):  # pragma: no cover - replaced by the overload below inside njit code
    raise NotImplementedError


@overload(_weight_panel, jit_options={"fastmath": True, "error_model": "numpy"})
def _weight_panel_impl(wt, j0, jn, scratch):
    """-> (src, off): float32 rows src[off:off+jn, :] hold the values of packed rows wt[j0:j0+jn, :].

    float32 weights are read in place (src = wt, off = j0: no copy); fp16 bits and int8 are decoded into scratch.
    """
    if wt.dtype == numba.types.float32:
        def impl(wt, j0, jn, scratch):
            return wt, j0
        return impl
    if wt.dtype == numba.types.int8:
        def impl(wt, j0, jn, scratch):
            for j in range(jn):
                src, dst = wt[j0 + j], scratch[j]
                for k in range(src.shape[0]):
                    dst[k] = np.float32(src[k])
            return scratch, 0
        return impl
    if wt.dtype == numba.types.uint16:  # fp16 stored as its bit pattern (numba has no CPU float16)
        table = _HALF_EXP_TABLE

        def impl(wt, j0, jn, scratch):
            for j in range(jn):
                src, dst = wt[j0 + j], scratch[j]
                for k in range(src.shape[0]):
                    h = np.int32(src[k])
                    e = (h >> 10) & 0x1F
                    m = (h & 0x3FF) | (np.int32(e != 0) << 10)
                    v = np.float32(m) * table[e]
                    dst[k] = -v if h & 0x8000 else v
            return scratch, 0
        return impl
    return None


# 2**-n for n = 0..29 (2**n for the n = round(x / ln 2) of x in [-20, 0]); a table because numba has no float bitcast.
_POW2_NEG_TABLE = np.array([2.0 ** -n for n in range(30)], dtype=np.float32)
_LN2_HI, _LN2_LO = np.float32(0.693359375), np.float32(-2.12194440e-4)   # Cody-Waite: n * _LN2_HI is exact


@njit(fastmath=True, cache=True, error_model="numpy")
def _elu(x):
    """ELU(x) = x > 0 ? x : expm1(x), branch-free so loops over it vectorize (np.expm1 is a libm call per value).

    The C++ kernels' algorithm (csrc/kernels/simd_math.h): x clamped to [-20, 0] (expm1(-20) is -1 in float32),
    x = n ln2 + r with |r| <= ln2/2, expm1(x) = 2^n expm1(r) + (2^n - 1), expm1(r) by its degree-8 Taylor polynomial
    r + r^2 q(r) (error < 2.1e-10); |x| < 2^-24 gives x itself (exact there).
    """
    xc = min(max(x, np.float32(-20.0)), np.float32(0.0))
    n = np.floor(xc * np.float32(1.44269504088896341) + np.float32(0.5))
    r = (xc - n * _LN2_HI) - n * _LN2_LO
    t = _POW2_NEG_TABLE[min(max(np.int32(-n), 0), 29)]   # index clamped: never reads outside the table
    q = np.float32(1.0 / 40320)
    q = q * r + np.float32(1.0 / 5040)
    q = q * r + np.float32(1.0 / 720)
    q = q * r + np.float32(1.0 / 120)
    q = q * r + np.float32(1.0 / 24)
    q = q * r + np.float32(1.0 / 6)
    q = q * r + np.float32(0.5)
    e = t * ((r * r) * q + r) + (t - np.float32(1.0))
    e = x if abs(x) < np.float32(2.0 ** -24) else e
    return x if x > 0 else e


@njit(fastmath=True, cache=True, error_model="numpy")
def _activate_rows(out, r0, r1, c0, c1, act, clip):
    """out[r0:r1, c0:c1] = activation (then clip to [0, 1]) in place; each value's result depends on it alone.
    act: (code, alpha), see ACTIVATION_CODES. tanh|x| = -e / (2 + e) with e = expm1(-2|x|) from _elu, as the C++
    kernels compute it (csrc/kernels/simd_math.h).

    Loops run over a 1-D row slice from 0: LLVM vectorizes those, not `for c in range(c0, c1): out[i, c]`.
    """
    code, alpha = act
    for i in range(r0, r1):
        row = out[i, c0:c1]
        if code == 1 and alpha == np.float32(1.0):
            for c in range(row.shape[0]):
                row[c] = _elu(row[c])
        elif code == 1:
            for c in range(row.shape[0]):
                v = _elu(row[c])
                row[c] = v if v > 0 else alpha * v
        elif code == 3:
            for c in range(row.shape[0]):
                row[c] = max(row[c], np.float32(0.0))
        elif code == 4:
            for c in range(row.shape[0]):
                v = row[c]
                row[c] = v if v > 0 else alpha * v
        elif code == 5:
            for c in range(row.shape[0]):
                v = row[c]
                e = _elu(np.float32(-2.0) * abs(v))
                t = -e / (np.float32(2.0) + e)
                row[c] = -t if v < 0 else t
        elif code == 2:
            for c in range(row.shape[0]):   # exp's argument clamped: fastmath assumes no inf (1/(1+inf) gave NaN)
                z = min(max(-row[c], np.float32(-88.0)), np.float32(88.0))
                row[c] = np.float32(1.0) / (np.float32(1.0) + np.float32(np.exp(z)))
        if clip:
            for c in range(row.shape[0]):
                row[c] = min(max(row[c], np.float32(0.0)), np.float32(1.0))


@njit(fastmath=True, cache=True, error_model="numpy")
def _row_block(x, wt, col_scale, bias, act, in_scale, clip, out, r0, r1):
    """out[r0:r1] = act((x[r0:r1] @ W) * in_scale * col_scale + bias), W = wt.T; one row block, serially."""
    k_pad = wt.shape[1]   # x.shape[1] rounded up to KR: zero weights and zero inputs beyond x.shape[1]
    m_out = out.shape[1]
    rows = r1 - r0
    rows_pad = (rows + MR - 1) // MR * MR
    xb = np.zeros((rows_pad, k_pad), np.float32)   # widened, zero-padded copy of the rows
    for i in range(rows):
        src, dst = x[r0 + i], xb[i]   # 1-D rows indexed from 0 vectorize (see _activate_rows)
        for k in range(src.shape[0]):
            dst[k] = np.float32(src[k])
    scratch = np.empty((NB if wt.itemsize != 4 else 0, k_pad), np.float32)   # float32 weights need none
    dots = np.empty((rows_pad, NB), np.float32)   # one panel's raw dot products, every tile stored whole
    for j0 in range(0, wt.shape[0], NB):
        jn = min(NB, wt.shape[0] - j0)
        panel, off = _weight_panel(wt, j0, jn, scratch)
        for i in range(0, rows_pad, MR):
            for j in range(0, jn, NR):
                w_row0, w_row1 = panel[off + j], panel[off + j + 1]
                s00 = s01 = s10 = s11 = s20 = s21 = s30 = s31 = s40 = s41 = s50 = s51 = np.float32(0.0)
                for k in range(k_pad):
                    w0 = w_row0[k]
                    w1 = w_row1[k]
                    a0 = xb[i, k]
                    a1 = xb[i + 1, k]
                    a2 = xb[i + 2, k]
                    a3 = xb[i + 3, k]
                    a4 = xb[i + 4, k]
                    a5 = xb[i + 5, k]
                    s00 += a0 * w0
                    s01 += a0 * w1
                    s10 += a1 * w0
                    s11 += a1 * w1
                    s20 += a2 * w0
                    s21 += a2 * w1
                    s30 += a3 * w0
                    s31 += a3 * w1
                    s40 += a4 * w0
                    s41 += a4 * w1
                    s50 += a5 * w0
                    s51 += a5 * w1
                dots[i, j], dots[i, j + 1], dots[i + 1, j], dots[i + 1, j + 1] = s00, s01, s10, s11
                dots[i + 2, j], dots[i + 2, j + 1], dots[i + 3, j], dots[i + 3, j + 1] = s20, s21, s30, s31
                dots[i + 4, j], dots[i + 4, j + 1], dots[i + 5, j], dots[i + 5, j + 1] = s40, s41, s50, s51
        # Epilogue over the panel's real rows and columns: the same vector loop for every row, whatever N is.
        c1 = min(j0 + jn, m_out)
        col_factor, col_bias = col_scale[j0:c1], bias[j0:c1]
        for i in range(rows):
            src, dst = dots[i, : c1 - j0], out[r0 + i, j0:c1]
            for c in range(src.shape[0]):
                dst[c] = src[c] * (in_scale * col_factor[c]) + col_bias[c]
        _activate_rows(out, r0, r1, j0, c1, act, clip)


@njit(fastmath=True, cache=True, error_model="numpy")
def _decode_all(wt):
    """Packed fp16-bit / int8 weights (out_pad, in_pad) -> the float32 array of their values."""
    decoded = np.empty(wt.shape, np.float32)
    _weight_panel(wt, 0, wt.shape[0], decoded)
    return decoded


@njit(fastmath=True, cache=True, error_model="numpy")
def _dense_serial(x, wt, col_scale, bias, act, in_scale, clip, out):
    n = x.shape[0]
    for b in range((n + MB - 1) // MB):
        _row_block(x, wt, col_scale, bias, act, in_scale, clip, out, b * MB, min(b * MB + MB, n))


@njit(fastmath=True, parallel=True, cache=True, error_model="numpy")
def _dense_parallel(x, wt, col_scale, bias, act, in_scale, clip, out):
    n = x.shape[0]
    for b in prange((n + MB - 1) // MB):
        _row_block(x, wt, col_scale, bias, act, in_scale, clip, out, b * MB, min(b * MB + MB, n))


@njit(cache=True, error_model="numpy")
def _quantize_rows(x, extra_scale, q, scale, zero):
    """Per-row asymmetric uint8 quantization, the float operations of the C++ `quantize_rows` (dense.h) one for one
    (no fastmath: a reciprocal or a reassociation would change the rounding): x (rows, k) float32 -> q (rows, k_pad)
    uint8 (padding = the zero point), scale (rows,) float32 (NaN for a row holding NaN/inf), zero (rows,) int32."""
    k = x.shape[1]
    for r in range(x.shape[0]):
        xr = x[r]
        lo = np.float32(0.0)
        hi = np.float32(0.0)
        finite = True
        for i in range(k):
            v = xr[i]
            if not np.isfinite(v):
                finite = False
            lo = min(lo, v)
            hi = max(hi, v)
        inv = np.float32(0.0)
        s = np.float32(1.0)
        z = 0
        if finite and hi > lo:
            inv = np.float32(255.0) / (hi - lo)
            s = (hi - lo) / np.float32(255.0)
            z = int(min(max(np.rint(-lo * inv), np.float32(0.0)), np.float32(255.0)))
        qr = q[r]
        for i in range(k):
            v = np.rint(xr[i] * inv) + np.float32(z) if finite else np.float32(z)
            qr[i] = np.uint8(min(max(v, np.float32(0.0)), np.float32(255.0)))
        for i in range(k, qr.shape[0]):
            qr[i] = np.uint8(z)
        scale[r] = s * np.float32(extra_scale) if finite else np.float32(np.nan)
        zero[r] = z


@njit(cache=True, error_model="numpy")
def _q8_row_block(q, scale, zero, wq, colsum, w_scale, bias, act, clip, out, r0, r1):
    """out[r0:r1] = act(float32(sum_k q[r, k] wq[j, k] - zero[r] colsum[j]) * (scale[r] w_scale[j]) + bias[j]):
    exact int32 sums (the C++ kernels' sums, bit for bit), then the float epilogue."""
    m_out = out.shape[1]
    for i in range(r0, r1):
        qi = q[i]
        dst = out[i]
        for j in range(m_out):
            wj = wq[j]
            acc = np.int32(0)
            for k in range(qi.shape[0]):
                acc += np.int32(qi[k]) * np.int32(wj[k])
            exact = acc - np.int32(zero[i]) * colsum[j]
            dst[j] = np.float32(exact) * (scale[i] * w_scale[j]) + bias[j]
    _activate_rows(out, r0, r1, 0, m_out, act, clip)


@njit(cache=True, error_model="numpy")
def _q8_serial(q, scale, zero, wq, colsum, w_scale, bias, act, clip, out):
    n = q.shape[0]
    for b in range((n + MB - 1) // MB):
        _q8_row_block(q, scale, zero, wq, colsum, w_scale, bias, act, clip, out, b * MB, min(b * MB + MB, n))


@njit(parallel=True, cache=True, error_model="numpy")
def _q8_parallel(q, scale, zero, wq, colsum, w_scale, bias, act, clip, out):
    n = q.shape[0]
    for b in prange((n + MB - 1) // MB):
        _q8_row_block(q, scale, zero, wq, colsum, w_scale, bias, act, clip, out, b * MB, min(b * MB + MB, n))


@njit(cache=True, error_model="numpy")
def _round_rows_to_bf16(x, out):
    """out = x rounded to the nearest bf16 value (as float32), the C++ float_to_bf16 rule: ties to even, NaN kept,
    subnormals to signed zero. Done with integer operations on the bits (numba has no float bitcast: via a view)."""
    bits = x.view(np.uint32)
    ob = out.view(np.uint32)
    for i in range(bits.shape[0]):
        src, dst = bits[i], ob[i]
        for c in range(src.shape[0]):
            b = np.uint64(src[c])
            magnitude = b & np.uint64(0x7FFFFFFF)
            if magnitude > np.uint64(0x7F800000):
                r = (b >> np.uint64(16)) | np.uint64(0x40)
            elif magnitude < np.uint64(0x00800000):
                r = (b >> np.uint64(16)) & np.uint64(0x8000)
            else:
                r = (b + np.uint64(0x7FFF) + ((b >> np.uint64(16)) & np.uint64(1))) >> np.uint64(16)
            dst[c] = np.uint32(r << np.uint64(16))
