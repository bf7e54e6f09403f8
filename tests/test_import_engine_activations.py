"""relu, leaky_relu(slope), tanh and elu(alpha) in the engine: every backend and ISA, every precision, against the
float64 reference (aefast.model.activations) and against the scalar twin.

Elementwise: a two-layer model whose first layer is diag(40) - 20 followed by the activation and whose second is
the identity computes act(z) for z in [-20, 20] exactly as the kernel's epilogue does (the products x * 40 and the
sum with -20 are each rounded once in float32, here as in the kernel; the zero weights add exact zeros), so each
output is compared with the float64 activation of its own float32 argument, in float32 ulps.
"""
from __future__ import annotations

import numpy as np
import pytest

import aefast
from aefast.engine.api import available_backends, backend_activations
from aefast.errors import UnsupportedModelError
from aefast.engine.reference import random_weights, reference_forward
from aefast.model import AutoencoderWeights, apply_activation

PAIRS = available_backends()
NEW = ("relu", "leaky_relu(0.01)", "leaky_relu(0.2)", "tanh", "elu(0.5)", "elu(2.0)")
# Largest error of one activation against float64, in float32 ulps of the result. Measured on the Intel Xeon
# (Sapphire-Rapids-class KVM guest) over the grid below: relu 0; leaky_relu 0.50 (alpha * z rounded once);
# elu(alpha) 0.80 (avx512, avx2, numba), 0.74 (scalar, libm expm1); tanh 2.46 (avx512, avx2: -e / (2 + e) from the
# expm1 polynomial), 1.99 (scalar, libm tanhf), 3.30 (numba, fastmath). The bounds leave a little room, no more.
MAX_ULP = {"relu": 0.0, "leaky_relu(0.01)": 0.5, "leaky_relu(0.2)": 0.5, "tanh": 4.0, "elu(0.5)": 1.0,
           "elu(2.0)": 1.0}
# Relative RMS error of a whole random model against the float64 reference, per precision (the bench's bounds,
# aefast/bench/contenders.py REL_RMS_TOLERANCE, with fp32 tighter).
REL_RMS = {"fp32": 1e-5, "fp16": 1e-2, "bf16": 2e-2, "int8": 1e-1}
TINY = np.finfo(np.float32).smallest_subnormal


def _ids(pair):
    return f"{pair[0]}-{pair[1]}"


def _load(w, pair, **kw):
    """aefast.load on (backend, isa); where that backend's kernels lack the new activations (a compiled core
    without ACTIVATIONS), the refusal is what is checked and the caller's comparison is skipped."""
    backend, isa = pair
    kinds, with_alpha = backend_activations(backend)
    if with_alpha and "tanh" in kinds:
        return aefast.load(w, backend=backend, isa=isa, threads=1, **kw)
    with pytest.raises(UnsupportedModelError, match="is not supported by this engine build"):
        aefast.load(w, backend=backend, isa=isa, threads=1, **kw)
    pytest.skip(f"{backend} {isa}: this build's kernels refuse the new activations (checked)")


def ulp_error(actual, exact):
    spacing = np.maximum(np.spacing(np.abs(exact).astype(np.float32)).astype(np.float64), float(TINY))
    return np.where(actual == exact, 0.0, np.abs(actual.astype(np.float64) - exact) / spacing)


def elementwise_model(act: str, n: int = 64) -> AutoencoderWeights:
    eye = np.eye(n, dtype=np.float32)
    return AutoencoderWeights([eye * np.float32(40), eye], [np.full(n, -20, np.float32), np.zeros(n, np.float32)],
                              [act, "linear"], 1, (n,), pixel_scale=1.0).validate("test")


@pytest.mark.parametrize("pair", PAIRS, ids=_ids)
@pytest.mark.parametrize("act", NEW)
def test_each_activation_within_its_ulp_bound_on_every_isa(pair, act):
    x = np.linspace(0, 1, 64 * 200, dtype=np.float32).reshape(200, 64)
    engine = _load(elementwise_model(act), pair)
    got = engine.reconstruct(x)
    z = x * np.float32(40) + np.float32(-20)   # float32, each step rounded once, as in the kernel
    assert ulp_error(got, apply_activation(act, z.astype(np.float64))).max() <= MAX_ULP[act]


@pytest.mark.parametrize("pair", PAIRS, ids=_ids)
@pytest.mark.parametrize("precision", list(REL_RMS))
@pytest.mark.parametrize("acts", [("relu", "leaky_relu(0.1)", "tanh", "sigmoid"),
                                  ("elu(0.5)", "tanh", "relu", "linear"), ("leaky_relu(0.3)", "elu(1.5)", "elu",
                                                                            "sigmoid")])
def test_models_with_new_activations_agree_with_the_reference_and_the_scalar_twin(pair, precision, acts):
    backend, isa = pair
    w = random_weights((100, 31, 3, 31, 100), seed=5)
    w.activations = list(acts)
    x = np.random.default_rng(3).random((57, 100), dtype=np.float32)
    got = _load(w, pair, precision=precision).reconstruct(x)
    ref = reference_forward(w, x)
    rel = np.sqrt(np.mean((got - ref) ** 2) / np.mean(ref ** 2))
    assert rel < REL_RMS[precision]
    if backend == "cpp" and isa != "scalar":
        twin = aefast.load(w, precision=precision, backend="cpp", isa="scalar", threads=1).reconstruct(x)
        assert np.sqrt(np.mean((got - twin) ** 2) / np.mean(twin ** 2)) < REL_RMS[precision] / 10


SIMD = [isa for backend, isa in PAIRS if backend == "cpp" and isa != "scalar"]


@pytest.mark.parametrize("isa", SIMD[1:] or [pytest.param(None, marks=pytest.mark.skip(
    reason=f"one SIMD ISA here ({SIMD}): nothing to compare"))])
def test_simd_isas_agree_bit_for_bit_on_new_activations(isa):
    """Every SIMD ISA runs one activation algorithm (simd_math.h): fp32 outputs equal the best ISA's bit for bit."""
    w = random_weights((100, 31, 3, 31, 100), seed=6)
    w.activations = ["tanh", "leaky_relu(0.2)", "elu(0.5)", "relu"]
    x = np.random.default_rng(4).random((19, 100), dtype=np.float32)
    first = _load(w, ("cpp", SIMD[0])).reconstruct(x)
    assert np.array_equal(_load(w, ("cpp", isa)).reconstruct(x), first)


@pytest.mark.parametrize("pair", PAIRS, ids=_ids)
def test_max_code_keeps_a_steep_leaky_relu_decoder_finite(pair):
    """decompress accepts codes up to max_code, below which no decoder value can overflow float32: a leaky ReLU
    with slope 30 multiplies the negative side by 30 per layer, and max_code must account for it."""
    # Positive codes turn negative in the first decoder layer and stay negative: 30 * 30 growth.
    kernels = [np.ones((4, 2), np.float32), -np.ones((2, 4), np.float32), np.ones((4, 4), np.float32)]
    biases = [np.zeros(2, np.float32), np.zeros(4, np.float32), np.zeros(4, np.float32)]
    w = AutoencoderWeights(kernels, biases, ["linear", "leaky_relu(30.0)", "leaky_relu(30.0)"], 1, (4,),
                           pixel_scale=1.0)
    engine = _load(w.validate("test"), pair)
    codes = np.full((1, 2), engine.max_code, np.float32)
    out = engine.decompress(codes)
    assert np.isfinite(out).all() and np.abs(out).max() > 1e36   # finite, and really near the limit
