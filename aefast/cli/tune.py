"""`aefast tune [MODEL]`: measure every register tile of the int8, bf16 and fp16 kernels that run on this CPU for
each layer shape of MODEL, print the tables and store the choices in the tile cache (aefast/engine/tiles.py), as a
load with tiles="auto" would."""
from __future__ import annotations

import json

from ..errors import UsageError

# Engine precision -> tile family precision (aefast/engine/tiles.py).
TILE_PRECISION = {"int8": "q8", "bf16": "bf16", "fp16": "f16"}
# The register-only peak loop of `_core.peak` each tile family's main instruction runs against.
PEAK_KIND = {("q8", "avx512vnni"): "int8_vpdpbusd", ("bf16", "avx512bf16"): "bf16_vdpbf16ps",
             ("f16", "avx512"): "fp32_fma_zmm"}


def add_subcommand(sub) -> None:
    """Register `tune` on an argparse subparsers object."""
    from .argtypes import positive_int

    p = sub.add_parser("tune", help="measure the register tiles on this CPU for a model's layers",
                       description="Time every register tile of the int8, bf16 and fp16 kernels that run here (those "
                                   "with a tile choice) on each layer shape of MODEL (default: the shipped model), "
                                   "print G multiply-adds/s per tile and the choice, and write the choices to the tile "
                                   "cache (engines with tiles='auto', the default, read it).")
    p.add_argument("model", nargs="?", help="a model file (default: the shipped model)")
    p.add_argument("--isa", default="auto", help="the ISA level whose kernels to tune (default: auto, the best)")
    p.add_argument("--precision", choices=["all", *TILE_PRECISION], default="all",
                   help="the engine precision whose tiles to tune (default: all, every one with a tile choice here)")
    p.add_argument("--rounds", type=positive_int, default=None,
                   help="interleaved timing rounds per layer; the fastest call of each tile counts (default: 5)")
    p.add_argument("--json", action="store_true", help="print the measurements as one JSON object")
    p.set_defaults(run=run_tune, parser=p)


def tune(model: str, isa: str = "auto", rounds: int | None = None, precision: str = "all") -> dict:
    """Measure and cache; -> {"cpu", "rows", "cache", "families": [{"precision" (engine precision), "kernel",
    "peak_gmacs" (or None), "layers": [entry, ...]}, ...]} where each entry is a tile cache entry
    (aefast/engine/tiles.py) plus "layer" and "gmacs" {tile: G/s}. Families with one tile are left out."""
    from ..engine import backend, tiles
    from ..interop.load import read_any

    core = backend.core
    if core is None or not hasattr(core, "_time_tiles"):
        raise UsageError(f"the compiled core is unavailable ({backend.core_error}); there are no tiles to tune")
    if precision != "all" and precision not in TILE_PRECISION:
        raise UsageError(f"precision is {precision!r}; expected 'all' or one of {', '.join(TILE_PRECISION)}")
    try:
        isa = backend.resolve_isa(isa)
    except ValueError as e:
        raise UsageError(str(e)) from None
    weights = read_any(model)
    shapes = [tuple(int(v) for v in k.shape) for k in weights.kernels]
    families = []
    for engine_precision, tile_precision in TILE_PRECISION.items():
        if precision not in ("all", engine_precision):
            continue
        try:
            kernel = core.kernel_for(isa, tile_precision)
        except ValueError as e:
            raise UsageError(str(e)) from None
        if len(core.tile_names(tile_precision, kernel)) < 2:
            continue
        entries = tiles.calibrate(core, kernel, list(dict.fromkeys(shapes)), force=True,
                                  rounds=rounds or tiles.CALIBRATION_ROUNDS, precision=tile_precision)
        by_shape = {(e["k"], e["n"]): e for e in entries}
        peak = None
        if (tile_precision, kernel) in PEAK_KIND:
            try:
                peak = float(core.peak(PEAK_KIND[tile_precision, kernel], 0.2))
            except (ValueError, AttributeError):   # no such loop here, or an older core
                peak = None
        layers = []
        for i, shape in enumerate(shapes):
            e = dict(by_shape[shape], layer=i)
            e["gmacs"] = {t: e["rows"] * e["k"] * e["n"] / s / 1e9 for t, s in e["seconds"].items()}
            layers.append(e)
        families.append({"precision": engine_precision, "kernel": kernel, "peak_gmacs": peak, "layers": layers})
    cpu = tiles.cpu_key(core)
    return {"cpu": cpu, "rows": tiles.CALIBRATION_ROWS, "cache": str(tiles.cache_path(cpu)), "families": families}


def run_tune(args) -> int:
    from ..engine import DEFAULT_MODEL_PATH
    from .info import check_model_file

    model = args.model or str(DEFAULT_MODEL_PATH)
    check_model_file(model)
    result = tune(model, args.isa, args.rounds, args.precision)
    if args.json:
        print(json.dumps(result, indent=2, sort_keys=True))
        return 0
    cpu = result["cpu"]
    print(f"CPU {cpu['vendor']} family {cpu['family']} model {cpu['model']} ({' '.join(cpu['features'])})")
    if not result["families"]:
        print(f"no kernel with a tile choice runs here for precision {args.precision} (isa {args.isa}); "
              "nothing to tune")
        return 0
    for family in result["families"]:
        print_family(family, result["rows"])
    print(f"(* = chosen: the fastest; written to {result['cache']})")
    return 0


def print_family(family: dict, rows: int) -> None:
    """One family's table: a row per tile, a column per layer, G multiply-adds/s (and share of the peak)."""
    peak, layers = family["peak_gmacs"], family["layers"]
    print(f"{family['precision']} kernel {family['kernel']}: G multiply-adds/s per tile, {rows} rows, one thread"
          + (f"; (share of the one-core {PEAK_KIND_LABEL.get(family['precision'], 'peak')} peak, {peak:.0f} G/s)"
             if peak else ""))
    heads = [f"{e['layer']}: {e['k']}x{e['n']}" for e in layers]
    width = max(14, *(len(h) for h in heads))
    print("tile   " + "".join(f"{h:>{width}}" for h in heads))
    for tile in layers[0]["tiles"]:
        cells = []
        for e in layers:
            g = e["gmacs"][tile]
            mark = "*" if e["choice"] == tile else " "
            cells.append((f"{g:.0f} ({100 * g / peak:.0f}%)" if peak else f"{g:.0f}") + mark)
        print(f"{tile:7s}" + "".join(f"{c:>{width}}" for c in cells))
    print("choice " + "".join(f"{e['choice']:>{width - 1}} " for e in layers))


PEAK_KIND_LABEL = {"int8": "vpdpbusd zmm", "bf16": "vdpbf16ps zmm", "fp16": "fp32 FMA zmm"}
