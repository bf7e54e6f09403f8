"""No leaks: after warm-up, 10000 calls at batch 1 and 100 at batch 4096 grow RSS by less than 5 MB."""
import gc

import numpy as np
import psutil
import pytest

import aefast
from aefast.engine.reference import random_weights
from aefast.engine import available_backends

RSS_GROWTH_LIMIT = 5 * 2**20


def _rss() -> int:
    gc.collect()
    return psutil.Process().memory_info().rss


@pytest.mark.slow
@pytest.mark.parametrize("backend", sorted({b for b, _ in available_backends()}))
def test_repeated_calls_do_not_grow_rss(backend):
    eng = aefast.load(random_weights((784, 128, 16, 128, 784), seed=4), backend=backend)
    one = np.random.default_rng(0).integers(0, 256, (1, 784), dtype=np.uint8)
    big = np.random.default_rng(1).random((4096, 784), dtype=np.float32)
    for _ in range(200):                 # warm-up: compile caches, allocator pools, thread pools
        eng.compress(one)
    for _ in range(5):
        eng.compress(big)
    base = _rss()
    for _ in range(10000):
        eng.compress(one)
    after_small = _rss()
    for _ in range(100):
        eng.compress(big)
    after_big = _rss()
    assert after_small - base < RSS_GROWTH_LIMIT, f"batch-1 calls grew RSS by {(after_small - base) / 2**20:.1f} MB"
    assert after_big - base < RSS_GROWTH_LIMIT, f"batch-4096 calls grew RSS by {(after_big - base) / 2**20:.1f} MB"
