"""One Engine, many Python threads: 8 threads x 200 calls with mixed batch sizes equal the serial answers."""
import threading

import numpy as np
import pytest

import aefast
from aefast.engine.reference import random_weights
from aefast.engine import available_backends

THREADS = 8
CALLS = 200
BATCHES = [1, 3, 17, 64, 65, 130]


@pytest.mark.parametrize("backend", sorted({b for b, _ in available_backends()}))
@pytest.mark.parametrize("precision", ["fp32", "int8"])
def test_concurrent_calls_equal_serial_calls(backend, precision):
    eng = aefast.load(random_weights((784, 64, 8, 64, 784), seed=9), precision=precision, backend=backend)
    x = np.random.default_rng(0).integers(0, 256, (max(BATCHES), 784), dtype=np.uint8)
    expected = {n: (eng.compress(x[:n]), eng.reconstruct(x[:n])) for n in BATCHES}
    failures = []
    start = threading.Barrier(THREADS)

    def worker(tid: int):
        start.wait()
        for call in range(CALLS):
            n = BATCHES[(tid + call) % len(BATCHES)]
            got = eng.compress(x[:n]) if call % 2 else eng.reconstruct(x[:n])
            want = expected[n][0] if call % 2 else expected[n][1]
            if not np.array_equal(got, want):
                failures.append((tid, call, n))

    workers = [threading.Thread(target=worker, args=(t,)) for t in range(THREADS)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    assert not failures, f"{len(failures)} calls differed from serial answers, first: {failures[:3]}"


def test_default_engine_is_created_once_under_contention(monkeypatch, tmp_path):
    from aefast.engine import api as engine_mod
    path = aefast.save_model(tmp_path / "d.safetensors", random_weights((16, 4, 2, 4, 16), seed=1))
    monkeypatch.setattr(engine_mod, "DEFAULT_MODEL_PATH", path)
    monkeypatch.setattr(engine_mod, "_default", None)
    seen = []
    start = threading.Barrier(THREADS)

    def worker():
        start.wait()
        seen.append(aefast.default_engine())

    workers = [threading.Thread(target=worker) for _ in range(THREADS)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    assert len(seen) == THREADS and all(e is seen[0] for e in seen)
