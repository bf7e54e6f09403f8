"""Single-core layer rates of the default model's four layer shapes, as a share of the instruction peak timed in the
same run (docs/performance.md quotes its figures):

    python bench/layer_rates.py [elu|linear]                               int8 (q8) on the kernel the CPU dispatches
    python bench/layer_rates.py elu --compute q8 --kernels avx512vnni,avxvnni,avx2
    python bench/layer_rates.py elu --compute bf16                         bf16 against the vdpbf16ps peak
    python bench/layer_rates.py elu --compute f16 --kernels avx512,avx512-ymm,avx2 --rows 1,16

Each layer runs alone on one thread (its weights stay in that core's L2 between calls), with uint8 input for q8 and
float32 input otherwise, so this is the kernel's own rate with its fused epilogue: no quantization pass between
layers, no thread synchronisation. Several kernels are timed in interleaved rounds (best of --rounds blocks per
kernel), so a busy moment of a shared machine falls on all of them alike.

Kernels (--kernels, comma-separated; each is checked against `Network.kernel` where the network names it):
  q8:   avx512vnni (vpdpbusd zmm), avxvnni (VEX vpdpbusd ymm: Network isa "avx2" on a CPU with AVX-VNNI),
        avx2 (vpmaddwd: isa "avx2" with AVX-VNNI removed through AEFAST_CPU_DISABLE), amx (tdpbusd tiles: isa "amx")
  bf16: avx512bf16 (the built-in tile for this CPU), avx512bf16-fma, avx512bf16-dpbf16, avx512bf16-mixed (that tile
        pinned: the layer's "tile"), avx2, amx (tdpbf16ps tiles: isa "amx")
  f32, f16: avx512, avx2; f16 also avx512-ymm (the ymm tile pinned; "avx512" pins zmm)
A kernel whose CPU features or environment differ from this process's gets its own copy of the extension module,
loaded with that environment (CPU features are read once per loaded module), in this same process.
The share is of the CPU's best instruction of the arithmetic (zmm vpdpbusd for every q8 kernel, vdpbf16ps, zmm FMA
for f32/f16), so kernels of narrower instructions show what they leave on the table; AMX kernels exceed 100% of it."""
import argparse
import importlib.machinery
import importlib.util
import os
import shutil
import tempfile
import time

import numpy as np

import aefast._core as core
from aefast.engine import tiles
from aefast.model.bits import float_to_bf16_bits

SHAPES = [(784, 1000), (1000, 100), (100, 1000), (1000, 784)]
PEAK = {"q8": "int8_vpdpbusd", "bf16": "bf16_vdpbf16ps", "f32": "fp32_fma_zmm", "f16": "fp32_fma_zmm"}
# kernel -> (Network isa, environment of its module copy, the name Network.kernel reports or None, the layer's tile:
# a name, "builtin" (aefast.engine.tiles.builtin_tile) or None for the family default)
KERNELS = {
    "q8": {"avx512vnni": ("avx512", {}, "avx512vnni", None), "avxvnni": ("avx2", {}, "avxvnni", None),
           "avx2": ("avx2", {"AEFAST_CPU_DISABLE": "avx_vnni"}, "avx2", None), "amx": ("amx", {}, "amx", None)},
    "bf16": {"avx512bf16": ("avx512", {}, "avx512bf16", "builtin"),
             "avx512bf16-fma": ("avx512", {}, "avx512bf16", "fma"),
             "avx512bf16-dpbf16": ("avx512", {}, "avx512bf16", "dpbf16"),
             "avx512bf16-mixed": ("avx512", {}, "avx512bf16", "mixed"), "avx2": ("avx2", {}, "avx2", None),
             "amx": ("amx", {}, "amx", None)},
    "f32": {"avx512": ("avx512", {}, None, None), "avx2": ("avx2", {}, None, None)},
    "f16": {"avx512": ("avx512", {}, None, "zmm"), "avx512-ymm": ("avx512", {}, None, "ymm"),
            "avx2": ("avx2", {}, None, None)},
}


def core_with_env(env: dict, cache: dict, tmp: str):
    """The extension module as seen by a process with `env` set: this one if env is empty, else a copy of its file
    loaded under that environment (its CPU features are read on first use, which happens here)."""
    key = tuple(sorted(env.items()))
    if not env:
        return core
    if key not in cache:
        path = os.path.join(tmp, f"copy{len(cache)}_" + os.path.basename(core.__file__))
        shutil.copy(core.__file__, path)
        saved = {name: os.environ.get(name) for name in env}
        os.environ.update(env)
        try:
            # A module name of its own: CPython hands back an already loaded extension module of the same name.
            name = f"aefast_copy{len(cache)}._core"
            loader = importlib.machinery.ExtensionFileLoader(name, path)
            module = importlib.util.module_from_spec(importlib.util.spec_from_file_location(name, path, loader=loader))
            loader.exec_module(module)
            module.isas()  # reads the CPU features now, under env
        finally:
            for name, value in saved.items():
                if value is None:
                    os.environ.pop(name, None)
                else:
                    os.environ[name] = value
        cache[key] = module
    return cache[key]


def layer(rng, compute: str, k: int, n: int, activation: str) -> dict:
    if compute == "q8":
        return dict(weight=rng.integers(-127, 128, (k, n)).astype(np.int8), scale=np.full(n, 1e-3, np.float32),
                    bias=np.zeros(n, np.float32), activation=activation, compute="q8")
    w = (rng.standard_normal((k, n)) / np.sqrt(k)).astype(np.float32)
    out = dict(bias=np.zeros(n, np.float32), activation=activation)
    if compute == "bf16":
        out.update(weight=float_to_bf16_bits(w), compute="bf16")
    else:
        out["weight"] = w.astype(np.float16 if compute == "f16" else np.float32)
    return out


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("activation", nargs="?", default="elu", choices=["elu", "linear"])
    parser.add_argument("--compute", default="q8", choices=sorted(KERNELS))
    parser.add_argument("--kernels", default="", help="comma-separated, from: " +
                        "; ".join(f"{c}: {', '.join(k)}" for c, k in KERNELS.items()) + " (default: the dispatched one)")
    parser.add_argument("--rows", default="1,16,96,256")
    parser.add_argument("--rounds", type=int, default=9, help="timed blocks per kernel and layer (the best counts)")
    parser.add_argument("--block-macs", type=float, default=2e7,
                        help="multiply-adds per timed block (at least one call); smaller blocks find the quiet "
                             "moments of a loaded machine")
    args = parser.parse_args(argv)
    known = KERNELS[args.compute]
    names = [k for k in args.kernels.split(",") if k] or [next(iter(known))]
    unknown = [k for k in names if k not in known]
    if unknown:
        parser.error(f"unknown {args.compute} kernel(s) {', '.join(unknown)}; expected some of: {', '.join(known)}")
    rows_list = [int(r) for r in args.rows.split(",")]
    peak_kind = PEAK[args.compute]
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as tmp:
        modules = {}
        cores = {name: core_with_env(known[name][1], modules, tmp) for name in names}
        print(f"{args.compute} {args.activation}, one thread; share of the one-core {peak_kind} peak timed between "
              f"layers; load average (1 min) {os.getloadavg()[0]:.1f}")
        for rows in rows_list:
            cells, peak = {name: [] for name in names}, 0.0
            for k, n in SHAPES:
                spec = layer(rng, args.compute, k, n, args.activation)
                if args.compute == "q8":
                    x = rng.integers(0, 256, (rows, k), dtype=np.uint8)
                else:
                    x = rng.random((rows, k), dtype=np.float32)
                out = np.empty((rows, n), np.float32)
                calls = {}
                for name in names:
                    isa, _, expected, tile = known[name]
                    if tile == "builtin":
                        family = cores[name].kernel_for(isa, args.compute)
                        tile = tiles.builtin_tile(cores[name], family, args.compute)
                    net = cores[name].Network([spec if tile is None else dict(spec, tile=tile)], isa=isa, threads=1)
                    if expected is not None and net.kernel != expected:
                        raise SystemExit(f"{name}: the network runs kernel {net.kernel!r}, not {expected!r} "
                                         f"(does this CPU have it? isas {cores[name].isas()})")
                    if args.compute == "q8":
                        calls[name] = lambda net=net: net.forward(x, out, 0, 1, False, 1 / 255)
                    else:
                        calls[name] = lambda net=net: net.forward(x, out)
                repeats = max(1, int(args.block_macs / (rows * k * n)))
                peak = max(peak, core.peak(peak_kind, 0.05))
                best = {name: float("inf") for name in names}
                for _ in range(args.rounds):
                    for name in names:
                        start = time.perf_counter()
                        for _ in range(repeats):
                            calls[name]()
                        best[name] = min(best[name], (time.perf_counter() - start) / repeats)
                peak = max(peak, core.peak(peak_kind, 0.05))
                for name in names:
                    cells[name].append(rows * k * n / best[name] / 1e9)
            for name in names:
                text = " | ".join(f"{k}->{n}: {rate:6.1f} G/s {100 * rate / peak:4.0f}%"
                                  for (k, n), rate in zip(SHAPES, cells[name]))
                print(f"rows {rows:4d} {name:11s} | {text} | peak {peak:.0f} G/s")


if __name__ == "__main__":
    main()
