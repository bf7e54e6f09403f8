"""Every Network implementation (numba, and each cpp ISA once `_core.Network` exists) against the float64 reference.

Sizes straddle the tiles of both backends (numba: MR=6 rows, NR=2 channels, MB=60 rows, NB=128 channels),
outputs are pre-filled with NaN so an unwritten element fails.
"""
import numpy as np
import pytest

from aefast.engine import available_backends
from aefast.engine.precisions import backend_layers
from aefast.engine.reference import layer_by_layer, random_weights, reference_forward

# Every (backend, ISA) pair the engine knows (csrc/dispatch.cpp's ISAs, then numba); one this machine or build
# lacks is skipped with its name, so the report says what ran and what did not.
ALL_BACKEND_ISAS = [("cpp", isa) for isa in ("avx512", "avx2", "scalar")] + [("numba", "numba")]


def _require(backend_isa) -> tuple[str, str]:
    if tuple(backend_isa) not in available_backends():
        pytest.skip(f"{backend_isa[0]} ISA {backend_isa[1]} is not available here (have {available_backends()})")
    return tuple(backend_isa)


FP32_TOL = 1e-4          # max abs error of float32 math vs float64 on these sizes (fp32 chains through 4 layers)
BATCHES = [0, 1, 2, 3, 5, 6, 7, 11, 12, 13, 16, 17, 59, 60, 61, 63, 64, 65, 255, 1025]
WIDTHS = [(7, 1, 3, 7), (784, 129, 2, 127, 784), (40, 128, 130, 40), (5, 256, 5)]


def make_network(backend_isa, layers, threads=0):
    backend, isa = _require(backend_isa)
    if backend == "numba":
        from aefast.engine.numba_backend import Network
        return Network(layers, threads=threads)
    from aefast import _core
    return _core.Network(layers, isa=isa, threads=threads)


BACKENDS = ALL_BACKEND_ISAS
ids = [f"{b}-{i}" for b, i in BACKENDS]


def _weights(sizes, seed=0):
    return random_weights(sizes, encoder_layers=len(sizes) // 2, seed=seed, last_activation="sigmoid")


def _nan_out(n, width):
    return np.full((n, width), np.nan, dtype=np.float32)


@pytest.mark.parametrize("backend_isa", BACKENDS, ids=ids)
@pytest.mark.parametrize("precision", ["fp32", "fp16", "bf16", "int8"])
@pytest.mark.parametrize("sizes", WIDTHS, ids=lambda s: "-".join(map(str, s)))
def test_forward_matches_quantized_reference(backend_isa, precision, sizes):
    """Each layer within its derived bound of the quantized float64 reference given the same input, and the chain
    equal to its single layers (see aefast/engine/reference.py layer_by_layer, tests/test_engine_precision.py)."""
    w = _weights(sizes)
    layers = backend_layers(w, precision)
    net = make_network(backend_isa, layers)
    rng = np.random.default_rng(1)
    x = rng.random((1025, sizes[0]), dtype=np.float32)
    for n in BATCHES:
        out = _nan_out(n, sizes[-1])
        net.forward(x[:n], out)
        steps, worst = layer_by_layer(net, layers, x[:n])
        assert worst <= 1.0, f"N={n}: a layer is {worst:.3g} times its bound away from the reference"
        np.testing.assert_array_equal(out, steps, err_msg=f"N={n}: the chain differs from its single layers")


@pytest.mark.parametrize("backend_isa", BACKENDS, ids=ids)
def test_uint8_input_scale_clip_and_layer_ranges(backend_isa):
    sizes = (784, 129, 17, 129, 784)
    w = _weights(sizes, seed=3)
    w.activations[-1] = "linear"  # so that clip has something to clamp
    net = make_network(backend_isa, backend_layers(w, "fp32"))
    x = np.random.default_rng(2).integers(0, 256, (70, 784), dtype=np.uint8)
    for begin, end in [(0, 4), (0, 2), (2, 4), (1, 3), (3, 4)]:
        src = x if begin == 0 else reference_forward(w, x, 0, begin, input_scale=1 / 255).astype(np.float32)
        scale = 1 / 255 if begin == 0 else 1.0
        for clip in (False, True):
            out = _nan_out(70, sizes[end])
            net.forward(src, out, begin, end, clip, scale)
            ref = reference_forward(w, src, begin, end, clip, scale)
            assert np.abs(out - ref).max() <= FP32_TOL * 10, (begin, end, clip)
            if clip:
                assert out.min() >= 0 and out.max() <= 1


@pytest.mark.parametrize("backend_isa", BACKENDS, ids=ids)
@pytest.mark.parametrize("precision", ["fp32", "fp16", "bf16", "int8"])
def test_rows_do_not_depend_on_batch_size_or_threads(backend_isa, precision):
    sizes = (784, 130, 9, 130, 784)
    layers = backend_layers(_weights(sizes, seed=5), precision)
    x = np.random.default_rng(4).random((300, 784), dtype=np.float32)
    serial = make_network(backend_isa, layers, threads=1)
    full = _nan_out(300, 784)
    serial.forward(x, full)
    for threads in (1, 0):
        net = make_network(backend_isa, layers, threads=threads)
        for n in (1, 3, 6, 7, 60, 61, 64, 65, 129, 300):
            out = _nan_out(n, 784)
            net.forward(x[300 - n:], out)   # the rows land in other tiles than in the full batch
            np.testing.assert_array_equal(out, full[300 - n:], err_msg=f"N={n} threads={threads}")


@pytest.mark.parametrize("backend_isa", BACKENDS, ids=ids)
def test_network_attributes_and_nbytes(backend_isa):
    sizes = (784, 130, 9, 130, 784)
    w = _weights(sizes)
    nb = {p: make_network(backend_isa, backend_layers(w, p)).nbytes for p in ("fp32", "fp16", "int8")}
    net = make_network(backend_isa, backend_layers(w, "fp32"), threads=1)
    assert net.layer_sizes == list(sizes) and net.threads == 1 and isinstance(net.isa, str)
    n_weights = sum(a * b for a, b in zip(sizes, sizes[1:]))
    assert n_weights * 4 <= nb["fp32"] < n_weights * 4 * 1.1
    assert nb["fp32"] > nb["fp16"] > nb["int8"] >= n_weights


def _good_layers():
    return backend_layers(_weights((6, 4, 6)), "fp32")


@pytest.mark.parametrize("backend_isa", BACKENDS, ids=ids)
@pytest.mark.parametrize("mutate, exc, words", [
    (lambda L: L[0].update(weight=L[0]["weight"].astype(np.float64)), TypeError, "weight"),
    (lambda L: L[0].update(weight=np.asfortranarray(L[0]["weight"])), ValueError, "contiguous"),
    (lambda L: L[1].update(weight=L[1]["weight"][:3].copy()), ValueError, "inputs"),
    (lambda L: L[0].update(bias=L[0]["bias"][:2].copy()), ValueError, "bias"),
    (lambda L: L[0].update(activation="gelu"), ValueError, "activation"),
    (lambda L: L[0].update(scale=np.ones(4, np.float32)), ValueError, "scale"),
], ids=["f64-weight", "fortran", "no-chain", "bias-shape", "activation", "scale-without-int8"])
def test_constructor_rejects_bad_layers(backend_isa, mutate, exc, words):
    layers = _good_layers()
    mutate(layers)
    with pytest.raises(exc, match=words):
        make_network(backend_isa, layers)


def test_numba_network_refuses_non_finite_weights():
    # The Engine never passes these (the model file reader refuses them); the numba Network checks anyway.
    layers = _good_layers()
    layers[0]["bias"][0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        make_network(("numba", "numba"), layers)


@pytest.mark.parametrize("backend_isa", BACKENDS, ids=ids)
def test_forward_rejects_bad_arguments(backend_isa):
    net = make_network(backend_isa, _good_layers())
    x = np.zeros((3, 6), np.float32)
    with pytest.raises(ValueError):
        net.forward(x, np.zeros((2, 6), np.float32))                      # rows differ
    with pytest.raises(ValueError):
        net.forward(x, np.zeros((3, 4), np.float32))                      # wrong width for end
    with pytest.raises(TypeError):
        net.forward(x.astype(np.float64), np.zeros((3, 6), np.float32))   # dtype
    with pytest.raises(ValueError):
        net.forward(x, np.zeros((3, 6), np.float32), 1, 1)                # empty layer range
    with pytest.raises(ValueError):
        net.forward(np.zeros((6, 3), np.float32).T, np.zeros((3, 6), np.float32))  # not C-contiguous
    buf = np.zeros((3, 6), np.float32)
    with pytest.raises(ValueError):
        net.forward(buf, buf)                                             # out aliases x


ELU_REL_TOL = 2.4e-7   # 2 float32 ulps: the numba ELU's polynomial expm1 against float64 np.expm1


def test_numba_vector_elu_matches_float64_expm1():
    """The branch-free ELU the numba backend vectorizes, over 32 decades of tiny negatives, [-25, 5], and +-0."""
    from aefast.engine.numba_backend import _activate_rows
    x = np.concatenate([-np.logspace(-30, 2, 20001), np.linspace(-25, 5, 30001), [0.0, -0.0]]).astype(np.float32)
    want = np.where(x > 0, x.astype(np.float64), np.expm1(x.astype(np.float64)))
    got = x[None].copy()
    _activate_rows(got, 0, 1, 0, x.size, (1, np.float32(1.0)), False)   # (ELU's code, alpha)
    rel = np.abs(got[0] - want) / np.maximum(np.abs(want), np.finfo(np.float32).tiny)
    assert rel.max() <= ELU_REL_TOL, f"max relative error {rel.max():.3g} at x={x[rel.argmax()]}"


def test_numba_sigmoid_saturates_instead_of_nan():
    """Pre-activations far beyond exp's range give 0 or 1 (a fastmath 1/(1+inf) once gave NaN), not NaN."""
    from aefast.engine.numba_backend import _activate_rows
    x = np.array([-3e38, -1e4, -255.0, -90.0, -10.0, 0.0, 10.0, 90.0, 255.0, 1e4, 3e38] * 3, np.float32)
    want = 0.5 * (1.0 + np.tanh(0.5 * x.astype(np.float64)))   # the logistic function, overflow-free
    got = x[None].copy()
    _activate_rows(got, 0, 1, 0, x.size, (2, np.float32(1.0)), False)   # (sigmoid's code, alpha unused)
    assert not np.isnan(got).any() and np.abs(got[0] - want).max() <= FP32_TOL
