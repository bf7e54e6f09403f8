"""The low-precision computes (q8: quantized-activation int8; bf16) on every ISA this CPU runs, the numba twin,
and float64 / exact-integer references.

q8: int32 sums are exact on every ISA (checked through a linear layer with unit scales, where the output IS the
sum), the per-row quantization is bit-identical across ISAs and equals a NumPy float32 emulation of its formula,
and chains match a float64 reference of the same quantized arithmetic. bf16: dot products are bit-identical across
ISAs (the twin reproduces vdpbf16ps's order), rounding follows round-to-nearest-even with its edge cases.
Outputs are pre-filled with NaN so an unwritten element fails.
"""
from __future__ import annotations

import numpy as np
import pytest

from aefast.engine.precisions import bf16_bits_to_float, float_to_bf16_bits, round_to_bf16

core = pytest.importorskip("aefast._core")
ISAS = core.isas()  # usable here, best first
# Every ISA level the build knows; one this CPU cannot run is skipped with the features it lacks (the -ra summary
# lists them, e.g. "avx512: CPU lacks avx512bw"), so the report says what ran and what did not.
ALL_ISAS = [pytest.param(isa, marks=[pytest.mark.skip(reason=p)] if (p := core.isa_problem(isa)) else [])
            for isa in core.known_isas()]
# Batches below, at, above and off the 8-row tiles and their 1..7-row leftovers; widths off the 16-column panels
# and the 4-input quads (K % 4 != 0 exercises the bounded last-quad read).
BATCHES = (1, 2, 3, 4, 5, 7, 8, 9, 15, 16, 17, 31, 33, 100)
SHAPES = ((1, 1), (3, 17), (4, 16), (5, 31), (33, 47), (100, 7), (130, 129), (784, 100))
BF16_REL_TOL = 1e-5     # float32 accumulation of exact bf16 products vs float64, relative to sum |a w|
ULP_TOL = 4              # ELU / sigmoid epilogues: vector polynomial vs libm, in float32 ulps (+ 1e-7 absolute)


def nan_out(rows, width):
    return np.full((rows, width), np.nan, np.float32)


def run(net, x, **kw):
    out = nan_out(x.shape[0], net.layer_sizes[-1])
    net.forward(x, out, **kw)
    return out


def q8_layer(w, activation="linear", scale=None, bias=None):
    n = w.shape[1]
    return {"weight": np.ascontiguousarray(w, np.int8), "compute": "q8", "activation": activation,
            "scale": np.ones(n, np.float32) if scale is None else scale.astype(np.float32),
            "bias": np.zeros(n, np.float32) if bias is None else bias.astype(np.float32)}


def quantize_rows_np(x: np.ndarray):
    """NumPy float32 emulation of the C++ quantize_rows formula (dense.h) -> (q int32, scale, zero)."""
    x = x.astype(np.float32)
    lo = np.minimum(x.min(axis=1), np.float32(0)).astype(np.float32)
    hi = np.maximum(x.max(axis=1), np.float32(0)).astype(np.float32)
    span = (hi - lo).astype(np.float32)
    safe = np.where(span > 0, span, np.float32(1)).astype(np.float32)
    inv = np.where(span > 0, np.float32(255) / safe, np.float32(0)).astype(np.float32)
    scale = np.where(span > 0, safe / np.float32(255), np.float32(1)).astype(np.float32)
    zero = np.clip(np.rint((-lo * inv).astype(np.float32)), 0, 255).astype(np.int32)
    q = np.clip(np.rint((x * inv[:, None]).astype(np.float32)) + zero[:, None].astype(np.float32), 0, 255)
    return q.astype(np.int32), scale, zero


# ---- q8 ---------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("isa", ALL_ISAS)
def test_q8_int32_sums_are_exact(isa):
    """uint8 input, unit scales, zero bias, linear: the output is the int32 sum itself (exact below 2^24)."""
    rng = np.random.default_rng(0)
    for k, n in SHAPES:
        w = rng.integers(-127, 128, (k, n)).astype(np.int8)
        net = core.Network([q8_layer(w)], isa=isa, threads=1)
        x = rng.integers(0, 256, (max(BATCHES), k), dtype=np.uint8)
        want = x.astype(np.int64) @ w.astype(np.int64)
        for rows in BATCHES:
            np.testing.assert_array_equal(run(net, x[:rows]), want[:rows].astype(np.float32),
                                          err_msg=f"{isa} K={k} N={n} rows={rows}")


@pytest.mark.parametrize("isa", ALL_ISAS)
def test_q8_saturation_cases_stay_exact(isa):
    """All-255 inputs against all +-127 weights at the widest layer (K = 10000): the largest sums there are."""
    k = 10000
    for sign in (127, -127):
        w = np.full((k, 33), sign, np.int8)
        net = core.Network([q8_layer(w)], isa=isa, threads=1)
        x = np.full((9, k), 255, np.uint8)
        want = np.float32(255 * sign * k)   # 3.2e8: float32(int32) rounding, as the kernel's cvtdq2ps
        assert np.all(run(net, x) == want)
    # wide output too: N = 10000 (625 panels), one row and eight
    w = np.random.default_rng(1).integers(-127, 128, (37, 10000)).astype(np.int8)
    x = np.random.default_rng(2).integers(0, 256, (8, 37), dtype=np.uint8)
    net = core.Network([q8_layer(w)], isa=isa, threads=1)
    want = (x.astype(np.int64) @ w.astype(np.int64)).astype(np.float32)
    np.testing.assert_array_equal(run(net, x[:1]), want[:1])
    np.testing.assert_array_equal(run(net, x), want)


@pytest.mark.parametrize("isa", ALL_ISAS)
def test_q8_row_quantization_matches_its_formula_bit_for_bit(isa):
    """Float input through an identity layer: out[r, j] = (q[r, j] - zero[r]) * scale[r], with q, scale, zero from
    the NumPy float32 emulation, exactly. Rows include constant, all-negative, all-positive and tiny ranges."""
    rng = np.random.default_rng(3)
    for k in (1, 3, 16, 17, 100, 1000):
        x = (rng.standard_normal((12, k)) * rng.choice([1e-30, 1e-3, 1.0, 1e3], (12, 1))).astype(np.float32)
        x[0] = 0.0
        x[1] = np.abs(x[1]) + 1
        x[2] = -np.abs(x[2]) - 1
        x[3] = 0.5
        net = core.Network([q8_layer(np.eye(k, dtype=np.int8))], isa=isa, threads=1)
        q, scale, zero = quantize_rows_np(x)
        want = ((q - zero[:, None]).astype(np.float32) * scale[:, None]).astype(np.float32)
        np.testing.assert_array_equal(run(net, x), want, err_msg=f"{isa} K={k}")


@pytest.mark.parametrize("isa", ALL_ISAS)
def test_q8_rows_too_narrow_for_a_finite_inverse_quantize_as_the_scalar_twin(isa):
    """A row whose range hi - lo is below 255 / FLT_MAX (~7.5e-37) has inv = 255 / (hi - lo) = inf, so x * inv is
    +-inf (x != 0) or NaN (x = 0): the formula's float clamp still gives codes 0 or 255 and the zero point; every ISA
    must give the scalar twin's codes (the AVX-512 pass converts to integers, which would not clamp +inf alike)."""
    x = np.zeros((4, 37), np.float32)
    x[0, ::3] = 1e-38
    x[1] = np.linspace(-3e-38, 2e-38, 37, dtype=np.float32)
    x[2, 5:] = -2e-38
    x[3] = np.linspace(0.5, 1.0, 37, dtype=np.float32)  # an ordinary row beside them
    layer = q8_layer(np.eye(37, dtype=np.int8))
    got = run(core.Network([layer], isa=isa, threads=1), x)
    want = run(core.Network([layer], isa="scalar", threads=1), x)
    np.testing.assert_array_equal(got.view(np.uint32), want.view(np.uint32))


def q8_chain_reference(layers, x, input_scale=1.0):
    """float64 reference of the same quantized arithmetic: per-row quantization (float32 formula), exact integer
    sums, float64 epilogue and activations."""
    if x.dtype == np.uint8:
        q, scale, zero = x.astype(np.int64), np.full(len(x), input_scale), np.zeros(len(x), np.int64)
    else:
        q, scale, zero = quantize_rows_np(x)
        scale = scale.astype(np.float64) * np.float32(input_scale)
    for i, layer in enumerate(layers):
        w = layer["weight"].astype(np.int64)
        acc = q.astype(np.int64) @ w - zero[:, None].astype(np.int64) * w.sum(axis=0)
        h = acc * (scale[:, None] * layer["scale"].astype(np.float64)) + layer["bias"]
        if layer["activation"] == "elu":
            h = np.where(h > 0, h, np.expm1(np.minimum(h, 0)))
        elif layer["activation"] == "sigmoid":
            h = 1 / (1 + np.exp(-h))
        if i + 1 < len(layers):
            q, scale, zero = quantize_rows_np(h.astype(np.float32))
            scale = scale.astype(np.float64)
    return h


def q8_random_chain(rng, sizes, activations):
    layers = []
    for (a, b), act in zip(zip(sizes[:-1], sizes[1:]), activations):
        w = rng.standard_normal((a, b)) / np.sqrt(a)
        scale = np.abs(w).max(axis=0) / 127 + 1e-6
        layers.append(q8_layer(np.clip(np.rint(w / scale), -127, 127), act, scale, 0.3 * rng.standard_normal(b)))
    return layers


@pytest.mark.parametrize("isa", ALL_ISAS)
@pytest.mark.parametrize("x_dtype", ["uint8", "float32"])
def test_q8_chain_matches_float64_reference_of_the_quantized_arithmetic(isa, x_dtype):
    """A value whose float32 epilogue lands within an ulp of a rounding boundary may quantize one level away from
    the float64 reference: the tolerance is two quantization levels of the next layer's input times the weights
    it meets, bounded here by checking the median error tightly and the maximum loosely."""
    rng = np.random.default_rng(4)
    sizes, acts = [29, 40, 5, 33, 17], ["elu", "elu", "linear", "sigmoid"]
    layers = q8_random_chain(rng, sizes, acts)
    net = core.Network(layers, isa=isa, threads=2)
    x = (rng.integers(0, 256, (100, 29), dtype=np.uint8) if x_dtype == "uint8"
         else rng.standard_normal((100, 29)).astype(np.float32))
    scale = 1 / 255 if x_dtype == "uint8" else 1.0
    want = q8_chain_reference(layers, x, scale)
    for rows in (1, 7, 8, 9, 100):
        got = run(net, x[:rows], input_scale=scale)
        err = np.abs(got - want[:rows])
        assert np.median(err) < 1e-6 and err.max() < 2e-2, (rows, np.median(err), err.max())


@pytest.mark.parametrize("isa", ALL_ISAS)
def test_q8_every_isa_close_to_the_scalar_twin_and_threads_bit_identical(isa):
    rng = np.random.default_rng(5)
    layers = q8_random_chain(rng, [300, 410, 37, 300], ["elu", "elu", "sigmoid"])
    x = rng.random((300, 300), dtype=np.float32)
    twin = run(core.Network(layers, isa="scalar", threads=1), x)
    one = run(core.Network(layers, isa=isa, threads=1), x)
    assert np.median(np.abs(one - twin)) < 1e-6 and np.abs(one - twin).max() < 2e-2
    for threads in range(2, 9):
        net = core.Network(layers, isa=isa, threads=threads)
        for rows in (1, 2, 9, 100, 300):
            np.testing.assert_array_equal(run(net, x[:rows]), one[:rows], err_msg=f"threads={threads} rows={rows}")


def test_q8_non_finite_rows_give_nan_not_a_hidden_value():
    layers = q8_random_chain(np.random.default_rng(6), [8, 16, 4], ["elu", "linear"])
    for isa in ISAS:
        x = np.ones((3, 8), np.float32)
        x[1, 2] = np.nan
        x[2, 5] = np.inf
        out = run(core.Network(layers, isa=isa), x)
        assert np.isfinite(out[0]).all() and np.isnan(out[1]).all() and np.isnan(out[2]).all(), isa


def test_q8_layers_are_checked_at_the_binding():
    w = np.ones((4, 3), np.int8)
    with pytest.raises(ValueError, match="compute"):
        core.Network([dict(q8_layer(w), compute="bf16")])
    with pytest.raises(ValueError, match="same compute"):
        core.Network([q8_layer(w), {"weight": np.ones((3, 2), np.float32), "bias": np.zeros(2, np.float32),
                                    "activation": "elu"}])
    with pytest.raises(ValueError, match="at most 65536"):
        core.Network([q8_layer(np.zeros((65537, 1), np.int8))])


# ---- bf16 -------------------------------------------------------------------------------------------------------
def bf16_layer(w, activation="linear", bias=None):
    return {"weight": float_to_bf16_bits(w), "activation": activation,
            "bias": np.zeros(w.shape[1], np.float32) if bias is None else bias.astype(np.float32)}


@pytest.mark.parametrize("isa", ALL_ISAS)
def test_bf16_matches_float64_of_the_rounded_values(isa):
    rng = np.random.default_rng(7)
    for k, n in SHAPES:
        w = (rng.standard_normal((k, n)) / np.sqrt(k)).astype(np.float32)
        layer = bf16_layer(w)
        net = core.Network([layer], isa=isa, threads=1)
        x = rng.standard_normal((max(BATCHES), k)).astype(np.float32)
        xb, wb = round_to_bf16(x).astype(np.float64), bf16_bits_to_float(layer["weight"]).astype(np.float64)
        want, bound = xb @ wb * 0.5, np.abs(xb) @ np.abs(wb) * 0.5 * BF16_REL_TOL + 1e-30
        for rows in BATCHES:
            got = run(net, x[:rows], input_scale=0.5)
            assert (np.abs(got - want[:rows]) <= bound[:rows]).all(), f"{isa} K={k} N={n} rows={rows}"


def test_bf16_dot_products_are_bit_identical_across_isas():
    """vdpbf16ps adds the odd pair element's product first, then the even one's, each rounded (as the scalar twin
    and the AVX2 kernel do): over a wide dynamic range every output bit agrees. The AMX kernel (tdpbf16ps, its own
    order) is left out: test_bf16_matches_float64_of_the_rounded_values bounds it."""
    rng = np.random.default_rng(8)
    isas = [isa for isa in ISAS if core.kernel_for(isa, "bf16") != "amx"]
    for k, n in ((3, 17), (101, 33), (784, 100)):
        w = (rng.standard_normal((k, n)) * np.exp(3 * rng.standard_normal((k, n)))).astype(np.float32)
        x = (rng.standard_normal((9, k)) * np.exp(3 * rng.standard_normal((9, k)))).astype(np.float32)
        outs = [run(core.Network([bf16_layer(w)], isa=isa, threads=1), x) for isa in isas]
        for isa, out in zip(isas, outs):
            np.testing.assert_array_equal(out.view(np.uint32), outs[-1].view(np.uint32), err_msg=isa)


@pytest.mark.parametrize("isa", ALL_ISAS)
def test_bf16_chain_close_to_scalar_twin_threads_bit_identical_and_odd_widths_padded(isa):
    """Odd widths (5, 33, 17) make each stored bf16 row end in a pad element, which must be zero for the next
    layer's pairs; the chain is compared with the scalar twin (libm activations) within ULP_TOL ulps."""
    rng = np.random.default_rng(9)
    sizes, acts = [29, 5, 33, 17], ["elu", "sigmoid", "elu"]
    layers = [bf16_layer((rng.standard_normal((a, b)) / np.sqrt(a)).astype(np.float32), act,
                         0.3 * rng.standard_normal(b)) for a, b, act in zip(sizes[:-1], sizes[1:], acts)]
    x = rng.standard_normal((300, 29)).astype(np.float32)
    twin = run(core.Network(layers, isa="scalar", threads=1), x)
    one = run(core.Network(layers, isa=isa, threads=1), x)
    # A one-ulp epilogue difference can round a bf16 input of the next layer the other way: bound in bf16 terms.
    assert np.abs(one - twin).max() <= 2 ** -7 * np.abs(twin).max()
    assert np.median(np.abs(one - twin)) <= ULP_TOL * np.finfo(np.float32).eps * np.abs(twin).max() + 1e-7
    for threads in (2, 3, 8):
        net = core.Network(layers, isa=isa, threads=threads)
        for rows in (1, 7, 300):
            np.testing.assert_array_equal(run(net, x[:rows]), one[:rows])


def test_bf16_rounding_edge_cases():
    cases = {
        1.0: 0x3F80, -2.0: 0xC000,
        np.float32(np.uint32(0x3F808000).view(np.float32)): 0x3F80,   # tie, even below: down
        np.float32(np.uint32(0x3F818000).view(np.float32)): 0x3F82,   # tie, odd below: up
        np.float32(np.uint32(0x3F808001).view(np.float32)): 0x3F81,   # just above the tie: up
        np.float32(np.uint32(0x00000001).view(np.float32)): 0x0000,   # subnormal: flushed
        np.float32(np.uint32(0x80400000).view(np.float32)): 0x8000,   # negative subnormal: -0
        np.float32(np.uint32(0x7F7FFFFF).view(np.float32)): 0x7F80,   # float32 max rounds to inf
        np.inf: 0x7F80, -np.inf: 0xFF80,
    }
    for value, bits in cases.items():
        assert int(float_to_bf16_bits(np.float32(value))) == bits, (value, hex(bits))
    nan_bits = int(float_to_bf16_bits(np.uint32(0x7F800001).view(np.float32)))   # signalling NaN -> quiet NaN
    assert nan_bits & 0x7F80 == 0x7F80 and nan_bits & 0x7F and nan_bits & 0x40


def test_bf16_conversion_in_the_kernels_matches_numpy_rounding():
    """Float inputs are rounded to bf16 by the kernels (vcvtneps2bf16 or the AVX2/scalar code) exactly as
    float_to_bf16_bits does: an identity layer returns the rounded input, including ties and subnormals."""
    rng = np.random.default_rng(10)
    bits = np.concatenate([rng.integers(0, 2**32, 4000, dtype=np.uint64).astype(np.uint32),
                           np.array([0x3F808000, 0x3F818000, 0x00000001, 0x80400000, 0x7F7FFFFF], np.uint32)])
    x = bits.view(np.float32)
    x = np.where(np.isfinite(x) & (np.abs(x) < 1e30), x, np.float32(1.0)).astype(np.float32).reshape(-1, 1)
    layer = bf16_layer(np.ones((1, 1), np.float32))
    for isa in ISAS:
        got = run(core.Network([layer], isa=isa, threads=1), x)
        want = round_to_bf16(x) + np.float32(0)   # the accumulator starts at +0: 0 + (-0) * 1 is +0
        np.testing.assert_array_equal(got.view(np.uint32), want.view(np.uint32), err_msg=isa)


def test_bf16_non_finite_weights_are_refused():
    w = np.ones((3, 2), np.float32)
    for bad in (np.inf, np.nan):
        layer = bf16_layer(w)
        layer["weight"][1, 1] = float_to_bf16_bits(np.float32(bad))
        with pytest.raises(ValueError, match="infinite or NaN"):
            core.Network([layer])
    pytest.importorskip("numba")   # absent in the sanitizer's venv (.ci/sanitize)
    from aefast.engine.numba_backend import Network
    with pytest.raises(ValueError, match="infinite or NaN"):
        Network([layer])


# ---- numba twin -------------------------------------------------------------------------------------------------
def test_numba_q8_sums_and_quantization_equal_the_cpp_ones():
    pytest.importorskip("numba")
    from aefast.engine.numba_backend import Network
    rng = np.random.default_rng(11)
    w = rng.integers(-127, 128, (100, 37)).astype(np.int8)
    x8 = rng.integers(0, 256, (70, 100), dtype=np.uint8)       # > 60 rows: numba's parallel row blocks
    xf = rng.standard_normal((70, 100)).astype(np.float32)
    for x in (x8, xf):
        np.testing.assert_array_equal(run(Network([q8_layer(w)], threads=2), x),
                                      run(core.Network([q8_layer(w)], threads=1), x))
    layers = q8_random_chain(rng, [100, 60, 9, 60], ["elu", "elu", "sigmoid"])
    a, b = run(Network(layers, threads=1), xf), run(core.Network(layers, threads=1), xf)
    assert np.median(np.abs(a - b)) < 1e-6 and np.abs(a - b).max() < 2e-2


def test_numba_bf16_matches_cpp():
    pytest.importorskip("numba")
    from aefast.engine.numba_backend import Network
    rng = np.random.default_rng(12)
    layers = [bf16_layer((rng.standard_normal((a, b)) / np.sqrt(a)).astype(np.float32), "elu")
              for a, b in ((50, 41), (41, 7), (7, 50))]
    x = rng.standard_normal((65, 50)).astype(np.float32)
    a, b = run(Network(layers, threads=1), x), run(core.Network(layers, threads=1), x)
    assert np.abs(a - b).max() <= 2 ** -7 * np.abs(b).max()


# ---- accuracy on the shipped model ------------------------------------------------------------------------------
@pytest.mark.slow
def test_default_model_accuracy_of_int8_and_bf16(mnist_dir):
    """Issue 10/11 accuracy bounds on the MNIST test set: int8 test MSE within 1% of fp32, bf16 within 0.5%."""
    import aefast
    from aefast.data import load_mnist

    x = np.asarray(load_mnist(data_dir=mnist_dir).test.x).reshape(10000, -1)
    x = x if x.dtype == np.uint8 else np.rint(x * 255).astype(np.uint8)
    target = x.astype(np.float64) / 255
    mse = {p: float(np.mean((aefast.load(aefast.engine.DEFAULT_MODEL_PATH, precision=p).reconstruct(x) - target) ** 2))
           for p in ("fp32", "bf16", "int8")}
    assert mse["bf16"] <= 1.005 * mse["fp32"], mse
    assert mse["int8"] <= 1.01 * mse["fp32"], mse
