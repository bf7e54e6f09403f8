"""Which register tile each q8, bf16 and f16-weight layer runs with: measured on the running CPU, cached, or pinned.

A tile family is one precision's kernel on one ISA, `_core.tile_names(precision, kernel)`:
  q8    the int8 kernels, e.g. avx512vnni: 8x32, 4x32, 6x32, ... (rows x columns of the main register tile).
        The int32 sums are exact and the epilogue is shared: outputs are bit-identical across tiles.
  bf16  the bf16 kernels; avx512bf16: dpbf16 (vdpbf16ps throughout), fma (fp32 FMAs on the widened bf16 values, the
        pair's odd product then the even one, each rounded, as vdpbf16ps does), mixed (fma for tiles of >= 4 rows).
        Bit-identical across tiles (tests/test_tiles_f16.py, including bf16 subnormal operands).
  f16   the fp32 kernels on f16 weights; avx512: zmm (vcvtph2ps zmm), ymm (two ymm halves, for CPUs that split
        512-bit operations). Each output is one FMA chain in k order either way: bit-identical across tiles.
Single-tile families (the scalar twins "1x1", the AVX2 kernels "6x8" / "ymm") have nothing to choose. f32 and int8
weights on the f32 compute have no tile choice (Engine.tiles shows "" for those layers). The choice changes speed
only, never results.

The setting (Engine/load argument `tiles`, else the environment variable AEFAST_TILES, else "auto"):
  auto      per layer shape, the fastest tile measured on this CPU: read from the cache, else measured now (the
            family's tiles timed on the layer's (k, n) over CALIBRATION_ROWS rows, fastest of CALIBRATION_ROUNDS
            interleaved rounds; ~0.01-0.2 s per layer shape) and written to the cache.
  builtin   the built-in table for the CPUs measured so far (BUILTIN), else each family's default tile.
  NAME      one tile for every layer of the engine, e.g. "8x32" for an int8 engine, "ymm" for an fp16 one (must be a
            tile of the family that runs: a clear error lists them).
  KEY:NAME[,KEY:NAME...]  a tile per family, KEY a kernel name or a precision, e.g. "avx512vnni:6x32,bf16:fma,f16:ymm";
            an entry for the running kernel's name wins over one for its precision; families not named take the
            built-in choice. Kernel names shared between precisions (avx2, scalar) are best pinned by precision.
The variables AEFAST_F16_TILES=zmm|ymm and AEFAST_BF16_TILES=fma|dpbf16|mixed are deprecated: when neither the
argument nor AEFAST_TILES is given they read as "avx512:VALUE" and "avx512bf16:VALUE" (a DeprecationWarning).
Measurement happens when an Engine is built (at load), not at the first call: a Network's tiles are fixed when it
is built (no state changes under concurrent callers), a first call keeps its usual latency, and the cost is paid
once per CPU and layer shape (later loads read the cache).

Cache: one JSON file per CPU, `<cache>/tiles/<vendor>-<family>-<model>-<hash>.json`, where <cache> is
$AEFAST_CACHE_DIR when set, else platformdirs.user_cache_dir("aefast"), and <hash> covers the CPU's feature flags
(`_core.cpu_features()`, less any AEFAST_CPU_DISABLE) and the file format. Entries are keyed by precision, kernel
family and layer shape (entry_key) and hold every tile's seconds per call and the choice; an entry whose tile list differs from
this build's is measured again. Written atomically (aefast._io); a corrupt, unreadable or unwritable cache file gives
a RuntimeWarning and the measurement is used for this process only: never an error.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import threading
import warnings
from pathlib import Path

TILES_ENV = "AEFAST_TILES"
# Deprecated per-precision pins -> the kernel they pinned (the only family with a choice when they were read).
LEGACY_ENV = {"AEFAST_F16_TILES": "avx512", "AEFAST_BF16_TILES": "avx512bf16"}
PRECISIONS = ("q8", "bf16", "f16")
LABEL = {"q8": "int8", "bf16": "bf16", "f16": "fp16"}   # how errors name a precision
CACHE_DIR_ENV = "AEFAST_CACHE_DIR"   # the project's cache folder variable (aefast/data/sources.py)
MODES = ("auto", "builtin")
CACHE_FORMAT = 1
# The row count a calibration times: Network's row block (csrc/network.h kMaxRowBlock), what each thread runs per
# task at batch >= 192 on 2 threads; smaller batches mostly run the leftover-row tiles, which every tile shares.
CALIBRATION_ROWS = 96
CALIBRATION_ROUNDS = 5

# Built-in choices: (vendor, family or None for any, model or None for any) -> {kernel family: tile}, where a q8
# family is named by its kernel ("avx512vnni") and the others as "bf16:KERNEL" / "f16:KERNEL". Measured CPUs only;
# the most specific key wins; a CPU or family not listed gets the family's default (its first tile: avx512vnni 8x32,
# avxvnni 6x16, avx512bf16 dpbf16, f16 on avx512 zmm).
BUILTIN: dict[tuple[str, int | None, int | None], dict[str, str]] = {
    # Intel Xeon (KVM guest, family 6 model 167, Sapphire-Rapids-class features): 8x32k4 measured fastest on three
    # of the four default-model layer shapes, 15-30% above 8x32; AVX-VNNI 6x16k4, 40-45% above 6x16
    # (docs/engine.md "Tile choice").
    ("GenuineIntel", 6, 167): {"avx512vnni": "8x32k4", "avxvnni": "6x16k4"},
    # Intel: vdpbf16ps issues at one per 2 cycles, half the rate of two zmm FMAs (family 6 model 167: 51-53 against
    # 103-104 G multiply-adds/s per core); the FMA tile ran 4-8 row tiles at 36-50 G/s against 33-39 with vdpbf16ps,
    # 1-2 row tiles at 14-30 against 18-31 (csrc/kernels/avx512bf16.cpp): "mixed".
    ("GenuineIntel", None, None): {"bf16:avx512bf16": "mixed"},
    # AMD Zen 3 / Zen 4 (family 25): the tiles the kernels were written for (double-pumped 512-bit units); there
    # vcvtph2ps zmm stalls the FMAs (batch 1 at 55 GFLOP/s with zmm against 86 with ymm): f16 on ymm.
    ("AuthenticAMD", 25, None): {"avx512vnni": "8x32", "f16:avx512": "ymm"},
    # AMD Zen 5 (family 26): full-width vpdpbusd runs at 497-539 G/s with 8-14 accumulators but 284 with 16; a
    # tile-shaped loop ran R = 6 rows x 32 columns at 335-341 against 128-161 for R = 8 (issue figures): 12.
    ("AuthenticAMD", 26, None): {"avx512vnni": "6x32"},
}

_TILE_NAME = re.compile(r"^[A-Za-z0-9]+$")   # a tile name, e.g. 8x32, 6x32k4, zmm, dpbf16
_KEY_NAME = re.compile(r"^[A-Za-z0-9_]+$")   # a kernel family or precision name in KEY:NAME
_lock = threading.Lock()
_memo: dict[tuple, str] = {}   # (cpu key, kernel, k, n) -> tile chosen by measurement in this process


def _new_lock_in_child() -> None:
    """A forked child gets the lock as the parent's threads had it, perhaps held by a thread it does not have."""
    global _lock
    _lock = threading.Lock()


os.register_at_fork(after_in_child=_new_lock_in_child)


def setting_from(tiles: str | None) -> str:
    """The tile setting in force: `tiles` (an Engine/load argument) if given, else $AEFAST_TILES, else "auto";
    checked for form (ValueError naming where it came from and what is expected)."""
    where = "tiles"
    if tiles is None:
        tiles, where = os.environ.get(TILES_ENV) or _legacy_setting() or "auto", TILES_ENV
    if not isinstance(tiles, str):
        raise TypeError(f"tiles must be a str ('auto', 'builtin', a tile name such as '8x32', or "
                        f"'KERNEL:TILE,...'), got {type(tiles).__name__}")
    if tiles in MODES or _TILE_NAME.match(tiles):
        return tiles
    pinned = _per_kernel(tiles)
    if pinned is None:
        raise ValueError(f"{where} is {tiles!r}; expected 'auto' (measure on this CPU, cached), 'builtin' (the "
                         "built-in table), a tile name such as '8x32' (see aefast._core.tile_names(precision, "
                         "kernel)) or 'KEY:TILE,...' with KEY a kernel or a precision (e.g. "
                         "'avx512vnni:6x32,bf16:fma,f16:ymm')")
    return tiles


def _legacy_setting() -> str | None:
    """AEFAST_F16_TILES / AEFAST_BF16_TILES as a KERNEL:TILE setting (DeprecationWarning), or None when unset."""
    parts = [f"{kernel}:{os.environ[name]}" for name, kernel in LEGACY_ENV.items() if os.environ.get(name)]
    if not parts:
        return None
    setting = ",".join(parts)
    names = [n for n in LEGACY_ENV if os.environ.get(n)]
    warnings.warn(f"aefast: {' and '.join(names)} {'is' if len(names) == 1 else 'are'} deprecated; "
                  f"{'it reads' if len(names) == 1 else 'they read'} as {TILES_ENV}={setting!r}: set that instead",
                  DeprecationWarning, stacklevel=4)
    return setting


def _per_kernel(setting: str) -> dict[str, str] | None:
    """'avx512vnni:6x32,bf16:fma' -> {kernel or precision: tile}; None when that is not the form."""
    out = {}
    for part in setting.split(","):
        kernel, sep, tile = part.strip().partition(":")
        if not sep or not _KEY_NAME.match(kernel) or not _TILE_NAME.match(tile):
            return None
        out[kernel] = tile
    return out


def pinned_tile(setting: str, precision: str, kernel: str) -> str | None:
    """The tile `setting` pins for `precision`'s family `kernel` (unchecked), or None when it pins none."""
    if setting in MODES:
        return None
    if _TILE_NAME.match(setting):
        return setting
    pins = _per_kernel(setting) or {}
    return pins.get(kernel, pins.get(precision))


def family_key(precision: str, kernel: str) -> str:
    """How BUILTIN names a family: the kernel for q8, "PRECISION:KERNEL" otherwise."""
    return kernel if precision == "q8" else f"{precision}:{kernel}"


def cpu_key(core) -> dict:
    """The calibration's CPU identity: vendor, family, model (CPUID) and the feature flags the kernels use."""
    ident = dict(core.cpu_identity())
    ident["features"] = sorted(name for name, on in core.cpu_features().items() if on)
    return ident


def cache_dir() -> Path:
    """$AEFAST_CACHE_DIR/tiles, else platformdirs.user_cache_dir("aefast")/tiles."""
    env = os.environ.get(CACHE_DIR_ENV)
    if env:
        return Path(env).expanduser() / "tiles"
    import platformdirs

    return Path(platformdirs.user_cache_dir("aefast")) / "tiles"


def cache_path(cpu: dict) -> Path:
    digest = hashlib.sha256(json.dumps([CACHE_FORMAT, cpu["features"]]).encode()).hexdigest()[:12]
    vendor = re.sub(r"[^A-Za-z0-9]", "_", cpu["vendor"]) or "unknown"
    return cache_dir() / f"{vendor}-{cpu['family']}-{cpu['model']}-{digest}.json"


def entry_key(kernel: str, k: int, n: int, rows: int = CALIBRATION_ROWS, precision: str = "q8") -> str:
    """The cache entry's name: "<kernel> k=K n=N rows=R" for q8 (the form caches written before the other
    precisions had tiles hold, so they stay valid), "<precision> <kernel> k=K n=N rows=R" for bf16 and f16."""
    return f"{kernel} k={k} n={n} rows={rows}" if precision == "q8" else f"{precision} {kernel} k={k} n={n} rows={rows}"


def builtin_tile(core, kernel: str, precision: str = "q8") -> str:
    """The built-in choice for `precision`'s family `kernel` on this CPU, else the family's default (its first
    tile)."""
    ident = core.cpu_identity()
    vendor, family, model = ident["vendor"], ident["family"], ident["model"]
    names = list(core.tile_names(precision, kernel))
    for key in ((vendor, family, model), (vendor, family, None), (vendor, None, None)):
        tile = BUILTIN.get(key, {}).get(family_key(precision, kernel))
        if tile is not None and tile in names:
            return tile
    return names[0]


def measure(core, kernel: str, k: int, n: int, rows: int = CALIBRATION_ROWS,
            rounds: int = CALIBRATION_ROUNDS, precision: str = "q8") -> dict:
    """A cache entry for one layer shape, measured now: {"precision", "kernel", "k", "n", "rows", "tiles", "seconds",
    "choice"} (seconds per call of each tile; choice the fastest, the first listed on a tie)."""
    seconds = core._time_tiles(precision, kernel, k, n, rows, rounds)
    names = list(core.tile_names(precision, kernel))
    choice = min(names, key=lambda t: seconds[t])
    return {"precision": precision, "kernel": kernel, "k": k, "n": n, "rows": rows, "tiles": names,
            "seconds": {t: float(seconds[t]) for t in names}, "choice": choice}


def read_cache(path: Path, cpu: dict) -> dict:
    """The entries of the cache file at `path` ({} when there is none). A file that cannot be read or is not a
    cache of this CPU gives a RuntimeWarning and {} (it will be measured again and overwritten)."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return {}
    except (OSError, UnicodeDecodeError) as e:
        warnings.warn(f"aefast: tile cache {path} is unreadable ({e}); measuring tiles again", RuntimeWarning,
                      stacklevel=3)
        return {}
    try:
        data = json.loads(text)
        if not isinstance(data, dict) or data.get("format") != CACHE_FORMAT or data.get("cpu") != cpu:
            raise ValueError("not a tile cache of this CPU and format")
        entries = data["entries"]
        if not isinstance(entries, dict) or not all(_valid_entry(e) for e in entries.values()):
            raise ValueError("malformed entries")
        return entries
    except (ValueError, KeyError, TypeError) as e:
        warnings.warn(f"aefast: tile cache {path} is corrupt ({e}); measuring tiles again and rewriting it",
                      RuntimeWarning, stacklevel=3)
        return {}


def _valid_entry(e) -> bool:
    return (isinstance(e, dict) and isinstance(e.get("tiles"), list) and isinstance(e.get("choice"), str)
            and e["choice"] in e["tiles"] and isinstance(e.get("seconds"), dict))


def write_cache(path: Path, cpu: dict, entries: dict) -> bool:
    """Writes the cache file atomically (a reader sees the old file or the new one); a failure (read-only or full
    disk, a folder in the way) gives a RuntimeWarning and False."""
    from .._io import write_text_atomic

    text = json.dumps({"format": CACHE_FORMAT, "cpu": cpu, "entries": entries}, indent=1, sort_keys=True)
    try:
        write_text_atomic(path, text + "\n")
        return True
    except OSError as e:
        warnings.warn(f"aefast: could not write the tile cache {path} ({e}); the measured tiles hold for this "
                      "process only", RuntimeWarning, stacklevel=3)
        return False


def calibrate(core, kernel: str, shapes: list[tuple[int, int]], *, force: bool = False,
              rounds: int = CALIBRATION_ROUNDS, precision: str = "q8") -> list[dict]:
    """Cache entries for `precision`'s family `kernel` on each (k, n) of `shapes`: from the cache, or measured now
    (all of them when `force`, as `aefast tune` does) and written back. Never raises for cache trouble (warnings)."""
    cpu = cpu_key(core)
    path = cache_path(cpu)
    names = list(core.tile_names(precision, kernel))
    with _lock:
        entries = read_cache(path, cpu)
        out, changed = [], False
        for k, n in shapes:
            key = entry_key(kernel, k, n, precision=precision)
            entry = entries.get(key)
            if force or entry is None or entry.get("tiles") != names:
                entry = entries[key] = measure(core, kernel, k, n, rounds=rounds, precision=precision)
                changed = True
            out.append(entry)
        if changed:
            write_cache(path, cpu, entries)
        for (k, n), entry in zip(shapes, out):
            _memo[(json.dumps(cpu, sort_keys=True), precision, kernel, k, n)] = entry["choice"]
    return out


def choose(core, kernel: str, shapes: list[tuple[int, int]], setting: str, precision: str = "q8") -> list[str]:
    """The tile of each layer (k, n) of `precision`'s family `kernel` under `setting` (from setting_from). A pinned
    tile the family lacks is a ValueError listing the family's tiles."""
    names = list(core.tile_names(precision, kernel))
    pinned = pinned_tile(setting, precision, kernel)
    if pinned is not None:
        if pinned not in names:
            raise ValueError(f"tile {pinned!r} is not a tile of the {kernel} {LABEL[precision]} kernel that runs "
                             f"here; expected one of: {', '.join(names)}")
        return [pinned] * len(shapes)
    if setting != "auto" or len(names) == 1:
        return [builtin_tile(core, kernel, precision)] * len(shapes)
    cpu = json.dumps(cpu_key(core), sort_keys=True)
    with _lock:
        memo = [_memo.get((cpu, precision, kernel, k, n)) for k, n in shapes]
    if all(memo):
        return memo
    return [entry["choice"] for entry in calibrate(core, kernel, shapes, precision=precision)]
