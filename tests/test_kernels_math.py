"""Accuracy of the vectorised activations (ELU via expm1, sigmoid) and of fp16 widening, in float32 ulps."""
from __future__ import annotations

import numpy as np
import pytest

core = pytest.importorskip("aefast._core")

ISAS = core.isas()  # usable here, best first
# Every ISA level the build knows; one this CPU cannot run is skipped with the features it lacks (the -ra summary
# lists them, e.g. "avx512: CPU lacks avx512bw"), so the report says what ran and what did not.
ALL_ISAS = [pytest.param(isa, marks=[pytest.mark.skip(reason=p)] if (p := core.isa_problem(isa)) else [])
            for isa in core.known_isas()]
# Measured maxima over the grids below (see docs/engine.md): ELU 0.84 ulp (avx2, avx512), 0.75
# (scalar); sigmoid 2.40 ulp (avx2, avx512), 0.50 (scalar). The bounds leave a little room, no more.
# avx512 runs the same algorithm as avx2 (simd_math.h, instantiated per width) and must equal it bit for bit.
ELU_MAX_ULP = 1.0
SIGMOID_MAX_ULP = 3.0
TINY = np.finfo(np.float32).smallest_subnormal
EDGES = np.array([0.0, -0.0, TINY, -TINY, 1e-38, -1e-38, 2.0**-24, -(2.0**-24), -1e-8, 1e-8, -1e-3,
                  -0.34657, -0.34658, -1.0, -16.0, -17.5, -20.0, -88.0, -104.0, -1e30, -3.4e38, 3.4e38,
                  np.inf, -np.inf], np.float32)


def ulp_error(actual, exact):
    """|actual - exact| in units of the float32 spacing at exact (subnormal spacing at least)."""
    spacing = np.maximum(np.spacing(np.abs(exact).astype(np.float32)).astype(np.float64), float(TINY))
    with np.errstate(invalid="ignore"):
        return np.where(actual == exact, 0.0, np.abs(actual.astype(np.float64) - exact) / spacing)


def elu_exact(x):
    x64 = x.astype(np.float64)
    return np.where(x64 > 0, x64, np.expm1(np.minimum(x64, 0)))


@pytest.mark.parametrize("isa", ALL_ISAS)
def test_elu_within_one_ulp_of_float64_expm1(isa):
    grid = np.linspace(-100, 100, 400_001, dtype=np.float32)
    small = -np.logspace(-45, 1, 50_000).astype(np.float32)
    x = np.concatenate([grid, small, -small, EDGES])
    y = core.elu(x, isa)
    assert y.dtype == np.float32 and y.shape == x.shape
    assert ulp_error(y, elu_exact(x)).max() <= ELU_MAX_ULP


@pytest.mark.parametrize("isa", ALL_ISAS)
def test_elu_edge_values(isa):
    y = core.elu(EDGES, isa)
    np.testing.assert_array_equal(y, elu_exact(EDGES).astype(np.float32))
    assert np.signbit(y[1]), "ELU(-0.0) must stay -0.0"
    assert (y[EDGES <= -17.5] == -1.0).all(), "saturates to exactly -1"
    assert np.isnan(core.elu(np.array([np.nan, -np.nan], np.float32), isa)).all()
    x = np.linspace(-3, 3, 35, dtype=np.float32)
    whole = core.elu(x, isa)
    for n in range(0, 36):  # every tail length of the 8- and 16-lane loops
        np.testing.assert_array_equal(core.elu(x[:n].copy(), isa), whole[:n])


def one_by_one(activation, isa):
    layer = {"weight": np.ones((1, 1), np.float32), "bias": np.zeros(1, np.float32), "activation": activation}
    return core.Network([layer], isa=isa, threads=1)


def apply(net, x):
    out = np.full((x.size, 1), np.nan, np.float32)
    net.forward(np.ascontiguousarray(x[:, None]), out)
    return out[:, 0]


@pytest.mark.parametrize("isa", ALL_ISAS)
def test_fused_elu_epilogue_equals_standalone_elu(isa):
    x = np.concatenate([np.linspace(-30, 30, 10_001, dtype=np.float32), EDGES])
    np.testing.assert_array_equal(apply(one_by_one("elu", isa), x), core.elu(x, isa))


@pytest.mark.parametrize("isa", ALL_ISAS)
def test_sigmoid_within_three_ulp_including_subnormal_results(isa):
    x = np.concatenate([np.linspace(-110, 110, 400_001, dtype=np.float32), EDGES])
    with np.errstate(over="ignore"):
        exact = 1 / (1 + np.exp(-x.astype(np.float64)))
    y = apply(one_by_one("sigmoid", isa), x)
    assert ulp_error(y, exact).max() <= SIGMOID_MAX_ULP
    assert y[x == np.inf][0] == 1.0 and y[x == -np.inf][0] == 0.0


@pytest.mark.parametrize("isa", ALL_ISAS)
def test_clip_clamps_to_unit_interval(isa):
    x = np.array([-5, -1e-30, 0, 0.5, 1, 1.0000001, 7, np.inf, -np.inf], np.float32)
    net = one_by_one("linear", isa)
    out = np.full((x.size, 1), np.nan, np.float32)
    net.forward(x[:, None].copy(), out, clip=True)
    np.testing.assert_array_equal(out[:, 0], np.clip(x, 0, 1))


@pytest.mark.parametrize("isa", ALL_ISAS)
def test_float16_weights_widen_exactly_including_subnormals(isa):
    special = np.array([0.0, -0.0, 6e-8, -6e-8, 3e-5, 6.1e-5, 65504.0, -65504.0, 1 / 3, -2.0], np.float16)
    layer = {"weight": special[None, :].copy(), "bias": np.zeros(special.size, np.float32),
             "activation": "linear"}
    out = np.full((1, special.size), np.nan, np.float32)
    core.Network([layer], isa=isa).forward(np.ones((1, 1), np.float32), out)
    np.testing.assert_array_equal(out[0], special.astype(np.float32))


@pytest.mark.skipif(not {"avx2", "avx512"} <= set(ISAS), reason="needs both avx2 and avx512 on this CPU")
def test_avx512_activations_equal_avx2_bit_for_bit():
    rng = np.random.default_rng(9)
    bits = rng.integers(0, 2**32, 1_000_000, dtype=np.uint64).astype(np.uint32).view(np.float32)
    x = np.concatenate([np.linspace(-110, 110, 400_001, dtype=np.float32), bits, EDGES])
    np.testing.assert_array_equal(core.elu(x, "avx512"), core.elu(x, "avx2"))
    for activation in ("elu", "sigmoid"):
        with np.errstate(invalid="ignore"):
            np.testing.assert_array_equal(apply(one_by_one(activation, "avx512"), x),
                                          apply(one_by_one(activation, "avx2"), x), err_msg=activation)
