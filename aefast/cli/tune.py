"""`aefast tune [MODEL]`: measure every int8 register tile on this CPU for each layer shape of MODEL, print the
table and store the choice in the tile cache (aefast/engine/tiles.py), as an int8 load with tiles="auto" would."""
from __future__ import annotations

import json

from ..errors import UsageError

# vpdpbusd zmm: the register-only peak loop of `_core.peak` that the avx512vnni tiles run against.
PEAK_KIND = {"avx512vnni": "int8_vpdpbusd"}


def add_subcommand(sub) -> None:
    """Register `tune` on an argparse subparsers object."""
    from .argtypes import positive_int

    p = sub.add_parser("tune", help="measure the int8 register tiles on this CPU for a model's layers",
                       description="Time every register tile of the int8 kernel that runs here on each layer shape "
                                   "of MODEL (default: the shipped model), print G multiply-adds/s per tile and the "
                                   "choice, and write the choice to the tile cache (int8 engines with tiles='auto', "
                                   "the default, read it).")
    p.add_argument("model", nargs="?", help="a model file (default: the shipped model)")
    p.add_argument("--isa", default="auto", help="the ISA level whose int8 kernel to tune (default: auto, the best)")
    p.add_argument("--rounds", type=positive_int, default=None,
                   help="interleaved timing rounds per layer; the fastest call of each tile counts (default: 5)")
    p.add_argument("--json", action="store_true", help="print the measurements as one JSON object")
    p.set_defaults(run=run_tune, parser=p)


def tune(model: str, isa: str = "auto", rounds: int | None = None) -> dict:
    """Measure and cache; -> {"cpu", "kernel", "rows", "peak_gmacs" (or None), "cache", "layers": [entry, ...]}
    where each entry is a tile cache entry (aefast/engine/tiles.py) plus "layer" and "gmacs" {tile: G/s}."""
    from ..engine import backend, tiles
    from ..interop.load import read_any

    core = backend.core
    if core is None or not hasattr(core, "_time_q8_tiles"):
        raise UsageError(f"the compiled core is unavailable ({backend.core_error}); there are no tiles to tune")
    weights = read_any(model)
    try:
        kernel = core.kernel_for(isa, "q8")
    except ValueError as e:
        raise UsageError(str(e)) from None
    shapes = [tuple(int(v) for v in k.shape) for k in weights.kernels]
    entries = tiles.calibrate(core, kernel, list(dict.fromkeys(shapes)), force=True,
                              rounds=rounds or tiles.CALIBRATION_ROUNDS)
    by_shape = {(e["k"], e["n"]): e for e in entries}
    peak = None
    if kernel in PEAK_KIND:
        try:
            peak = float(core.peak(PEAK_KIND[kernel], 0.2))
        except (ValueError, AttributeError):   # no such loop here, or an older core
            peak = None
    layers = []
    for i, shape in enumerate(shapes):
        e = dict(by_shape[shape], layer=i)
        e["gmacs"] = {t: e["rows"] * e["k"] * e["n"] / s / 1e9 for t, s in e["seconds"].items()}
        layers.append(e)
    cpu = tiles.cpu_key(core)
    return {"cpu": cpu, "kernel": kernel, "rows": tiles.CALIBRATION_ROWS, "peak_gmacs": peak,
            "cache": str(tiles.cache_path(cpu)), "layers": layers}


def run_tune(args) -> int:
    from ..engine import DEFAULT_MODEL_PATH
    from .info import check_model_file

    model = args.model or str(DEFAULT_MODEL_PATH)
    check_model_file(model)
    result = tune(model, args.isa, args.rounds)
    if args.json:
        print(json.dumps(result, indent=2, sort_keys=True))
        return 0
    cpu, peak = result["cpu"], result["peak_gmacs"]
    print(f"CPU {cpu['vendor']} family {cpu['family']} model {cpu['model']} ({' '.join(cpu['features'])})")
    print(f"int8 kernel {result['kernel']}: G multiply-adds/s per tile, {result['rows']} rows, one thread"
          + (f"; (share of the one-core vpdpbusd zmm peak, {peak:.0f} G/s)" if peak else ""))
    layers = result["layers"]
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
    print(f"(* = chosen: the fastest; written to {result['cache']})")
    return 0
