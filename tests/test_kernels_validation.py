"""Every input check of the aefast._core binding: clear errors, nothing computed on bad input."""
from __future__ import annotations


import numpy as np
import pytest

core = pytest.importorskip("aefast._core")


def layer(n_in=4, n_out=3, dtype=np.float32, **overrides):
    d = {"weight": np.ones((n_in, n_out), dtype), "bias": np.zeros(n_out, np.float32), "activation": "elu"}
    if dtype == np.int8:
        d["scale"] = np.ones(n_out, np.float32)
    d.update(overrides)
    return d


def test_isas_lists_scalar_last_and_auto_picks_the_first():
    isas = core.isas()
    assert isas[-1] == "scalar" and len(set(isas)) == len(isas)
    # the C++ "auto" is the first usable level less "amx" (opt-in through the Python engine: docs/engine.md "AMX")
    auto = next(i for i in isas if i != "amx")
    assert core.Network([layer()]).isa == auto
    assert ("amx" in isas) == all(core.cpu_features()[f] for f in ("amx_tile", "amx_int8", "avx512vnni"))
    assert ("avx2" in isas) == all(core.cpu_features()[f] for f in ("avx2", "fma", "f16c"))
    avx512 = ("avx512f", "avx512bw", "avx512dq", "avx512vl", "avx2", "fma", "f16c")
    assert ("avx512" in isas) == all(core.cpu_features()[f] for f in avx512)
    if "avx512" in isas:
        assert isas.index("avx512") < isas.index("avx2"), "best first"


@pytest.mark.parametrize("isa", ["sse9", "AVX2", "", "AVX512", "avx1024"])
def test_unknown_isa_string(isa):
    with pytest.raises(ValueError, match="isa .* not usable on this CPU; expected 'auto' or one of"):
        core.Network([layer()], isa=isa)
    with pytest.raises(ValueError, match="not usable"):
        core.elu(np.zeros(3, np.float32), isa)


@pytest.mark.parametrize(
    "layers, error, message",
    [
        ([], ValueError, "at least one layer"),
        ([[1, 2]], TypeError, r"layers\[0\] must be a dict"),
        ([{"weight": np.ones((2, 2), np.float32), "activation": "elu"}], ValueError, 'missing the key "bias"'),
        ([layer(extra=1)], ValueError, 'unknown key "extra"'),
        ([layer(weight=[[1.0]])], TypeError, "must be a numpy.ndarray"),
        ([layer(weight=np.ones((4, 3), np.float64))], TypeError, "dtype float64, expected float32, float16, int8 or uint16"),
        ([layer(weight=np.ones((4, 3), ">f4"))], TypeError, "expected float32, float16, int8 or uint16"),
        ([layer(weight=np.ones(12, np.float32))], ValueError, r"must be 2-D, got shape \(12,\)"),
        ([layer(weight=np.ones((3, 4), np.float32).T)], ValueError, "C-contiguous"),
        ([layer(weight=np.ones((0, 3), np.float32))], ValueError, "widths must be >= 1"),
        ([layer(bias=np.zeros(4, np.float32))], ValueError, r"bias.*shape \(4,\), expected \(3,\)"),
        ([layer(bias=np.zeros(3, np.float64))], TypeError, "bias.*dtype float64, expected float32"),
        ([layer(activation="gelu")], ValueError, "'gelu', expected 'linear', 'elu', 'sigmoid', 'relu', 'tanh'"),
        ([layer(activation="elu(nan)")], ValueError, "'elu\\(nan\\)': its parameter is not a finite float32"),
        ([layer(activation="leaky_relu(1e40)")], ValueError, "not a finite float32"),
        ([layer(activation="leaky_relu( 0.1)")], ValueError, "not a finite float32"),
        ([layer(activation="elu(0.5x)")], ValueError, "not a finite float32"),
        ([layer(activation="elu()")], ValueError, "expected 'linear'"),
        ([layer(activation=1)], TypeError, "activation.* must be a str"),
        ([layer(4, 3), layer(4, 2)], ValueError, r"layers\[1\].*4 inputs but layers\[0\] has 3 outputs"),
        ([{k: v for k, v in layer(dtype=np.int8).items() if k != "scale"}], ValueError, "int8 weights but no"),
        ([layer(dtype=np.int8, scale=np.ones(2, np.float32))], ValueError, r"scale.*expected \(3,\)"),
        ([layer(scale=np.ones(3, np.float32))], ValueError, "scale is for int8 only"),
    ],
)
def test_bad_layers_are_rejected(layers, error, message):
    with pytest.raises(error, match=message):
        core.Network(layers)


def test_bad_thread_count():
    with pytest.raises(ValueError, match="threads must be >= 0"):
        core.Network([layer()], threads=-1)


def test_network_owns_packed_copies_of_the_weights():
    d = layer(2, 2)
    net = core.Network([d], threads=1)
    x = np.ones((1, 2), np.float32)
    before = np.empty((1, 2), np.float32)
    net.forward(x, before)
    d["weight"][:] = 100  # must not affect the packed copy
    del d
    after = np.empty((1, 2), np.float32)
    net.forward(x, after)
    np.testing.assert_array_equal(before, after)


@pytest.fixture(scope="module")
def net():
    return core.Network([layer(4, 3), layer(3, 5)], threads=1)


@pytest.mark.parametrize(
    "x, out, kwargs, error, message",
    [
        (np.ones((2, 4), np.float64), np.empty((2, 5), np.float32), {}, TypeError, "x has dtype float64, expected float32 or uint8"),
        (np.ones((2, 4), np.int8), np.empty((2, 5), np.float32), {}, TypeError, "x has dtype int8"),
        (np.ones((2, 4), np.float32), np.empty((2, 5), np.float64), {}, TypeError, "out has dtype float64, expected float32"),
        ([[1.0] * 4], np.empty((1, 5), np.float32), {}, TypeError, "x must be a numpy.ndarray"),
        (np.ones(4, np.float32), np.empty((1, 5), np.float32), {}, ValueError, "x must be 2-D"),
        (np.ones((4, 2), np.float32).T, np.empty((2, 5), np.float32), {}, ValueError, "x must be C-contiguous"),
        (np.ones((2, 4), np.float32), np.empty((5, 2), np.float32).T, {}, ValueError, "out must be C-contiguous"),
        (np.ones((2, 3), np.float32), np.empty((2, 5), np.float32), {}, ValueError, r"x has shape \(2, 3\), expected \(N, 4\)"),
        (np.ones((2, 4), np.float32), np.empty((3, 5), np.float32), {}, ValueError, r"out has shape \(3, 5\), expected \(2, 5\)"),
        (np.ones((2, 4), np.float32), np.empty((2, 3), np.float32), {}, ValueError, r"expected \(2, 5\) for end=2"),
        (np.ones((2, 3), np.float32), np.empty((2, 5), np.float32), {"begin": 1}, None, None),
        (np.ones((2, 4), np.float32), np.empty((2, 3), np.float32), {"end": 1}, None, None),
        (np.ones((2, 4), np.float32), np.empty((2, 5), np.float32), {"begin": 1, "end": 1}, ValueError, "0 <= begin < end <= 2"),
        (np.ones((2, 4), np.float32), np.empty((2, 5), np.float32), {"end": 3}, ValueError, "got begin=0, end=3"),
        (np.ones((2, 4), np.float32), np.empty((2, 5), np.float32), {"begin": -1}, ValueError, "begin=-1"),
        (np.ones((2, 4), np.float32), np.empty((2, 5), np.float32), {"input_scale": float("nan")}, ValueError, "input_scale must be finite"),
    ],
)
def test_forward_checks(net, x, out, kwargs, error, message):
    if error is None:
        net.forward(x, out, **kwargs)
        assert not np.isnan(out).any()
        return
    with pytest.raises(error, match=message):
        net.forward(x, out, **kwargs)


def test_forward_rejects_read_only_and_aliased_output(net):
    out = np.empty((2, 5), np.float32)
    out.flags.writeable = False
    with pytest.raises(ValueError, match="out must be writeable"):
        net.forward(np.ones((2, 4), np.float32), out)
    square = core.Network([layer(4, 4)], threads=1)
    buffer = np.ones((3, 4), np.float32)
    with pytest.raises(ValueError, match="must not share memory with x"):
        square.forward(buffer, buffer)
    big = np.ones((4, 4), np.float32)
    with pytest.raises(ValueError, match="must not share memory"):
        square.forward(big[:2], big[1:3])


def test_elu_checks():
    with pytest.raises(TypeError, match="x has dtype float64, expected float32"):
        core.elu(np.zeros(3))
    with pytest.raises(ValueError, match="x must be 1-D"):
        core.elu(np.zeros((2, 2), np.float32))
    with pytest.raises(ValueError, match="C-contiguous"):
        core.elu(np.zeros(6, np.float32)[::2])
