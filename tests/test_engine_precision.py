"""Every precision x operation x ISA of the Engine against the quantized float64 reference.

The reference (aefast/engine/reference.py `quantized_forward`) applies the engine's own quantization steps in float64:
the weights as the kernels hold them (fp16, bf16 bits, per-channel int8 with corrected biases), bf16 rounding of the
input and of every layer's output but the last, and for int8 the kernels' per-row uint8 quantization (the float32
row_quantization formula) with exact integer sums. Each comparison has a bound derived beside it, element by element:

- layer by layer (`layer_by_layer`): each layer of the engine's network is fed the network's own float32 output of
  the layer before, so the reference sees the same input and no rounding decision can differ; what is left is the
  float32 sum of K terms, scale and bias (gamma_{K+4} sum |x w|, about 8 sqrt(K) u sum |x w| with u = 2^-24, the
  probabilistic bound of Higham & Mary 2019 at 2.5e-14 failure probability, capped by the worst case K u), the
  activation's float32 approximation (8 ulps relative + 3e-10), and nothing for int8 sums (exact). The engine's
  outputs must equal the composition of these single layers bit for bit, so the tight per-layer bound covers what
  the Engine returns.
- the whole chain (`quantized_forward` from the raw input): the same bound carried through the layers (input errors
  through |W|, in quadrature where that is smaller), and where a rounding (bf16) or quantization (uint8) decision
  may fall on the other side for the engine than for the reference, interval arithmetic counts that step in full.
- score: the mean over pixels of (r - t)^2 moves by at most mean(2 |r - t| d + d^2) when r moves by d, plus float32
  rounding of the target, of r - t and of the result (4 u relative).

A deliberately wrong kernel (one weight off by 1%, or one int8 level) fails the layer-by-layer check:
test_a_perturbed_weight_is_caught.
"""
from __future__ import annotations

import pickle

import numpy as np
import pytest

import aefast
from aefast.engine import api as engine_mod
from aefast.engine import available_backends
from aefast.engine.precisions import PRECISIONS, backend_layers
from aefast.engine.reference import layer_by_layer, quantized_forward, random_weights

# Every (backend, ISA) pair the engine knows (csrc/dispatch.cpp's ISAs, then numba); one this machine or build
# lacks is skipped with its name, so the report says what ran and what did not.
ALL_BACKEND_ISAS = [("cpp", isa) for isa in ("avx512", "avx2", "scalar")] + [("numba", "numba")]


def _require(backend_isa) -> tuple[str, str]:
    if tuple(backend_isa) not in available_backends():
        pytest.skip(f"{backend_isa[0]} ISA {backend_isa[1]} is not available here (have {available_backends()})")
    return tuple(backend_isa)


U = 2.0 ** -24
BACKENDS = ALL_BACKEND_ISAS
ids = [f"{b}-{i}" for b, i in BACKENDS]


def _load(weights, backend_isa, precision: str) -> aefast.Engine:
    backend, isa = _require(backend_isa)
    return aefast.load(weights, precision=precision, backend=backend, isa="auto" if backend == "numba" else isa)


@pytest.fixture(scope="module")
def mnist_images(mnist_dir):
    import gzip

    path = mnist_dir / "t10k-images-idx3-ubyte.gz"
    raw = gzip.open(path).read() if path.exists() else (mnist_dir / "t10k-images-idx3-ubyte").read_bytes()
    return np.frombuffer(raw, np.uint8, offset=16).reshape(10000, 784)[:257].copy()


@pytest.fixture(scope="module")
def small_weights():
    return random_weights((784, 96, 12, 96, 784), seed=11)


@pytest.fixture(scope="module")
def default_weights():
    return aefast.read_model(engine_mod.DEFAULT_MODEL_PATH)


def _check(eng: aefast.Engine, weights, images: np.ndarray, op: str) -> None:
    layers = backend_layers(weights, eng.precision)
    enc, last = eng.encoder_layers, len(layers)
    net = eng._net
    for x, scale in ((images, 1 / 255), ((images / np.float32(255)).astype(np.float32), 1.0)):
        if op == "compress":
            got = eng.compress(x)
            steps, worst = layer_by_layer(net, layers, x, 0, enc, scale)
            want, bound = quantized_forward(layers, x, 0, enc, input_scale=scale)
        elif op == "decompress":
            codes = quantized_forward(layers, x, 0, enc, input_scale=scale)[0].astype(np.float32)
            got = eng.decompress(codes)
            steps, worst = layer_by_layer(net, layers, codes, enc, last)
            want, bound = quantized_forward(layers, codes, enc, last)
            clipped = eng.decompress(codes, clip=True)
            np.testing.assert_array_equal(clipped, np.clip(got, 0, 1))
        else:
            got = eng.reconstruct(x)
            steps, worst = layer_by_layer(net, layers, x, 0, last, scale)
            want, bound = quantized_forward(layers, x, 0, last, input_scale=scale)
            np.testing.assert_array_equal(eng.reconstruct(x, clip=True), np.clip(got, 0, 1))
        assert worst <= 1.0, f"{op}: a layer is {worst:.3g} times its bound away from the reference"
        np.testing.assert_array_equal(got, steps, err_msg=f"{op}: the chain differs from its single layers")
        excess = np.abs(got - want) / bound
        assert excess.max() <= 1.0, f"{op}: {excess.max():.3g} times the chain bound"
        if op != "score":
            continue
        # score (after the reconstruction it is made of, checked above): r = that reconstruction, t = the images
        got = eng.score(x)
        t = images.astype(np.float64) / 255
        r = steps.astype(np.float64)
        exact = ((r - t) ** 2).mean(axis=1)
        assert np.all(np.abs(got - exact) <= _score_slack(r, t, 0.0)), "score: not the mean square of reconstruct"
        # ... and against the chain reference, r within its chain bound
        ref = ((want - t) ** 2).mean(axis=1)
        slack = _score_slack(want, t, bound)
        assert np.all(np.abs(got - ref) <= slack), f"score: {(np.abs(got - ref) / slack).max():.3g} times the bound"


def _score_slack(r: np.ndarray, t: np.ndarray, d) -> np.ndarray:
    """A bound on |engine score - mean((r - t)^2)| per image when the engine's reconstruction lies within d of r:
    the engine's float32 target x * float32(1/255) is within 2 u t of t, its float32 r - t rounds by u |r - t|, so
    each pixel's difference moves by at most e = d + 2 u t + u (|r - t| + d) and its square by 2 |r - t| e + e^2;
    the float64 mean adds nothing worth counting, the cast to float32 u of the result."""
    e = d + 2 * U * t + U * (np.abs(r - t) + d)
    mse = ((r - t) ** 2).mean(axis=1)
    return (2 * np.abs(r - t) * e + e * e).mean(axis=1) + U * mse


@pytest.mark.parametrize("op", ["compress", "decompress", "reconstruct", "score"])
@pytest.mark.parametrize("precision", PRECISIONS)
@pytest.mark.parametrize("backend_isa", BACKENDS, ids=ids)
def test_engine_matches_quantized_reference(backend_isa, precision, op, small_weights, mnist_images):
    _check(_load(small_weights, backend_isa, precision), small_weights, mnist_images, op)


@pytest.mark.parametrize("precision", PRECISIONS)
@pytest.mark.parametrize("backend_isa", BACKENDS, ids=ids)
def test_default_model_matches_quantized_reference(backend_isa, precision, default_weights, mnist_images):
    _check(_load(default_weights, backend_isa, precision), default_weights, mnist_images[:32], "score")   # + reconstruct


@pytest.mark.parametrize("precision", PRECISIONS)
@pytest.mark.parametrize("backend_isa", BACKENDS, ids=ids)
def test_unpickled_engine_matches_quantized_reference(backend_isa, precision, small_weights, mnist_images):
    """The rebuilt engine is checked against the reference itself, not only against the engine it came from."""
    clone = pickle.loads(pickle.dumps(_load(small_weights, backend_isa, precision)))
    _check(clone, small_weights, mnist_images[:64], "reconstruct")


def _perturbed(layers: list[dict], i: int) -> list[dict]:
    """layers with one weight of layer i off: the largest of its column moved by 1% (int8: by one level)."""
    layers = [dict(layer) for layer in layers]
    w = layers[i]["weight"].copy()
    k = int(np.argmax(np.abs(w[:, 0].astype(np.float32) if w.dtype != np.uint16 else w[:, 0] & 0x7FFF)))
    if w.dtype == np.int8:
        w[k, 0] += -1 if w[k, 0] > 0 else 1
    elif w.dtype == np.uint16:   # bf16 bits: 1% is 2.56 bf16 steps of 2^-8 relative: move the bits by 3
        w[k, 0] += 3
    else:
        w[k, 0] = w[k, 0] * w.dtype.type(1.01)
    layers[i]["weight"] = w
    return layers


@pytest.mark.parametrize("precision", PRECISIONS)
@pytest.mark.parametrize("backend_isa", BACKENDS, ids=ids)
def test_a_perturbed_weight_is_caught(backend_isa, precision, small_weights, mnist_images):
    """The check has power: a network built from layers with one weight off (the wrong kernel) fails it, in every
    layer; the true network passes (the test above)."""
    eng = _load(small_weights, backend_isa, precision)
    layers = backend_layers(small_weights, precision)
    for i in range(len(layers)):
        bad = _perturbed(layers, i)
        net = (type(eng._net)(bad, threads=1) if eng.backend == "numba"
               else type(eng._net)(bad, isa=eng.isa, threads=1))
        x = mnist_images if i == 0 else quantized_forward(layers, mnist_images, 0, i, input_scale=1 / 255)[0]
        x = x.astype(np.float32) if i else x
        _, worst = layer_by_layer(net, layers, x, i, i + 1, 1 / 255 if i == 0 else 1.0)
        assert worst > 1.0, f"layer {i}: a perturbed weight passed ({worst:.3g} of the bound)"
