"""Every dense kernel of every ISA on its own, through its tile edges, against its scalar twin.

The hook `_core._test_kernel` runs ONE named kernel (compute x kernel family x weight type x input type) on one
block: weights packed as a Network packs them, rows [begin, end) and panels [begin, end) of a given A (row stride
lda = a.shape[1]), into an output of row stride ldc prefilled with NaN. Each case here checks that
  * every requested cell (requested rows x columns of requested panels below n) matches the scalar twin, bit for
    bit where the contract says so, else within the bound derived below;
  * every other cell (other rows, other panels, columns >= n, the ldc padding) is still NaN;
  * the SIMD kernels of one compute agree with each other bit for bit (one FMA chain per output in k order, one
    shared activation algorithm, simd_math.h).

Sizes come from the kernels' real tiles (csrc/kernels/*.cpp): rows M in {1, tile-1, tile, tile+1, 2 tile + 1} for
the kernel's main row tile (avx2 fp32, avx2 and avxvnni q8: 6; avx512 fp32, avx512vnni, avx512bf16: 8; avx2 bf16: 4; scalar: 1);
columns N around one 8-column half, one 16-column panel, and the panel groups (4 panels for fp32, up to 8 for
q8/bf16); K in {1, g-1, g, g+1, larger} for the k-group g each instruction consumes (1 fp32, 4 q8, 2 bf16).

Tolerances (u = 2^-24, float32 unit roundoff):
  * fp32 compute: the scalar twin rounds each product and each sum (no FMA), the SIMD kernels one FMA per step, and
    the scalar epilogue rounds acc * scale and + bias separately: |simd - scalar| <= 2 (K + 2) u S with
    S = sum_k |a_k w_k s| + |bias| (two float32 recursive sums of K + 2 terms, each within (K + 2) u S of the exact
    value), plus the activation's difference below. ELU and sigmoid have slope <= 1, so they do not widen it.
  * q8: int32 sums are exact and both epilogues are one fma(float(sum), a_scale w_scale, bias): linear outputs are
    bit-identical; bf16: the twin reproduces vdpbf16ps's pairwise fma order and the same fma epilogue: linear
    outputs are bit-identical.
  * the AMX bf16 kernel (tdpbf16ps) sums in its own order, not vdpbf16ps's: its outputs get the fp32 bound above
    (each product is exact in fp32, so the same recursive-sum argument holds), and it is left out of the bit-for-bit
    agreement of the SIMD kernels.
  * activations: the SIMD polynomial vs libm's expm1 / float64 sigmoid differ by at most ACT_ULPS float32 ulps of
    the result (tests/test_kernels_math.py measures 1 ulp for ELU, 3 for sigmoid) plus 2^-149 for subnormal results.
  * bf16 outputs (c_bf16): values that differ by the activation bound above can round to neighbouring bf16 values:
    at most one bf16 ulp (2^16 float32 ulps) apart.
"""
from __future__ import annotations

import zlib

import numpy as np
import pytest

core = pytest.importorskip("aefast._core")

U = 2.0 ** -24
ACT_ULPS = 4
# Every activation kind; the parameters (slopes <= 1) keep the tolerance argument below (slope <= 1) as it is.
ACTIVATIONS = ("linear", "elu", "sigmoid", "relu", "leaky_relu(0.1)", "tanh", "elu(0.5)")

# (main row tile, k-group, panel group) of each kernel, from its source file.
ROW_TILE = {("bf16", "amx"): 16, ("f32", "avx512"): 8, ("f32", "avx2"): 6, ("f32", "scalar"): 1,
            ("q8", "avx512vnni"): 8, ("q8", "amx"): 16, ("q8", "avxvnni"): 6, ("q8", "avx2"): 6, ("q8", "scalar"): 1,
            ("bf16", "avx512bf16"): 8, ("bf16", "avx2"): 4, ("bf16", "scalar"): 1}
K_GROUP = {"f32": 1, "q8": 4, "bf16": 2}
# Panels per group: fp32 4 (avx2.cpp, avx512.cpp); q8/bf16 8 at small K (avx512_lowp_tiles.h panels_per_group).
PANEL_GROUP = {"f32": 4, "q8": 8, "bf16": 8}
WEIGHTS = {"f32": ("float32", "float16", "int8"), "q8": ("int8",), "bf16": ("bf16",)}
INPUTS = {"f32": ("float32", "uint8"), "q8": ("uint8",), "bf16": ("bf16",)}
# Kernels whose fp32 sums are in another order than their scalar twin's (the fp32 bound instead of bit-identity).
OWN_ORDER = {("bf16", "amx")}


def kernel_params():
    """Every kernel the build has (usable here or skipped by name with the missing CPU features)."""
    params = []
    for compute in ("f32", "q8", "bf16"):
        for kernel in core.kernel_names(compute):
            problem = core.kernel_problem(compute, kernel)
            marks = [pytest.mark.skip(reason=problem)] if problem else []
            for weight in WEIGHTS[compute]:
                for x in INPUTS[compute]:
                    params.append(pytest.param(compute, kernel, weight, x, marks=marks,
                                               id=f"{compute}-{kernel}-{weight}w-{x}x"))
    return params


def edge_sizes(compute, kernel):
    tile, g, group = ROW_TILE[(compute, kernel)], K_GROUP[compute], PANEL_GROUP[compute]
    rows = sorted({1, max(tile - 1, 1), tile, tile + 1, 2 * tile + 1})
    cols = sorted({1, 7, 8, 9, 15, 16, 17, 16 * group - 1, 16 * group, 16 * group + 1})
    ks = sorted({1, max(g - 1, 1), g, g + 1, 37})
    return rows, cols, ks


def to_bf16_bits(x):
    """float32 -> bf16 bits, round to nearest even (finite inputs)."""
    bits = np.asarray(x, np.float32).view(np.uint32).astype(np.uint64)
    return ((bits + 0x7FFF + ((bits >> 16) & 1)) >> 16).astype(np.uint16)


def bf16_to_float(bits):
    return (np.asarray(bits, np.uint32) << 16).view(np.float32)


class Case:
    """Random operands for one (compute, weight, input) at K x N with `rows` rows of stride lda."""

    def __init__(self, rng, compute, weight, x, k, n, rows, lda):
        self.compute, self.k, self.n = compute, k, n
        w = rng.standard_normal((k, n)) / np.sqrt(k)
        self.scale = None
        if weight == "int8":
            self.w = rng.integers(-127, 128, (k, n), dtype=np.int8)
            self.scale = (rng.random(n) * 0.02 + 1e-3).astype(np.float32)
            self.w_value = self.w.astype(np.float64) * self.scale
        elif weight == "bf16":
            self.w = to_bf16_bits(w)
            self.w_value = bf16_to_float(self.w).astype(np.float64)
        else:
            self.w = w.astype(weight)
            self.w_value = self.w.astype(np.float64)
        self.bias = (0.3 * rng.standard_normal(n)).astype(np.float32)
        self.kw = {}
        if x == "uint8":
            self.a = rng.integers(0, 256, (rows, lda), dtype=np.uint8)
            self.input_scale = 1.0 if compute == "q8" else 1 / 255
        elif x == "bf16":
            self.a = to_bf16_bits(rng.standard_normal((rows, lda)))
            self.a[:, k:] = 0  # the contract's zero padding up to 2 ceil(k / 2) (and beyond, harmless)
            self.input_scale = 0.7
        else:
            self.a = rng.standard_normal((rows, lda)).astype(np.float32)
            self.input_scale = 0.7
        if compute == "q8":
            self.kw = {"a_scale": (rng.random(rows) * 0.01 + 1e-3).astype(np.float32),
                       "a_zero": rng.integers(0, 256, rows).astype(np.int32)}
        else:
            self.kw = {"input_scale": self.input_scale}
        if self.scale is not None:
            self.kw["scale"] = self.scale

    def magnitude(self):
        """S = sum_k |a_k w_k s| + |bias| per (row, column), in float64 (the fp32 error bound's scale)."""
        a = self.a[:, : self.k]
        a = bf16_to_float(a).astype(np.float64) if a.dtype == np.uint16 else a.astype(np.float64)
        s = abs(self.input_scale) if self.compute != "q8" else 1.0
        return np.abs(a) @ np.abs(self.w_value) * s + np.abs(self.bias.astype(np.float64))

    def run(self, kernel, **kw):
        return core._test_kernel(kernel, self.compute, self.w, self.bias, self.a, **self.kw, **kw)


def requested_mask(shape, rows, panels, n):
    mask = np.zeros(shape, bool)
    mask[rows[0]:rows[1], panels[0] * 16:min(panels[1] * 16, n)] = True
    return mask


def check_against_twin(case, got, twin, mask, activation, c_bf16, label, own_order=False):
    """Outside cells NaN; requested cells equal to the scalar twin (bit for bit or within the derived bound)."""
    if c_bf16:
        outside_ok = got[~mask] == 0xFFFF
        # The zero an odd-width bf16 output writes in column n of each requested row (the next layer's padding).
        pad = np.zeros_like(mask)
        if case.n % 2 and mask.any():
            pad[np.any(mask, axis=1), case.n] = True
        assert (got[pad] == 0).all(), f"{label}: bf16 pad column n not zeroed"
        assert (got[~mask & ~pad] == 0xFFFF).all(), f"{label}: wrote outside the requested block"
        g, t = bf16_to_float(got[mask]), bf16_to_float(twin[mask])
    else:
        outside_ok = np.isnan(got[~mask])
        assert outside_ok.all(), f"{label}: wrote outside the requested block"
        g, t = got[mask], twin[mask]
    assert not np.isnan(g).any(), f"{label}: a requested cell was not written"
    exact = case.compute != "f32" and activation == "linear" and not own_order
    if exact:
        np.testing.assert_array_equal(g.view(np.uint32), t.view(np.uint32), err_msg=label)
        return
    tol = np.zeros(g.shape)
    if case.compute == "f32" or own_order:
        rows = np.nonzero(mask)
        tol += 2 * (case.k + 2) * U * case.magnitude()[rows]
    if activation != "linear":
        tol += ACT_ULPS * np.spacing(np.abs(t).astype(np.float32)).astype(np.float64) + 2.0 ** -149
    if c_bf16:
        tol += np.spacing(np.abs(t).astype(np.float32)).astype(np.float64) * 2 ** 16
    err = np.abs(g.astype(np.float64) - t.astype(np.float64))
    worst = np.argmax(err - tol)
    assert (err <= tol).all(), f"{label}: |kernel - twin| = {err[worst]:.3g} > bound {tol[worst]:.3g}"


@pytest.mark.parametrize("compute, kernel, weight, x", kernel_params())
def test_kernel_edges_match_scalar_twin(compute, kernel, weight, x):
    rng = np.random.default_rng(zlib.crc32(f"{compute}/{weight}/{x}".encode()))  # the same data in every run
    row_sizes, col_sizes, k_sizes = edge_sizes(compute, kernel)
    g = K_GROUP[compute]
    count = 0
    for m in row_sizes:
        for n in col_sizes:
            for k in k_sizes:
                panels = (n + 15) // 16
                # Odd strides: lda past the k-group padding (+1), ldc past n (+3); q8 also with lda = k exactly (the
                # bounded last-quad read) when k is not a multiple of 4.
                layouts = [dict(lda=-(-k // g) * g + 1, ldc=n + 3, rows=(0, m), panels=(0, panels))]
                if m > 1 or panels > 1:
                    layouts.append(dict(lda=-(-k // g) * g + 1, ldc=n + 3, rows=(min(1, m - 1), m),
                                        panels=(min(1, panels - 1), panels)))
                if compute == "q8" and k % 4:
                    layouts.append(dict(lda=k, ldc=n, rows=(0, m), panels=(0, panels)))
                for layout in layouts:
                    case = Case(rng, compute, weight, x, k, n, m, layout["lda"])
                    kw = dict(rows=layout["rows"], panels=layout["panels"], ldc=layout["ldc"])
                    if compute == "q8":
                        kw["a_tail_safe"] = layout["lda"] >= -(-k // 4) * 4
                    # Each activation once per shape, clip on for every other shape: all combinations occur.
                    activation = ACTIVATIONS[count % len(ACTIVATIONS)]
                    clip = bool(count // len(ACTIVATIONS) % 2)
                    count += 1
                    got = case.run(kernel, activation=activation, clip=clip, **kw)
                    twin = case.run("scalar", activation=activation, clip=clip, **kw)
                    mask = requested_mask(got.shape, layout["rows"], layout["panels"], n)
                    label = f"{compute}/{kernel}/{weight}/{x} M={m} N={n} K={k} {kw} {activation} clip={clip}"
                    check_against_twin(case, got, twin, mask, activation, False, label,
                                       (compute, kernel) in OWN_ORDER)


@pytest.mark.parametrize("compute, kernel, weight, x", kernel_params())
@pytest.mark.parametrize("activation", ACTIVATIONS)
@pytest.mark.parametrize("clip", [False, True])
def test_every_activation_and_clip_on_tile_edges(compute, kernel, weight, x, activation, clip):
    rng = np.random.default_rng(7)
    tile, g = ROW_TILE[(compute, kernel)], K_GROUP[compute]
    for m, n, k in ((1, 1, 1), (tile + 1, 17, g + 1), (2 * tile + 1, 33, 37)):
        case = Case(rng, compute, weight, x, k, n, m, -(-k // g) * g)
        kw = dict(rows=(0, m), panels=(0, (n + 15) // 16), activation=activation, clip=clip)
        if compute == "q8":
            kw["a_tail_safe"] = True
        got, twin = case.run(kernel, **kw), case.run("scalar", **kw)
        mask = requested_mask(got.shape, kw["rows"], kw["panels"], n)
        check_against_twin(case, got, twin, mask, activation, False, f"{kernel} M={m} N={n} K={k}",
                           (compute, kernel) in OWN_ORDER)
        if clip:
            assert ((got[mask] >= 0) & (got[mask] <= 1)).all()


@pytest.mark.parametrize("kernel", [pytest.param(k, marks=[pytest.mark.skip(reason=core.kernel_problem("bf16", k))]
                                                 if core.kernel_problem("bf16", k) else [])
                                    for k in core.kernel_names("bf16")])
@pytest.mark.parametrize("activation", ACTIVATIONS)
def test_bf16_outputs_as_bf16_bits_with_the_pad_zero(kernel, activation):
    rng = np.random.default_rng(8)
    tile = ROW_TILE[("bf16", kernel)]
    for m, n, k in ((1, 1, 1), (tile + 1, 17, 3), (tile, 16, 2), (2 * tile + 1, 33, 37)):
        case = Case(rng, "bf16", "bf16", "bf16", k, n, m, -(-k // 2) * 2 + 1)
        kw = dict(rows=(0, m), panels=(0, (n + 15) // 16), ldc=n + 2, activation=activation, c_bf16=True)
        got, twin = case.run(kernel, **kw), case.run("scalar", **kw)
        mask = requested_mask(got.shape, kw["rows"], kw["panels"], n)
        check_against_twin(case, got, twin, mask, activation, True, f"{kernel} M={m} N={n} K={k} c_bf16",
                           ("bf16", kernel) in OWN_ORDER)


@pytest.mark.parametrize("compute", ["f32", "q8", "bf16"])
@pytest.mark.parametrize("activation", ACTIVATIONS)
def test_simd_kernels_of_one_compute_agree_bit_for_bit(compute, activation):
    simd = [k for k in core.kernel_names(compute)
            if k != "scalar" and not core.kernel_problem(compute, k) and (compute, k) not in OWN_ORDER]
    if len(simd) < 2:
        pytest.skip(f"{compute}: fewer than two SIMD kernels run on this CPU ({', '.join(simd) or 'none'})")
    rng = np.random.default_rng(9)
    for weight in WEIGHTS[compute]:
        for x in INPUTS[compute]:
            for m, n, k in ((1, 17, 5), (9, 129, 37), (17, 33, 100)):
                case = Case(rng, compute, weight, x, k, n, m, -(-k // K_GROUP[compute]) * K_GROUP[compute])
                kw = dict(activation=activation, clip=True)
                if compute == "q8":
                    kw["a_tail_safe"] = True
                outs = {kernel: case.run(kernel, **kw) for kernel in simd}
                for kernel in simd[1:]:
                    np.testing.assert_array_equal(outs[kernel].view(np.uint32), outs[simd[0]].view(np.uint32),
                                                  err_msg=f"{kernel} vs {simd[0]} {weight}/{x} M={m} N={n} K={k}")


def q8_tile_params():
    """Every register tile of every q8 kernel family (usable here or skipped by name)."""
    params = []
    for kernel in core.kernel_names("q8"):
        problem = core.kernel_problem("q8", kernel)
        marks = [pytest.mark.skip(reason=problem)] if problem else []
        params += [pytest.param(kernel, tile, marks=marks, id=f"q8-{kernel}-{tile}")
                   for tile in core.tile_names("q8", kernel)]
    return params


@pytest.mark.parametrize("kernel, tile", q8_tile_params())
def test_every_q8_tile_through_its_edges_matches_the_scalar_twin(kernel, tile):
    """Each tile of a family (its name is MR x columns, maybe with a k-unroll suffix kU) through M in {1, MR-1, MR, MR+1, 2 MR+1, MR+8 (the leftover
    8-row strip)}, N around its width and the 8-panel group, K around the quad, odd strides, partial ranges: the
    requested cells equal the family's default tile bit for bit (every activation: the same int32 sums and epilogue)
    and the scalar twin (bit for bit when linear, else within ACT_ULPS); the other cells stay NaN."""
    mr, cols = (int(v) for v in tile.split("k")[0].split("x"))
    default = core.tile_names("q8", kernel)[0]
    rng = np.random.default_rng(zlib.crc32(f"tile/{kernel}/{tile}".encode()))
    rows = sorted({1, max(mr - 1, 1), mr, mr + 1, 2 * mr + 1, mr + 8})
    ns = sorted({1, max(cols - 1, 1), cols, cols + 1, 2 * cols + 17, 127, 129})
    count = 0
    for m in rows:
        for n in ns:
            for k in (1, 3, 4, 5, 9, 37):
                panels = (n + 15) // 16
                for lda, rows_range, panel_range in ((-(-k // 4) * 4 + 1, (0, m), (0, panels)),
                                                     (k, (min(1, m - 1), m), (min(1, panels - 1), panels))):
                    case = Case(rng, "q8", "int8", "uint8", k, n, m, lda)
                    activation = ACTIVATIONS[count % len(ACTIVATIONS)]
                    kw = dict(rows=rows_range, panels=panel_range, ldc=n + 3, activation=activation,
                              clip=bool(count // len(ACTIVATIONS) % 2), a_tail_safe=lda >= -(-k // 4) * 4)
                    count += 1
                    got = case.run(kernel, tile=tile, **kw)
                    label = f"q8/{kernel}/{tile} M={m} N={n} K={k} {kw}"
                    np.testing.assert_array_equal(got.view(np.uint32),
                                                  case.run(kernel, tile=default, **kw).view(np.uint32), err_msg=label)
                    twin = case.run("scalar", **kw)
                    mask = requested_mask(got.shape, rows_range, panel_range, n)
                    check_against_twin(case, got, twin, mask, activation, False, label)


def test_tile_names_and_the_hook_refuse_an_unknown_tile():
    assert core.tile_names("f32", "avx2") == [] and core.tile_names("bf16", "scalar") == ["1x1"]
    assert core.tile_names("q8", "avx512vnni")[0] == "8x32" and core.tile_names("q8", "avxvnni")[0] == "6x16"
    with pytest.raises(ValueError, match="unknown q8 kernel 'avx9'"):
        core.tile_names("q8", "avx9")
    w, b, a = np.ones((4, 5), np.int8), np.zeros(5, np.float32), np.ones((2, 4), np.uint8)
    q8 = dict(a_scale=np.ones(2, np.float32), a_zero=np.zeros(2, np.int32))
    with pytest.raises(ValueError, match=r"unknown tile '9x9' for the scalar q8 kernel \(expected one of: 1x1\)"):
        core._test_kernel("scalar", "q8", w, b, a, tile="9x9", **q8)
    with pytest.raises(TypeError, match="tile must be a str"):
        core._test_kernel("scalar", "q8", w, b, a, tile=8, **q8)
    with pytest.raises(ValueError, match="tile is for q8, bf16 and f16-weight layers only"):
        core._test_kernel("scalar", "f32", w.astype(np.float32), b, a.astype(np.float32), tile="1x1")


# ---- the hook validates every argument --------------------------------------------------------------------------
def _args():
    w = np.ones((3, 5), np.float32)
    return w, np.zeros(5, np.float32), np.ones((2, 3), np.float32)


@pytest.mark.parametrize("call, error, message", [
    (lambda w, b, a: core._test_kernel("avx9", "f32", w, b, a), ValueError, "unknown f32 kernel 'avx9'"),
    (lambda w, b, a: core._test_kernel("scalar", "f64", w, b, a), ValueError, "compute is 'f64'"),
    (lambda w, b, a: core._test_kernel("scalar", "q8", w, b, a), TypeError, "for compute 'q8'"),
    (lambda w, b, a: core._test_kernel("scalar", "f32", w, b[:4], a), ValueError, "bias has shape (4,)"),
    (lambda w, b, a: core._test_kernel("scalar", "f32", w, b, a[:, :2].copy()), ValueError, "must hold k = 3"),
    (lambda w, b, a: core._test_kernel("scalar", "f32", w, b, a, rows=(1, 3)), ValueError, "0 <= begin <= end <= 2"),
    (lambda w, b, a: core._test_kernel("scalar", "f32", w, b, a, panels=(0, 2)), ValueError, "<= 1"),
    (lambda w, b, a: core._test_kernel("scalar", "f32", w, b, a, ldc=4), ValueError, "ldc is 4, expected >= 5"),
    (lambda w, b, a: core._test_kernel("scalar", "f32", w, b, a, activation="gelu"), ValueError, "'gelu'"),
    (lambda w, b, a: core._test_kernel("scalar", "f32", w, b, a, c_bf16=True), ValueError, "bf16 kernels only"),
    (lambda w, b, a: core._test_kernel("scalar", "f32", w, b, a, input_scale=float("nan")), ValueError, "finite"),
    (lambda w, b, a: core._test_kernel("scalar", "q8", w.astype(np.int8), b, a.astype(np.uint8)), ValueError,
     "need a_scale"),
    (lambda w, b, a: core._test_kernel("scalar", "q8", w.astype(np.int8), b, a.astype(np.uint8),
                                       a_scale=np.ones(2, np.float32), a_zero=np.array([0, 256], np.int32)),
     ValueError, "a_zero[1] is 256"),
    (lambda w, b, a: core._test_kernel("scalar", "q8", w.astype(np.int8), b, a.astype(np.uint8), a_tail_safe=True,
                                       a_scale=np.ones(2, np.float32), a_zero=np.zeros(2, np.int32)),
     ValueError, "a_tail_safe needs rows readable up to 4"),
    (lambda w, b, a: core._test_kernel("scalar", "bf16", w.view(np.uint16)[:, :5].copy(), b,
                                       np.ones((2, 3), np.uint16)), ValueError, "readable up to 2 ceil(k / 2) = 4"),
    (lambda w, b, a: core._test_kernel("scalar", "bf16", np.zeros((3, 5), np.uint16), b,
                                       np.ones((2, 4), np.uint16)), ValueError, "zero padded at column 3"),
    (lambda w, b, a: core._test_kernel("scalar", "bf16", np.zeros((3, 5), np.uint16), b, np.zeros((2, 4), np.uint16),
                                       c_bf16=True, ldc=5), ValueError, "expected >= 6"),
])
def test_test_hook_refuses_what_breaks_the_kernel_contract(call, error, message):
    with pytest.raises(error) as info:
        call(*_args())
    assert message in str(info.value)
