"""The ELU of q8 (int8) layers (dense.h ActivationKind::elu_q8, simd_math.h expm1_q8): a cheaper expm1 on the
negative side, the same function in every q8 kernel and the scalar twin.

- Every q8 kernel family usable here and every register tile of it, driven through the kernel tester over M, N, K
  edges with NaN-prefilled outputs and partial row/panel ranges, equals the scalar twin bit for bit (alpha 1 and 0.5).
- The error contract: over [-20, 0) against float64 expm1, relative error <= 1e-6 (the bound docs/engine.md
  states), NaN stays NaN, -0.0/tiny values and saturation as documented.
- Networks run it on every q8 ELU layer: outputs equal across ISAs bit for bit (the twin included), and a one-layer
  call is the kernel with the q8 ELU, so a chain equals its layers run in separate calls.
"""
from __future__ import annotations

import zlib

import numpy as np
import pytest

core = pytest.importorskip("aefast._core")

FAMILIES = [name for name in core.kernel_names("q8") if not core.kernel_problem("q8", name)]
CASES = [(family, tile) for family in FAMILIES for tile in core.tile_names("q8", family)]
BOUND = 1e-6


def case(rng, m, n, k, lda):
    """(weight, bias, a, kwargs) of a random q8 block whose outputs take both signs (bias ~ N(0, 0.5))."""
    scales = {"a_scale": (rng.random(m) * 0.01 + 1e-4).astype(np.float32), "scale": (rng.random(n) * 0.02 + 1e-3)
              .astype(np.float32), "a_zero": rng.integers(0, 256, m).astype(np.int32)}
    return (rng.integers(-127, 128, (k, n), dtype=np.int8), (0.5 * rng.standard_normal(n)).astype(np.float32),
            rng.integers(0, 256, (m, lda), dtype=np.uint8), scales)


@pytest.mark.parametrize("family,tile", CASES)
def test_q8_elu_of_every_tile_equals_the_scalar_twin_bit_for_bit(family, tile):
    rng = np.random.default_rng(zlib.crc32(f"q8elu/{family}/{tile}".encode()))
    mr = int(tile.split("x")[0]) if "x" in tile else 1
    cases = negatives = 0
    for m in sorted({1, max(mr - 1, 1), mr, mr + 1, 2 * mr + 1, 17, 33}):
        for n, k in ((1, 1), (15, 3), (17, 4), (33, 5), (129, 37), (300, 64)):
            for lda, rows, panels, ldc in ((-(-k // 4) * 4 + 1, (0, m), None, n + 3),
                                           (k, (min(1, m - 1), m), (min(1, (n - 1) // 16), -(-n // 16)), n)):
                w, bias, a, kw = case(rng, m, n, k, lda)
                for activation in ("elu", "elu(0.5)"):
                    args = dict(rows=rows, panels=panels, ldc=ldc, a_tail_safe=lda >= -(-k // 4) * 4,
                                activation=activation, q8_elu=True, **kw)
                    label = f"{family}/{tile} M={m} N={n} K={k} lda={lda} rows={rows} panels={panels} {activation}"
                    got = core._test_kernel(family, "q8", w, bias, a, tile=tile, **args)
                    twin = core._test_kernel("scalar", "q8", w, bias, a, **args)
                    np.testing.assert_array_equal(got.view(np.uint32), twin.view(np.uint32), err_msg=label)
                    # Cells outside the request kept the NaN prefill; count the outputs from the negative branch.
                    negatives += int((got[rows[0]:rows[1], :n] < 0).sum())
                    assert np.isnan(got[:, n:]).all() and np.isnan(got[:rows[0]]).all(), label
                    cases += 1
    assert cases > 100 and negatives > 1000


def q8_elu(family, x, alpha="elu"):
    """The kernel's q8 ELU of float32 values x: a K = 1 layer on code 0 with zero point 0, so each output
    is act(0 * scale + bias[j]) = act(x[j])."""
    n = x.size
    w = np.ones((1, n), np.int8)
    a = np.zeros((1, 4), np.uint8)
    kw = dict(a_scale=np.ones(1, np.float32), a_zero=np.zeros(1, np.int32), a_tail_safe=True)
    return core._test_kernel(family, "q8", w, x.astype(np.float32), a, activation=alpha, q8_elu=True, **kw)[0]


@pytest.mark.parametrize("family", FAMILIES)
def test_q8_elu_error_contract(family):
    x = np.concatenate([np.linspace(-20, 0, 200_001, dtype=np.float32)[:-1],
                        -np.logspace(-30, 1.3, 4001).astype(np.float32),
                        np.array([-0.34657359, -0.34657358, -0.6931472, -87.0, -1e30, -np.float32(2 ** -24)], np.float32)])
    got = q8_elu(family, x).astype(np.float64)
    want = np.expm1(x.astype(np.float64))
    rel = np.abs(got - want) / np.abs(want)
    assert rel.max() <= BOUND, (family, rel.max(), x[np.argmax(rel)])
    # alpha scales the negative side; positives, saturation and NaN.
    half = q8_elu(family, x, "elu(0.5)").astype(np.float64)
    assert (np.abs(half - 0.5 * want) <= BOUND * 0.5 * np.abs(want) + 1e-45).all()
    special = q8_elu(family, np.array([2.5, 0.0, -0.0, -20.0, -50.0, np.nan, 1e-45, -1e-45], np.float32))
    assert special[0] == 2.5 and special[1] == 0 and special[2] == 0
    assert special[3] == special[4] == np.float32(np.expm1(-20.0)) == -1.0
    assert np.isnan(special[5]) and special[6] == np.float32(1e-45) and special[7] == np.float32(-1e-45)


def q8_chain(rng, sizes, activations):
    layers = []
    for (k, n), act in zip(zip(sizes, sizes[1:]), activations):
        layers.append({"weight": rng.integers(-127, 128, (k, n), dtype=np.int8), "compute": "q8", "activation": act,
                       "scale": np.full(n, 2.0 / (127 * np.sqrt(k)), np.float32),
                       "bias": (0.3 * rng.standard_normal(n)).astype(np.float32)})
    return layers


def forward(net, x, **kw):
    out = np.full((x.shape[0], net.layer_sizes[kw.get("end", len(net.layer_sizes) - 1)]), np.nan, np.float32)
    net.forward(x, out, **kw)
    return out


def test_networks_agree_across_isas_bit_for_bit():
    """The ELU layers run the q8 ELU on every ISA, the scalar twin included, so a chain of ELU and linear layers is
    bit-identical everywhere (a sigmoid layer would differ from the twin's libm by ulps)."""
    rng = np.random.default_rng(7)
    layers = q8_chain(rng, [100, 70, 9, 70, 100], ["elu", "elu", "linear", "elu(0.5)"])
    x = rng.random((40, 100), dtype=np.float32)
    for begin, end in ((0, -1), (0, 3), (1, 4)):
        xs = x if begin == 0 else rng.standard_normal((40, 70)).astype(np.float32)
        assert (forward(core.Network(layers, threads=1), xs, begin=begin, end=begin + 1) < 0).mean() > 0.2
        outs = {isa: forward(core.Network(layers, isa=isa, threads=2), xs, begin=begin, end=end) for isa in core.isas()}
        for isa, out in outs.items():
            np.testing.assert_array_equal(out.view(np.uint32), outs["scalar"].view(np.uint32), err_msg=f"{isa} {begin}:{end}")


@pytest.mark.parametrize("isa", core.isas())
def test_a_one_layer_call_is_the_kernel_with_the_q8_elu(isa):
    """uint8 input enters the first layer as its codes (scale input_scale, zero point 0), so a one-layer call is the
    kernel on those codes, with the q8 ELU (and not the ELU of the other computes: the two differ on these outputs,
    so the check can fail)."""
    rng = np.random.default_rng(8)
    layers = q8_chain(rng, [64, 300, 64], ["elu", "elu"])
    x8 = rng.integers(0, 256, (24, 64), dtype=np.uint8)
    got = forward(core.Network(layers, isa=isa, threads=1), x8, begin=0, end=1, input_scale=1 / 255)
    kw = dict(a_scale=np.full(24, np.float32(1 / 255), np.float32), a_zero=np.zeros(24, np.int32), a_tail_safe=True,
              scale=layers[0]["scale"], activation="elu")
    w, bias = layers[0]["weight"], layers[0]["bias"]
    kernel = core.kernel_for(isa, "q8")
    q8 = core._test_kernel(kernel, "q8", w, bias, x8, q8_elu=True, **kw)
    other = core._test_kernel(kernel, "q8", w, bias, x8, **kw)
    np.testing.assert_array_equal(got.view(np.uint32), q8.view(np.uint32))
    assert (got != other).any()


def test_q8_elu_is_refused_where_it_does_not_apply():
    w, bias, a = np.ones((4, 16), np.int8), np.zeros(16, np.float32), np.ones((2, 4), np.uint8)
    kw = dict(a_scale=np.ones(2, np.float32), a_zero=np.zeros(2, np.int32), a_tail_safe=True)
    with pytest.raises(ValueError, match="q8_elu is for q8 kernels with an ELU"):
        core._test_kernel("scalar", "q8", w, bias, a, activation="relu", q8_elu=True, **kw)
