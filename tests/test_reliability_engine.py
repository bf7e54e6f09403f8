"""Issue 7 gaps on the engine side: zero-cost views of absurd size, broadcast (zero-stride) inputs, and Ctrl-C
arriving while calls run."""
import _thread
import json
import subprocess
import sys
import textwrap
import threading
import time
import tracemalloc

import numpy as np
import pytest

import aefast
from aefast.engine import inputs as _inputs
from aefast.engine.reference import random_weights
from aefast.engine import available_backends

BACKENDS = sorted({b for b, _ in available_backends()})
SMALL_PEAK = 16 * 2**20


@pytest.fixture(scope="module")
def engine():
    return aefast.load(random_weights((784, 20, 6, 20, 784), seed=7), backend="numba")


# Run in a child process with a timeout: before the size check existed, scanning a float view this size for NaN
# took hours, and a regression must fail the suite, not hang it.
_ABSURD_IN_CHILD = textwrap.dedent("""
    import json, sys, time, tracemalloc
    import numpy as np
    import aefast
    from aefast.engine.reference import random_weights
    eng = aefast.load(random_weights((784, 20, 6, 20, 784), seed=7), backend="numba")
    view = lambda dtype, width: np.lib.stride_tricks.as_strided(np.zeros(1, dtype), shape=(2**40, width),
                                                               strides=(0, 0))
    cases = [(call, dtype, view(dtype, 784)) for call in ("compress", "reconstruct", "score")
             for dtype in ("int64", "uint8", "float32", "float64")]
    cases += [("decompress", dtype, view(dtype, 6)) for dtype in ("float32", "float64")]
    for call, dtype, x in cases:
        tracemalloc.start()
        t = time.perf_counter()
        try:
            getattr(eng, call)(x)
            kind, message = "ok", ""
        except BaseException as e:
            kind, message = type(e).__name__, str(e)
        seconds, peak = time.perf_counter() - t, tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        print(json.dumps([call, dtype, kind, message, seconds, peak]), flush=True)
""")


@pytest.fixture(scope="module")
def absurd_results():
    proc = subprocess.run([sys.executable, "-c", _ABSURD_IN_CHILD], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    rows = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("[")]
    return {(call, dtype): (kind, message, seconds, peak) for call, dtype, kind, message, seconds, peak in rows}


@pytest.mark.parametrize("call, dtype", [(c, d) for c in ("compress", "reconstruct", "score")
                                         for d in ("int64", "uint8", "float32", "float64")]
                         + [("decompress", "float32"), ("decompress", "float64")])
def test_absurd_zero_stride_batches_fail_fast_without_allocating(absurd_results, call, dtype):
    """2**40 rows of zero stride: a TypeError (int64) or a ValueError saying to pass smaller batches, within
    seconds and with a small peak of traced memory."""
    kind, message, seconds, peak = absurd_results[(call, dtype)]
    if dtype == "int64":
        assert kind == "TypeError" and "dtype int64" in message
    else:
        assert kind == "ValueError" and "pass smaller batches" in message, (kind, message)
    assert seconds < 5 and peak < SMALL_PEAK


def test_batch_limit_is_this_machines_memory_and_is_applied_before_any_scan(engine, monkeypatch):
    assert 2**28 <= _inputs.MAX_BATCH_BYTES <= 2**50
    monkeypatch.setattr(_inputs, "MAX_BATCH_BYTES", 4 * 784 * 10)
    engine.compress(np.zeros((10, 784), np.float32))            # exactly at the limit: accepted
    with pytest.raises(ValueError, match=r"shape \(11, 784\).*pass smaller batches"):
        engine.compress(np.full((11, 784), np.nan, np.float32))  # size is refused before NaN is looked for
    engine.compress(np.zeros((40, 784), np.uint8))               # uint8 stays 1 byte a value
    with pytest.raises(ValueError, match="pass smaller batches"):
        engine.compress(np.zeros((41, 784), np.uint8))


@pytest.mark.parametrize("dtype", ["uint8", "float32"])
def test_broadcast_views_give_the_same_answer_as_real_copies(engine, dtype):
    img = np.random.default_rng(0).random(784)
    img = (img * 255).astype(np.uint8) if dtype == "uint8" else img.astype(np.float32)
    view = np.broadcast_to(img, (33, 784))   # read-only, zero row stride
    np.testing.assert_array_equal(engine.reconstruct(view), engine.reconstruct(np.array(view)))
    np.testing.assert_array_equal(view[5], img)


@pytest.mark.parametrize("backend", BACKENDS)
def test_ctrl_c_during_calls_leaves_the_engine_usable(backend):
    """KeyboardInterrupt lands in the main thread between or after backend calls; the engine (and the C++ thread
    pool) must still give the same answers afterwards."""
    eng = aefast.load(random_weights((784, 256, 32, 256, 784), seed=5), backend=backend)
    x = np.random.default_rng(1).integers(0, 256, (1024, 784), dtype=np.uint8)
    want_small, want_big = eng.reconstruct(x[:7]), eng.reconstruct(x)
    timer = threading.Timer(0.3, _thread.interrupt_main)
    calls = 0
    timer.start()
    try:
        with pytest.raises(KeyboardInterrupt):
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                eng.reconstruct(x)
                calls += 1
    finally:
        timer.cancel()
        timer.join()
    assert calls >= 1
    np.testing.assert_array_equal(eng.reconstruct(x[:7]), want_small)
    np.testing.assert_array_equal(eng.reconstruct(x), want_big)


@pytest.mark.parametrize("backend", BACKENDS)
def test_no_python_level_allocation_survives_a_call(backend):
    """Finer than tests/test_memory.py (RSS < 5 MB over 10000 calls cannot see leaks under ~500 bytes a call):
    traced Python/NumPy memory after 3000 batch-1 calls of each entry point grows by less than 8 bytes a call."""
    eng = aefast.load(random_weights((784, 64, 8, 64, 784), seed=6), backend=backend)
    one = np.random.default_rng(2).integers(0, 256, (1, 784), dtype=np.uint8)
    code = eng.compress(one)
    calls = (lambda: eng.compress(one), lambda: eng.reconstruct(one), lambda: eng.score(one),
             lambda: eng.decompress(code))
    for call in calls * 50:   # warm-up
        call()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for _ in range(750):
            for call in calls:
                call()
        grown = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert grown < 8 * 3000, f"{grown} bytes still allocated after 3000 calls"
