"""aefast._core.Network against a float64 NumPy reference, for every ISA this CPU can run.

Every fast path (AVX2 6x16 tiles, the 1..5-row wide tiles, AVX-512 8x32 tiles and 1..7-row
strips, the threaded row-block and panel-split modes) has the plain scalar twin next to it in
the same parametrization; the SIMD ISAs must also agree with each other bit for bit.
"""
from __future__ import annotations

import threading

import numpy as np
import pytest

core = pytest.importorskip("aefast._core")

ISAS = core.isas()  # usable here, best first
# Every ISA level the build knows; one this CPU cannot run is skipped with the features it lacks (the -ra summary
# lists them, e.g. "avx512: CPU lacks avx512bw"), so the report says what ran and what did not.
ALL_ISAS = [pytest.param(isa, marks=[pytest.mark.skip(reason=p)] if (p := core.isa_problem(isa)) else [])
            for isa in core.known_isas()]
# float32 accumulation over K <= 300 terms of O(1) values: observed errors are ~1e-6;
# a wrong element, tile or epilogue gives errors of order 0.1.
F32_ATOL = 3e-5
F32_RTOL = 3e-5
BATCHES = (1, 2, 3, 5, 7, 16, 17, 255, 1000, 1025)
# (in, out): widths below, at, above and off the 8/16-column panel and 6-row tile sizes.
SHAPES = ((1, 1), (3, 17), (16, 16), (33, 47), (8, 5))
ACTIVATIONS = ("linear", "elu", "sigmoid")


def make_layer(rng, n_in, n_out, weight_dtype="float32", activation="elu"):
    """A layer dict as _core.Network takes it, weights ~ N(0, 1/n_in)."""
    w = rng.standard_normal((n_in, n_out)) / np.sqrt(n_in)
    layer = {"bias": (0.3 * rng.standard_normal(n_out)).astype(np.float32), "activation": activation}
    if weight_dtype == "int8":
        scale = np.abs(w).max(axis=0) / 127 + 1e-3
        layer["weight"] = np.clip(np.round(w / scale), -127, 127).astype(np.int8)
        layer["scale"] = scale.astype(np.float32)
    else:
        layer["weight"] = w.astype(weight_dtype)
    return layer


def reference(layers, x, clip=False, input_scale=1.0):
    """The chain in float64 from the exact stored weights (int8 times its scale)."""
    h = x.astype(np.float64) * input_scale
    for i, layer in enumerate(layers):
        w = layer["weight"].astype(np.float64)
        if "scale" in layer:
            w = w * layer["scale"].astype(np.float64)
        h = h @ w + layer["bias"].astype(np.float64)
        if layer["activation"] == "elu":
            h = np.where(h > 0, h, np.expm1(np.minimum(h, 0)))
        elif layer["activation"] == "sigmoid":
            h = 1 / (1 + np.exp(-h))
    return np.clip(h, 0, 1) if clip else h


def make_input(rng, rows, width, dtype):
    if dtype == "uint8":
        return rng.integers(0, 256, (rows, width), dtype=np.uint8)
    return rng.standard_normal((rows, width)).astype(np.float32)


def run(net, x, begin=0, end=-1, **kwargs):
    """forward() into a NaN-filled output, so unwritten elements show up."""
    width = net.layer_sizes[end if end != -1 else len(net.layer_sizes) - 1]
    out = np.full((x.shape[0], width), np.nan, np.float32)
    net.forward(x, out, begin, end, **kwargs)
    return out


def assert_close(actual, expected):
    assert actual.dtype == np.float32
    assert not np.isnan(actual).any(), "output has NaN (unwritten or bad arithmetic)"
    np.testing.assert_allclose(actual, expected, rtol=F32_RTOL, atol=F32_ATOL)


@pytest.mark.parametrize("isa", ALL_ISAS)
@pytest.mark.parametrize("weight_dtype", ["float32", "float16", "int8"])
@pytest.mark.parametrize("x_dtype", ["float32", "uint8"])
@pytest.mark.parametrize("activation", ACTIVATIONS)
@pytest.mark.parametrize("clip", [False, True])
def test_one_layer_matches_float64_reference(isa, weight_dtype, x_dtype, activation, clip):
    rng = np.random.default_rng(1)
    input_scale = 1 / 255 if x_dtype == "uint8" else 0.7
    for n_in, n_out in SHAPES:
        layers = [make_layer(rng, n_in, n_out, weight_dtype, activation)]
        net = core.Network(layers, isa=isa, threads=1)
        assert net.isa == isa and net.layer_sizes == [n_in, n_out]
        x = make_input(rng, max(BATCHES), n_in, x_dtype)
        expected = reference(layers, x, clip, input_scale)
        for rows in BATCHES:
            out = run(net, x[:rows], clip=clip, input_scale=input_scale)
            assert_close(out, expected[:rows])


@pytest.mark.parametrize("isa", ALL_ISAS)
@pytest.mark.parametrize("weight_dtype", ["float32", "float16", "int8"])
def test_chain_slices_match_reference(isa, weight_dtype):
    rng = np.random.default_rng(2)
    sizes = [29, 40, 5, 33, 17]
    activations = ["elu", "linear", "elu", "sigmoid"]
    layers = [make_layer(rng, a, b, weight_dtype, act) for a, b, act in zip(sizes[:-1], sizes[1:], activations)]
    net = core.Network(layers, isa=isa, threads=2)
    assert net.layer_sizes == sizes
    for begin in range(4):
        for end in range(begin + 1, 5):
            for x_dtype in ("float32", "uint8"):
                x = make_input(rng, 23, sizes[begin], x_dtype)
                scale = 1 / 255 if x_dtype == "uint8" else 1.0
                out = run(net, x, begin, end, clip=True, input_scale=scale)
                assert_close(out, reference(layers[begin:end], x, True, scale))
    assert_close(run(net, make_input(rng, 4, 29, "float32")[:0], 0, -1), np.zeros((0, 17)))


@pytest.mark.parametrize("isa", ALL_ISAS)
def test_empty_batch_leaves_nothing_to_do(isa):
    net = core.Network([make_layer(np.random.default_rng(3), 4, 6)], isa=isa)
    out = np.empty((0, 6), np.float32)
    net.forward(np.empty((0, 4), np.float32), out)
    net.forward(np.empty((0, 4), np.uint8), out)


def wide_net(isa, threads, weight_dtype="float32"):
    """Wide enough that threads > 1 really splits work (panel-split for few rows, row blocks for many)."""
    rng = np.random.default_rng(4)
    sizes = [300, 410, 37, 300]
    layers = [make_layer(rng, a, b, weight_dtype) for a, b in zip(sizes[:-1], sizes[1:])]
    return core.Network(layers, isa=isa, threads=threads), layers


@pytest.mark.parametrize("isa", ALL_ISAS)
@pytest.mark.parametrize("weight_dtype", ["float32", "float16", "int8"])
def test_rows_are_bit_identical_across_batch_sizes_and_threads(isa, weight_dtype):
    net1, layers = wide_net(isa, 1, weight_dtype)
    x = make_input(np.random.default_rng(5), 700 if isa == "scalar" else 1025, 300, "float32")
    full = run(net1, x)
    assert_close(full, reference(layers, x))
    np.testing.assert_array_equal(run(net1, x), full)  # threads=1 is deterministic
    for lo, hi in ((0, 1), (5, 7), (6, 12), (3, 20), (100, 700)):
        np.testing.assert_array_equal(run(net1, x[lo:hi]), full[lo:hi])
    for threads in (2, 3):
        net = wide_net(isa, threads, weight_dtype)[0]
        assert net.threads == threads
        for rows in (1, 2, 7, 100, 700):
            np.testing.assert_array_equal(run(net, x[:rows]), full[:rows])


@pytest.mark.parametrize("threads", [2, 4])
def test_thread_pool_many_short_jobs_and_wakeups_from_sleep(threads):
    """Back-to-back pool jobs (workers still spinning) and jobs after the workers went to sleep
    (pauses longer than the pool's spin time) all give the threads=1 answer, bit for bit."""
    import time

    net, _ = wide_net(ISAS[0], threads)
    x = make_input(np.random.default_rng(10), 16, 300, "float32")
    want = run(wide_net(ISAS[0], 1)[0], x)
    for call in range(300):
        if call % 50 == 49:
            time.sleep(0.003)  # > the 200 us spin: the next job must wake sleeping workers
        np.testing.assert_array_equal(run(net, x[: 2 + call % 15]), want[: 2 + call % 15])


def test_threads_zero_means_the_cpus_in_the_affinity_mask():
    import os

    net = core.Network([make_layer(np.random.default_rng(6), 3, 3)], threads=0)
    assert net.threads == min(len(os.sched_getaffinity(0)), core.MAX_THREADS)


@pytest.mark.parametrize("isa", ALL_ISAS)
def test_concurrent_forward_calls_equal_serial_answers(isa):
    net, _ = wide_net(isa, 2)
    rng = np.random.default_rng(7)
    inputs = [make_input(rng, rows, 300, "float32") for rows in (1, 3, 16, 200, 1, 5, 250, 17)]
    serial = [run(net, x) for x in inputs]
    results = [None] * len(inputs)
    start = threading.Barrier(len(inputs))

    def call(i):
        start.wait()
        for _ in range(3):
            out = run(net, inputs[i])
            if results[i] is None or np.array_equal(results[i], serial[i]):
                results[i] = out

    workers = [threading.Thread(target=call, args=(i,)) for i in range(len(inputs))]
    for t in workers:
        t.start()
    for t in workers:
        t.join()
    for got, want in zip(results, serial):
        np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("isa", ALL_ISAS)
def test_nbytes_counts_packed_weights_scales_and_biases(isa):
    rng = np.random.default_rng(8)
    net = core.Network([make_layer(rng, 10, 20, "int8"), make_layer(rng, 20, 16, "float16")], isa=isa)
    # 20 outputs pad to 2 panels of 16: 10*32 int8 + 32 scales + 32 biases; 16 outputs: 20*16 halves + 16 + 16.
    assert net.nbytes == 10 * 32 + 4 * 64 + 20 * 16 * 2 + 4 * 32


# Register-tile edges. AVX-512: 8-row strips (the last 9..15 rows as two strips of 4..8), 1..7-row
# strips 2 or 4 panels wide, 16-column panels (one zmm, or two ymm for f16 weights), groups of 4
# panels; AVX2: 6-row tiles. Batches and widths sit on, below and above each of those sizes, and
# every output starts as NaN with a guard row after it.
SIMD_ISAS = [isa for isa in ISAS if isa != "scalar"]
TILE_BATCHES = (1, 2, 3, 4, 5, 6, 7, 8, 9, 15, 16, 17, 31, 33)
TILE_WIDTHS = (1, 15, 16, 17, 31, 32, 33, 100, 1000)


def forward_guarded(net, x, width, **kwargs):
    """forward() into a NaN-filled output followed by one NaN guard row; returns (out, guard)."""
    buf = np.full((x.shape[0] + 1, width), np.nan, np.float32)
    net.forward(x, buf[: x.shape[0]], **kwargs)
    return buf[: x.shape[0]], buf[x.shape[0]]


@pytest.mark.parametrize("isa", ALL_ISAS)
@pytest.mark.parametrize("weight_dtype", ["float32", "float16"])
@pytest.mark.parametrize("x_dtype", ["float32", "uint8"])
def test_tile_edges_match_reference_and_write_exactly_their_outputs(isa, weight_dtype, x_dtype):
    rng = np.random.default_rng(11)
    n_in = 23
    input_scale = 1 / 255 if x_dtype == "uint8" else 1.0
    for n_out in TILE_WIDTHS:
        layers = [make_layer(rng, n_in, n_out, weight_dtype, "elu")]
        net = core.Network(layers, isa=isa, threads=1)
        x = make_input(rng, max(TILE_BATCHES), n_in, x_dtype)
        expected = reference(layers, x, False, input_scale)
        whole, _ = forward_guarded(net, x, n_out, input_scale=input_scale)
        for rows in TILE_BATCHES:
            out, guard = forward_guarded(net, x[:rows], n_out, input_scale=input_scale)
            assert_close(out, expected[:rows])
            assert np.isnan(guard).all(), f"width {n_out}, batch {rows}: wrote past the last row"
            # The same rows in a batch of 33 went through other tiles: bit-identical all the same.
            np.testing.assert_array_equal(out, whole[:rows], err_msg=f"width {n_out}, batch {rows}")


@pytest.mark.skipif(len(SIMD_ISAS) < 2, reason="needs two SIMD ISAs on this CPU (e.g. avx512 and avx2)")
@pytest.mark.parametrize("weight_dtype", ["float32", "float16"])
@pytest.mark.parametrize("activation", ["linear", "elu", "sigmoid"])
def test_simd_isas_agree_bit_for_bit(weight_dtype, activation):
    """Both SIMD ISAs accumulate every output as one FMA chain in k order and share the epilogue's
    algorithm (simd_math.h, instantiated per width), so their tiles differ but their results must not."""
    rng = np.random.default_rng(12)
    sizes = [300, 1000, 33, 784]
    layers = [make_layer(rng, a, b, weight_dtype, activation) for a, b in zip(sizes[:-1], sizes[1:])]
    nets = {isa: core.Network(layers, isa=isa, threads=1) for isa in SIMD_ISAS}
    for rows in (1, 3, 7, 8, 9, 17, 100):
        x = make_input(rng, rows, sizes[0], "float32")
        outs = {isa: forward_guarded(net, x, sizes[-1], clip=True)[0] for isa, net in nets.items()}
        assert not np.isnan(outs[SIMD_ISAS[0]]).any()
        for isa in SIMD_ISAS[1:]:
            np.testing.assert_array_equal(outs[isa], outs[SIMD_ISAS[0]], err_msg=f"{isa} vs {SIMD_ISAS[0]}, {rows} rows")
