"""The AVX-512 fp16-weight kernels (csrc/kernels/avx512.cpp) in both of their tiles, through their edges.

f16 weights run on the "zmm" tile (a 256-bit load and vcvtph2ps zmm per panel and k: 1..6 rows x 4 panels, 7..8 x 2)
or the "ymm" tile (two registers per panel: 1..2 rows x 4, 3..6 x 2, 7..8 x 1; for CPUs whose 512-bit units are two
256-bit halves, Zen 4); `tile=` picks one per call (tile_names('f16', 'avx512'); the engine's choice reaches C++ the
same way, aefast/engine/tiles.py). Each must give, for every requested cell of a NaN-prefilled output,
  * exactly the fp32 kernel's result on the same weights widened to float32 (widening is exact and every tile is
    one FMA chain per output in k order), and the AVX2 fp16 kernel's, bit for bit;
  * the scalar twin's within the bound of tests/test_microkernels.py (its check_against_twin);
and leave every other cell NaN. Driven through the kernel tester's hook `_core._test_kernel` with the existing
kernel names ("avx512", "avx2", "scalar" of compute "f32").
"""
from __future__ import annotations

import importlib.util
import pathlib

import numpy as np
import pytest

core = pytest.importorskip("aefast._core")

_spec = importlib.util.spec_from_file_location("_microkernels", pathlib.Path(__file__).with_name("test_microkernels.py"))
mk = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(mk)

pytestmark = pytest.mark.skipif(bool(core.kernel_problem("f32", "avx512")),
                                reason=f"avx512: {core.kernel_problem('f32', 'avx512')}")

# Every strip height (1..8; 9..15 split in two strips, 16 = two full strips, 17, 25) and panel counts around the
# tile widths (1, 2, 4 panels) and the 4-panel group (63, 64, 65 columns), 7 panels as in a 1000 -> 100 layer.
ROWS = (1, 2, 3, 4, 5, 6, 7, 8, 9, 15, 16, 17, 25)
COLS = (1, 15, 16, 17, 31, 33, 48, 63, 64, 65, 100)
KS = (1, 2, 37)


TILES = core.tile_names("f16", "avx512")


def run_case(rng, x, m, n, k, rows, panels, lda, ldc, activation, clip, tile):
    case = mk.Case(rng, "f32", "float16", x, k, n, m, lda)
    kw = dict(rows=rows, panels=panels, ldc=ldc, activation=activation, clip=clip)
    got = case.run("avx512", tile=tile, **kw)
    label = f"f16/{tile}/{x} M={m} N={n} K={k} rows={rows} panels={panels} lda={lda} ldc={ldc} {activation} clip={clip}"
    widened = core._test_kernel("avx512", "f32", case.w.astype(np.float32), case.bias, case.a,
                                input_scale=case.input_scale, **kw)
    np.testing.assert_array_equal(got.view(np.uint32), widened.view(np.uint32),
                                  err_msg=f"{label}: differs from the fp32 kernel on the widened weights")
    if not core.kernel_problem("f32", "avx2"):
        np.testing.assert_array_equal(got.view(np.uint32), case.run("avx2", **kw).view(np.uint32),
                                      err_msg=f"{label}: differs from the AVX2 fp16 kernel")
    twin = case.run("scalar", **kw)
    mk.check_against_twin(case, got, twin, mk.requested_mask(got.shape, rows, panels, n), activation, False, label)


def layouts(m, n, k):
    """The whole block, and one starting at row 1 and panel 1 (a group that starts mid-layer), odd strides."""
    panels = (n + 15) // 16
    out = [dict(rows=(0, m), panels=(0, panels), lda=k + 1, ldc=n + 3)]
    if m > 1 or panels > 1:
        out.append(dict(rows=(min(1, m - 1), m), panels=(min(1, panels - 1), panels), lda=k + 3, ldc=n + 1))
    return out


@pytest.mark.parametrize("tile", TILES)
@pytest.mark.parametrize("x", ["float32", "uint8"])
def test_tiles_through_row_column_and_k_edges(x, tile):
    rng = np.random.default_rng(21)
    count = 0
    for m in ROWS:
        for n in COLS:
            for k in KS:
                for layout in layouts(m, n, k):
                    activation = mk.ACTIVATIONS[count % len(mk.ACTIVATIONS)]
                    run_case(rng, x, m, n, k, layout["rows"], layout["panels"], layout["lda"], layout["ldc"],
                             activation, bool(count // len(mk.ACTIVATIONS) % 2), tile)
                    count += 1


@pytest.mark.parametrize("tile", TILES)
def test_tiles_at_layer_sizes(tile):
    """The default model's layer shapes (K = 784, 1000, 100) at a few batch sizes, both layouts."""
    rng = np.random.default_rng(22)
    for m, k, n in ((1, 784, 1000), (3, 1000, 100), (8, 100, 1000), (17, 1000, 784)):
        for layout in layouts(m, n, k):
            run_case(rng, "float32", m, n, k, layout["rows"], layout["panels"], layout["lda"], layout["ldc"], "elu",
                     False, tile)


@pytest.mark.parametrize("tile", TILES)
def test_a_rows_result_does_not_depend_on_its_tile(tile):
    """A row's output is the same whichever strip height and tile width its block gives it, and whichever tile."""
    rng = np.random.default_rng(5)
    case = mk.Case(rng, "f32", "float16", "float32", 300, 130, 40, 300)
    whole = case.run("avx512", activation="elu")
    for begin, end in ((0, 1), (3, 5), (3, 11), (7, 22), (0, 40)):
        part = case.run("avx512", activation="elu", rows=(begin, end), tile=tile)
        np.testing.assert_array_equal(part[begin:end].view(np.uint32), whole[begin:end].view(np.uint32),
                                      err_msg=f"rows {begin}..{end}")
