"""The machine's limits in the same session: NumPy sgemm (the compute ceiling), a large copy (memory), and the
instruction peaks of each arithmetic (aefast._core.peak: fp32 FMA, int8 vpdpbusd, bf16 vdpbf16ps)."""
from __future__ import annotations

import numpy as np
import pytest

from aefast.bench.machine import PEAK_KINDS, blas_info
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


@pytest.mark.parametrize("kind", [k for kinds in PEAK_KINDS.values() for k in kinds])
def test_instruction_peak(benchmark, kind):
    """G multiply-adds per second of one core (the fastest ~2 ms window of 0.2 s), for the ceilings in results.md."""
    core = pytest.importorskip("aefast._core")
    try:
        core.peak(kind, 0.001)
    except ValueError as e:  # this CPU lacks the instructions
        pytest.skip(str(e))
    benchmark.group = "machine limits"
    rates = []
    benchmark.pedantic(lambda: rates.append(core.peak(kind, 0.2)), rounds=3, warmup_rounds=0)
    benchmark.extra_info.update(kind=kind, per_core_gmacs=max(rates))
    assert max(rates) > 0
