"""The machine's limits in the same session: NumPy sgemm (the compute ceiling) and a large copy (memory)."""
from __future__ import annotations

import numpy as np

from aefast.bench.machine import blas_info
from aefast.bench.timing import settle

SGEMM_N = 2048
COPY_MIB = 256


def test_sgemm_ceiling(benchmark):
    rng = np.random.default_rng(0)
    a, b = rng.random((SGEMM_N, SGEMM_N), np.float32), rng.random((SGEMM_N, SGEMM_N), np.float32)
    out = np.empty_like(a)
    benchmark.group = "machine limits"
    benchmark.pedantic(np.matmul, args=(a, b), kwargs={"out": out}, rounds=5, warmup_rounds=1)
    settle()  # OpenBLAS's workers spin ~0.1 s after the product: not into the next test
    benchmark.extra_info.update(best_gflops=2 * SGEMM_N ** 3 / benchmark.stats.stats.min / 1e9,
                                blas=[{k: v for k, v in info.items() if k != "filepath"} for info in blas_info()])
    np.testing.assert_allclose(out[:2, :2], a[:2] @ b[:, :2], rtol=1e-4)


def test_copy_bandwidth(benchmark):
    src = np.ones(COPY_MIB * (1 << 20) // 4, np.float32)
    dst = np.empty_like(src)
    benchmark.group = "machine limits"
    benchmark.pedantic(np.copyto, args=(dst, src), rounds=5, warmup_rounds=1)
    benchmark.extra_info["best_gb_per_s"] = 2 * src.nbytes / benchmark.stats.stats.min / 1e9
    assert dst[-1] == 1
