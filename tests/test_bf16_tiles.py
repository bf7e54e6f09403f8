"""The bf16 kernels' register tiles (csrc/kernels/avx512bf16.cpp: "dpbf16" vdpbf16ps, "fma" fp32 FMAs on exactly
widened bf16 values in vdpbf16ps's sum order under MXCSR DAZ/FTZ, "mixed" FMAs for tiles of >= 4 rows), each run
in-process through the kernel tester's hook with `tile=` (the choice reaches C++ as a tile index; nothing is read from
the environment). Every tile must give, for every requested cell of a NaN-prefilled output (0xffff for bf16 outputs),
exactly the family default's bits (every activation, fp32 and bf16 outputs), the scalar twin's within the bound of
tests/test_microkernels.py (bit for bit when linear), and leave every other cell untouched; also on operands whose
products and partial sums are subnormal (which vdpbf16ps flushes to zero: so do the FMA tiles)."""
from __future__ import annotations

import importlib.util
import pathlib
import zlib

import numpy as np
import pytest

core = pytest.importorskip("aefast._core")

_spec = importlib.util.spec_from_file_location("_microkernels", pathlib.Path(__file__).with_name("test_microkernels.py"))
mk = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(mk)


def bf16_tile_params():
    """Every tile of every bf16 family with a choice (usable here, else skipped by name)."""
    params = []
    for kernel in core.kernel_names("bf16"):
        names = core.tile_names("bf16", kernel)
        if len(names) < 2:
            continue
        problem = core.kernel_problem("bf16", kernel)
        marks = [pytest.mark.skip(reason=problem)] if problem else []
        params += [pytest.param(kernel, tile, marks=marks, id=f"bf16-{kernel}-{tile}") for tile in names]
    return params


# Rows around the 4-row switch of "mixed" and the 8-row main tile (1, 3, 4, 5, 7, 8, 9, 15, 16, 17, 25); columns
# around the 16-column panel, the 2-panel main tile and the 8-panel group; K around the 2-element pair.
ROWS = (1, 3, 4, 5, 7, 8, 9, 15, 16, 17, 25)
COLS = (1, 15, 16, 17, 31, 32, 33, 127, 129)
KS = (1, 2, 3, 37)


@pytest.mark.parametrize("kernel, tile", bf16_tile_params())
@pytest.mark.parametrize("c_bf16", [False, True])
def test_every_bf16_tile_through_its_edges_equals_the_default_tile_and_the_twin(kernel, tile, c_bf16):
    default = core.tile_names("bf16", kernel)[0]
    rng = np.random.default_rng(zlib.crc32(f"bf16/{kernel}/{tile}/{c_bf16}".encode()))
    count = 0
    for m in ROWS:
        for n in COLS:
            for k in KS:
                panels = (n + 15) // 16
                lda = -(-k // 2) * 2 + 1   # odd stride past the pair padding
                for rows, panel_range in (((0, m), (0, panels)), ((min(1, m - 1), m), (min(1, panels - 1), panels))):
                    case = mk.Case(rng, "bf16", "bf16", "bf16", k, n, m, lda)
                    activation = mk.ACTIVATIONS[count % len(mk.ACTIVATIONS)]
                    kw = dict(rows=rows, panels=panel_range, ldc=n + 3, activation=activation, c_bf16=c_bf16,
                              clip=bool(count // len(mk.ACTIVATIONS) % 2))
                    count += 1
                    got = case.run(kernel, tile=tile, **kw)
                    label = f"bf16/{kernel}/{tile} M={m} N={n} K={k} {kw}"
                    view = np.uint16 if c_bf16 else np.uint32
                    np.testing.assert_array_equal(got.view(view), case.run(kernel, tile=default, **kw).view(view),
                                                  err_msg=label)
                    twin = case.run("scalar", **kw)
                    mask = mk.requested_mask(got.shape, rows, panel_range, n)
                    mk.check_against_twin(case, got, twin, mask, activation, c_bf16, label)


def to_bits(x):
    u = np.asarray(x, np.float32).view(np.uint32)
    return ((u + 0x7FFF + ((u >> 16) & 1)) >> 16).astype(np.uint16)


@pytest.mark.parametrize("kernel, tile", bf16_tile_params())
def test_tiles_agree_on_subnormal_operands_products_and_sums(kernel, tile):
    """Operands from 1e-45 to 1: bf16 subnormals, products and partial sums below FLT_MIN; vdpbf16ps treats subnormal
    operands as zero and flushes subnormal results, and the FMA tiles do the same (seen failing without DAZ/FTZ)."""
    default = core.tile_names("bf16", kernel)[0]
    rng = np.random.default_rng(zlib.crc32(f"subnormal/{tile}".encode()))
    for trial in range(60):
        k, n, m = int(rng.integers(1, 60)), int(rng.integers(1, 70)), int(rng.integers(1, 20))
        tiny = np.where(rng.random((k, n)) < 0.5, 1.0, 1e-30)
        w = to_bits(rng.standard_normal((k, n)) * 10.0 ** rng.uniform(-45, 0) * tiny)
        a = np.zeros((m, k + k % 2 + 1), np.uint16)
        a[:, :k] = to_bits(rng.standard_normal((m, k)) * 10.0 ** rng.uniform(-45, 0))
        bias = (rng.standard_normal(n) * 10.0 ** rng.uniform(-45, 0) * (trial % 2)).astype(np.float32)
        kw = dict(activation=mk.ACTIVATIONS[trial % 3], input_scale=float(rng.uniform(0.1, 2)), c_bf16=bool(trial % 4 < 2))
        got = core._test_kernel(kernel, "bf16", w, bias, a, tile=tile, **kw)
        ref = core._test_kernel(kernel, "bf16", w, bias, a, tile=default, **kw)
        view = np.uint16 if kw["c_bf16"] else np.uint32
        np.testing.assert_array_equal(got.view(view), ref.view(view), err_msg=f"{tile} vs {default} {k}x{n} m={m} {kw}")
