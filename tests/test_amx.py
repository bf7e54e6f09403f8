"""The AMX int8 (q8) kernel (csrc/kernels/amx.cpp): exact int32 sums, so bit-identical to every other q8 kernel.

Driven directly through the kernel tester over its tile edges (16-row A/C tiles, 16-column panels, 64-k B tiles):
M around 16 and 32 and the 12-row VNNI hand-off, N around a panel, a panel pair and the 8-panel group, K around the
64-byte A tile row (1, 63, 64, 65) and the default model's 784, odd strides, lda = K (the unpadded last quad),
partial row and panel ranges, outputs prefilled with NaN: every cell (requested or not) must equal the scalar twin's
bit for bit with a linear output, and the VNNI kernel's bit for bit with every activation. Then whole Networks and
Engines with isa="amx", and dispatch naming the kernel from the CPU flags. On a CPU (or OS) without AMX every test
here is skipped with the reason (the missing feature, or the OS's refusal of the tile data).
"""
from __future__ import annotations

import os
import subprocess
import sys
import zlib

import numpy as np
import pytest

core = pytest.importorskip("aefast._core")

import aefast  # noqa: E402
from aefast.engine.reference import random_weights  # noqa: E402

PROBLEM = core.kernel_problem("q8", "amx")
needs_amx = pytest.mark.skipif(bool(PROBLEM), reason=PROBLEM or "amx runs here")
ACTIVATIONS = ("linear", "elu", "sigmoid", "relu", "leaky_relu(0.1)", "tanh", "elu(0.5)")


def q8_case(rng, m, n, k, lda):
    w = rng.integers(-127, 128, (k, n), dtype=np.int8)
    bias = (0.3 * rng.standard_normal(n)).astype(np.float32)
    a = rng.integers(0, 256, (m, lda), dtype=np.uint8)
    kw = dict(a_scale=(rng.random(m) * 0.01 + 1e-3).astype(np.float32), a_zero=rng.integers(0, 256, m).astype(np.int32),
              scale=(rng.random(n) * 0.02 + 1e-3).astype(np.float32))
    return w, bias, a, kw


@needs_amx
@pytest.mark.parametrize("tile", core.tile_names("q8", "amx"))
def test_amx_tiles_through_their_edges_equal_the_scalar_twin_bit_for_bit(tile):
    rng = np.random.default_rng(zlib.crc32(f"amx/{tile}".encode()))
    cases = 0
    for m in (1, 11, 12, 15, 16, 17, 31, 32, 33, 47, 65):
        for n in (1, 15, 16, 17, 33, 127, 129):
            for k in (1, 63, 64, 65, 784):
                panels = (n + 15) // 16
                layouts = [(-(-k // 4) * 4 + 1, n + 3, (0, m), (0, panels)),
                           (-(-k // 4) * 4 + 5, n + 1, (min(1, m - 1), m), (min(1, panels - 1), panels))]
                if k % 4:
                    layouts.append((k, n, (0, m), (0, panels)))
                for lda, ldc, rows, pans in layouts:
                    w, bias, a, kw = q8_case(rng, m, n, k, lda)
                    args = dict(rows=rows, panels=pans, ldc=ldc, a_tail_safe=lda >= -(-k // 4) * 4, **kw)
                    label = f"amx/{tile} M={m} N={n} K={k} lda={lda} ldc={ldc} rows={rows} panels={pans}"
                    got = core._test_kernel("amx", "q8", w, bias, a, tile=tile, activation="linear", **args)
                    twin = core._test_kernel("scalar", "q8", w, bias, a, activation="linear", **args)
                    # Whole outputs: the requested cells bit for bit, every other cell still the NaN prefill.
                    np.testing.assert_array_equal(got.view(np.uint32), twin.view(np.uint32), err_msg=label)
                    requested = np.zeros(got.shape, bool)
                    requested[rows[0]:rows[1], pans[0] * 16:min(pans[1] * 16, n)] = True
                    assert np.isnan(got[~requested]).all() and not np.isnan(got[requested]).any(), label
                    activation = ACTIVATIONS[cases % len(ACTIVATIONS)]
                    clip = bool(cases // len(ACTIVATIONS) % 2)
                    cases += 1
                    got = core._test_kernel("amx", "q8", w, bias, a, tile=tile, activation=activation, clip=clip,
                                            **args)
                    vnni = core._test_kernel("avx512vnni", "q8", w, bias, a, activation=activation, clip=clip, **args)
                    np.testing.assert_array_equal(got.view(np.uint32), vnni.view(np.uint32),
                                                  err_msg=f"{label} {activation} clip={clip}")


@needs_amx
def test_amx_sums_stay_exact_at_the_int32_extremes():
    """All 255 x -128 (and 255 x 127) over K = 65536, the largest K the binding accepts: |sum| = 2^31 - 2^23."""
    k, n, m = 65536, 17, 13
    for wv in (-128, 127):
        w = np.full((k, n), wv, np.int8)
        a = np.full((m, k), 255, np.uint8)
        kw = dict(a_scale=np.ones(m, np.float32), a_zero=np.zeros(m, np.int32), scale=np.ones(n, np.float32),
                  rows=(0, m), panels=(0, 2), ldc=n, activation="linear", a_tail_safe=True)
        bias = np.zeros(n, np.float32)
        got = core._test_kernel("amx", "q8", w, bias, a, **kw)
        assert (got == np.float32(255 * wv * k)).all()
        np.testing.assert_array_equal(got, core._test_kernel("scalar", "q8", w, bias, a, **kw))


@needs_amx
@pytest.mark.parametrize("threads", [1, 2])
def test_amx_engines_equal_avx512_engines_bit_for_bit(threads):
    weights = random_weights((784, 100, 20, 100, 784), seed=3)
    rng = np.random.default_rng(4)
    amx = aefast.load(weights, precision="int8", backend="cpp", isa="amx", threads=threads)
    ref = aefast.load(weights, precision="int8", backend="cpp", isa="avx512", threads=threads)
    assert amx.kernel == "amx" and ref.kernel == "avx512vnni"
    for batch in (1, 11, 12, 16, 17, 33, 200):
        x = rng.random((batch, 784), dtype=np.float32)
        np.testing.assert_array_equal(amx.reconstruct(x).view(np.uint32), ref.reconstruct(x).view(np.uint32),
                                      err_msg=f"batch {batch}")
        xu = (x * 255).astype(np.uint8)
        np.testing.assert_array_equal(amx.compress(xu).view(np.uint32), ref.compress(xu).view(np.uint32))


@needs_amx
def test_amx_runs_on_every_thread_pool_worker_and_from_python_threads():
    """Tile config is per thread: every worker loads it per call. Concurrent callers on one Engine, and calls from
    fresh Python threads (which never ran a tile instruction), give the single-thread outputs."""
    import threading
    weights = random_weights((64, 48, 8, 48, 64), seed=5)
    eng = aefast.load(weights, precision="int8", backend="cpp", isa="amx", threads=2)
    x = np.random.default_rng(6).random((300, 64), dtype=np.float32)
    want = aefast.load(weights, precision="int8", backend="cpp", isa="avx512", threads=1).reconstruct(x)
    outs = [None] * 4

    def run(i):
        outs[i] = eng.reconstruct(x)

    workers = [threading.Thread(target=run, args=(i,)) for i in range(4)]
    for t in workers:
        t.start()
    for t in workers:
        t.join()
    for out in outs:
        np.testing.assert_array_equal(out.view(np.uint32), want.view(np.uint32))


def test_the_core_reads_no_environment_for_auto_and_a_bad_amx_switch_is_an_error(monkeypatch):
    """The C++ "auto" never takes amx, whatever AEFAST_AMX says: the switch is read and checked in Python
    (aefast.engine.backend.resolve_isa), which hands "amx" to the core; a value other than 0 / 1 is a ValueError
    naming the variable, not silently "off"."""
    from aefast.engine import backend

    monkeypatch.setenv("AEFAST_AMX", "1")
    layer = {"weight": np.ones((4, 3), np.int8), "scale": np.ones(3, np.float32), "bias": np.zeros(3, np.float32),
             "activation": "linear", "compute": "q8"}
    assert core.Network([layer]).isa == next(i for i in core.isas() if i != "amx")
    assert backend.resolve_isa("auto") == ("amx" if "amx" in core.isas() else "auto")
    assert backend.resolve_isa("avx2") == "avx2"
    monkeypatch.setenv("AEFAST_AMX", "0")
    assert backend.resolve_isa("auto") == "auto"
    monkeypatch.setenv("AEFAST_AMX", "yes")
    with pytest.raises(ValueError, match=r"AEFAST_AMX='yes': expected 1 .* or 0 / unset"):
        aefast.load(random_weights((20, 8, 4, 8, 20), seed=1), precision="int8", backend="cpp")


def test_dispatch_names_the_amx_kernel_from_the_cpu_flags():
    """amx is the first level exactly when the CPU, XCR0 and the OS give AMX-TILE + AMX-INT8 (and AVX-512 VNNI);
    otherwise isa_problem names what is missing. isa="auto" runs it only with AEFAST_AMX=1."""
    f = core.cpu_features()
    has = all(f[name] for name in ("amx_tile", "amx_int8", "avx512vnni", "avx512bw"))
    assert ("amx" in core.isas()) == has
    assert "amx" in core.known_isas()
    if has:
        assert core.isas()[0] == "amx" and core.isa_problem("amx") == ""
        assert core.kernel_for("amx", "q8") == "amx" and core.kernel_for("amx", "f32") == "avx512"
        # isa="auto" takes amx only with AEFAST_AMX=1 (opt-in), in a fresh process (read at each load).
        code = ("import aefast; from aefast.engine.reference import random_weights; "
                "print(aefast.load(random_weights((20, 8, 4, 8, 20), seed=1), precision='int8', backend='cpp').kernel)")
        for flag, want in (("1", "amx"), ("", "avx512vnni")):
            done = subprocess.run([sys.executable, "-c", code], env=dict(os.environ, AEFAST_AMX=flag),
                                  capture_output=True, text=True, timeout=120)
            assert done.returncode == 0, done.stderr
            assert done.stdout.strip().splitlines()[-1] == want, f"AEFAST_AMX={flag!r}"
    else:
        assert core.isa_problem("amx").startswith("amx: CPU lacks ")
        with pytest.raises(ValueError, match="amx"):
            aefast.load(random_weights((20, 8, 4, 8, 20), seed=1), precision="int8", backend="cpp", isa="amx")


def test_without_amx_tile_the_level_is_absent_and_the_problem_names_it():
    env = dict(os.environ, AEFAST_CPU_DISABLE="amx_tile")
    code = ("import aefast._core as c; print(c.isas()); print(c.isa_problem('amx')); "
            "print(c.kernel_problem('q8', 'amx')); print(c.cpu_features()['amx_int8'])")
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    isas, isa_problem, kernel_problem, amx_int8 = done.stdout.strip().splitlines()
    assert "'amx'" not in isas
    assert isa_problem.startswith("amx: CPU lacks ") and "amx_tile" in isa_problem
    assert kernel_problem.startswith("amx: CPU lacks ") and "amx_tile" in kernel_problem
    assert amx_int8 == "False"


def test_amx_problem_is_empty_when_amx_runs_and_explains_a_refusal_otherwise():
    problem = core.amx_problem()
    if core.cpu_features()["amx_tile"]:
        assert problem == ""
    elif problem:
        assert problem.startswith(("the OS refused AMX tile data: ", "XCR0 does not enable"))
        assert problem in core.kernel_problem("q8", "amx")


BF16_PROBLEM = core.kernel_problem("bf16", "amx")
needs_amx_bf16 = pytest.mark.skipif(bool(BF16_PROBLEM), reason=BF16_PROBLEM or "amx bf16 runs here")


def to_bf16_bits(x):
    bits = np.asarray(x, np.float32).view(np.uint32).astype(np.uint64)
    return ((bits + 0x7FFF + ((bits >> 16) & 1)) >> 16).astype(np.uint16)


def bf16_value(bits):
    return (bits.astype(np.uint32) << 16).view(np.float32).astype(np.float64)


@needs_amx_bf16
def test_amx_bf16_through_its_edges_within_the_fp32_sum_bound():
    """tdpbf16ps sums in its own order (not vdpbf16ps's, so not bit-identical to the other bf16 kernels): each
    output is within 2 (K + 2) u S of the float64 dot product of the same bf16 values (products of bf16 values are
    exact in fp32; S = sum |a w| scale + |bias|), and every unrequested cell is still NaN. K around the 32-k B tile."""
    rng = np.random.default_rng(11)
    u = 2.0 ** -24
    for m in (1, 15, 16, 17, 33):
        for n in (1, 15, 16, 17, 33, 129):
            for k in (1, 2, 31, 32, 33, 63, 64, 65, 784):
                lda = -(-k // 2) * 2 + 1
                w = to_bf16_bits(rng.standard_normal((k, n)) / np.sqrt(k))
                a = to_bf16_bits(rng.standard_normal((m, lda)))
                a[:, k:] = 0   # the contract's zero padding
                bias = (0.3 * rng.standard_normal(n)).astype(np.float32)
                panels = (n + 15) // 16
                rows, pans = (min(1, m - 1), m), (min(1, panels - 1), panels)
                got = core._test_kernel("amx", "bf16", w, bias, a, rows=rows, panels=pans, ldc=n + 3,
                                        activation="linear", input_scale=0.7)
                av, wv = bf16_value(a[:, :k]), bf16_value(w)
                want = av @ wv * 0.7 + bias
                bound = 2 * (k + 2) * u * (np.abs(av) @ np.abs(wv) * 0.7 + np.abs(bias))
                requested = np.zeros(got.shape, bool)
                requested[rows[0]:rows[1], pans[0] * 16:min(pans[1] * 16, n)] = True
                label = f"amx bf16 M={m} N={n} K={k}"
                assert np.isnan(got[~requested]).all(), label
                err = np.abs(got[:, :n] - want)[requested[:, :n]]
                assert (err <= bound[requested[:, :n]]).all(), label


@needs_amx_bf16
def test_amx_bf16_engine_is_independent_of_batch_and_threads_and_close_to_float64():
    weights = random_weights((784, 100, 20, 100, 784), seed=12)
    x = np.random.default_rng(13).random((200, 784), dtype=np.float32)
    one = aefast.load(weights, precision="bf16", backend="cpp", isa="amx", threads=1)
    two = aefast.load(weights, precision="bf16", backend="cpp", isa="amx", threads=2)
    assert one.kernel == "amx"
    full = one.reconstruct(x)
    np.testing.assert_array_equal(two.reconstruct(x), full)
    for rows in (1, 3, 16, 17):
        np.testing.assert_array_equal(one.reconstruct(x[:rows]), full[:rows], err_msg=f"rows {rows}")
    ref = aefast.load(weights, precision="fp32", backend="cpp", isa="avx512", threads=1).reconstruct(x)
    other = aefast.load(weights, precision="bf16", backend="cpp", isa="avx512", threads=1).reconstruct(x)
    # The same bf16 rounding of weights and activations, another summation order: as close to fp32 as avx512bf16.
    assert np.abs(full - ref).max() <= 2 * np.abs(other - ref).max() + 1e-6
