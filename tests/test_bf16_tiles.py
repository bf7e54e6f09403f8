"""The AVX512_BF16 kernel's two tiles (csrc/kernels/avx512bf16.cpp): vdpbf16ps, and fp32 FMAs on exactly widened bf16
values in vdpbf16ps's sum order (chosen on Intel CPUs, whose vdpbf16ps issues at half their FMA rate).
AEFAST_BF16_TILES=fma|dpbf16 pins one for a process; each pinned process must pass the kernel tester's bf16 cases
(tests/test_microkernels.py: every tile edge against the scalar twin, bit for bit for linear outputs, and bit for bit
against the AVX2 kernel) and the bf16 network tests of tests/test_lowp.py (bit-identical across ISAs, threads and
batch sizes), so both tiles give the same bits."""
from __future__ import annotations

import os
import pathlib
import subprocess
import sys

import pytest

core = pytest.importorskip("aefast._core")

TESTS = pathlib.Path(__file__).parent


@pytest.mark.skipif(bool(core.kernel_problem("bf16", "avx512bf16")),
                    reason=f"avx512bf16: {core.kernel_problem('bf16', 'avx512bf16')}")
@pytest.mark.parametrize("tile", ["fma", "dpbf16"])
def test_each_bf16_tile_pinned_passes_the_bf16_kernel_and_network_tests(tile):
    env = dict(os.environ, AEFAST_BF16_TILES=tile)
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                           str(TESTS / "test_microkernels.py"), str(TESTS / "test_lowp.py"), "-k", "bf16"],
                          env=env, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, f"AEFAST_BF16_TILES={tile}:\n{done.stdout[-3000:]}\n{done.stderr[-2000:]}"
    assert " passed" in done.stdout and "failed" not in done.stdout
