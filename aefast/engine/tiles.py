"""Which register tile each int8 (q8) layer runs with: measured on the running CPU, cached, or pinned.

A q8 kernel family (`_core.tile_names("q8", kernel)`, e.g. avx512vnni: 8x32, 4x32, 6x32, ..., named rows x columns
of the main register tile) computes bit-identical outputs with every tile: the int32 sums are exact and the
epilogue is shared. The choice changes speed only, never results (tests/test_tiles.py).

The setting (Engine/load argument `tiles`, else the environment variable AEFAST_TILES, else "auto"):
  auto      per layer shape, the fastest tile measured on this CPU: read from the cache, else measured now (the
            family's tiles timed on the layer's (k, n) over CALIBRATION_ROWS rows, fastest of CALIBRATION_ROUNDS
            interleaved rounds; ~0.01-0.2 s per layer shape) and written to the cache.
  builtin   the built-in table for the CPUs measured so far (BUILTIN), else each family's default tile.
  NAME      one tile for every layer, e.g. "8x32" (must be a tile of the kernel that runs: a clear error lists them).
  KERNEL:NAME[,KERNEL:NAME...]  a tile per kernel family, e.g. "avx512vnni:6x32,avxvnni:6x16"; families not named
            take the built-in choice.
Measurement happens when an Engine is built (at load), not at the first call: a Network's tiles are fixed when it
is built (no state changes under concurrent callers), a first call keeps its usual latency, and the cost is paid
once per CPU and layer shape (later loads read the cache).

Cache: one JSON file per CPU, `<cache>/tiles/<vendor>-<family>-<model>-<hash>.json`, where <cache> is
$AEFAST_CACHE_DIR when set, else platformdirs.user_cache_dir("aefast"), and <hash> covers the CPU's feature flags
(`_core.cpu_features()`, less any AEFAST_CPU_DISABLE) and the file format. Entries are keyed by kernel family and
layer shape and hold every tile's seconds per call and the choice; an entry whose tile list differs from this
build's is measured again. Written atomically (aefast._io); a corrupt, unreadable or unwritable cache file gives a
RuntimeWarning and the measurement is used for this process only: never an error.
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
CACHE_DIR_ENV = "AEFAST_CACHE_DIR"   # the project's cache folder variable (aefast/data/sources.py)
MODES = ("auto", "builtin")
CACHE_FORMAT = 1
# The row count a calibration times: Network's row block (csrc/network.h kMaxRowBlock), what each thread runs per
# task at batch >= 192 on 2 threads; smaller batches mostly run the leftover-row tiles, which every tile shares.
CALIBRATION_ROWS = 96
CALIBRATION_ROUNDS = 5

# Built-in choices: (vendor, family, model or None for any) -> {kernel family: tile}. Measured CPUs only; a CPU or
# family not listed gets the family's default (its first tile: avx512vnni 8x32, avxvnni 6x16).
BUILTIN: dict[tuple[str, int, int | None], dict[str, str]] = {
    # Intel Xeon (KVM guest, family 6 model 167, Sapphire-Rapids-class features): 8x32k4 measured fastest on three
    # of the four default-model layer shapes, 15-30% above 8x32; AVX-VNNI 6x16k4, 40-45% above 6x16
    # (docs/engine.md "Tile choice").
    ("GenuineIntel", 6, 167): {"avx512vnni": "8x32k4", "avxvnni": "6x16k4"},
    # AMD Zen 3 / Zen 4 (family 25): the tiles the kernels were written for (double-pumped 512-bit units).
    ("AuthenticAMD", 25, None): {"avx512vnni": "8x32"},
    # AMD Zen 5 (family 26): full-width vpdpbusd runs at 497-539 G/s with 8-14 accumulators but 284 with 16; a
    # tile-shaped loop ran R = 6 rows x 32 columns at 335-341 against 128-161 for R = 8 (issue figures): 12.
    ("AuthenticAMD", 26, None): {"avx512vnni": "6x32"},
}

_TILE_NAME = re.compile(r"^[0-9]+x[0-9]+(k[0-9]+)?$")   # rows x columns [k-unroll], e.g. 8x32, 6x32k2
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
        tiles, where = os.environ.get(TILES_ENV) or "auto", TILES_ENV
    if not isinstance(tiles, str):
        raise TypeError(f"tiles must be a str ('auto', 'builtin', a tile name such as '8x32', or "
                        f"'KERNEL:TILE,...'), got {type(tiles).__name__}")
    if tiles in MODES or _TILE_NAME.match(tiles):
        return tiles
    pinned = _per_kernel(tiles)
    if pinned is None:
        raise ValueError(f"{where} is {tiles!r}; expected 'auto' (measure on this CPU, cached), 'builtin' (the "
                         "built-in table), a tile name such as '8x32' (see aefast._core.tile_names('q8', kernel)) "
                         "or 'KERNEL:TILE,...' (e.g. 'avx512vnni:6x32,avxvnni:6x16')")
    return tiles


def _per_kernel(setting: str) -> dict[str, str] | None:
    """'avx512vnni:6x32,avxvnni:6x16' -> {kernel: tile}; None when that is not the form."""
    out = {}
    for part in setting.split(","):
        kernel, sep, tile = part.strip().partition(":")
        if not sep or not kernel or not _TILE_NAME.match(tile):
            return None
        out[kernel] = tile
    return out


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


def entry_key(kernel: str, k: int, n: int, rows: int = CALIBRATION_ROWS) -> str:
    return f"{kernel} k={k} n={n} rows={rows}"


def builtin_tile(core, kernel: str) -> str:
    """The built-in choice for q8 family `kernel` on this CPU, else the family's default (its first tile)."""
    ident = core.cpu_identity()
    for key in ((ident["vendor"], ident["family"], ident["model"]), (ident["vendor"], ident["family"], None)):
        tile = BUILTIN.get(key, {}).get(kernel)
        if tile is not None:
            return tile
    return core.tile_names("q8", kernel)[0]


def measure(core, kernel: str, k: int, n: int, rows: int = CALIBRATION_ROWS,
            rounds: int = CALIBRATION_ROUNDS) -> dict:
    """A cache entry for one layer shape, measured now: {"kernel", "k", "n", "rows", "tiles", "seconds", "choice"}
    (seconds per call of each tile; choice the fastest, the first listed on a tie)."""
    seconds = core._time_q8_tiles(kernel, k, n, rows, rounds)
    names = list(core.tile_names("q8", kernel))
    choice = min(names, key=lambda t: seconds[t])
    return {"kernel": kernel, "k": k, "n": n, "rows": rows, "tiles": names,
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
              rounds: int = CALIBRATION_ROUNDS) -> list[dict]:
    """Cache entries for q8 family `kernel` on each (k, n) of `shapes`: from the cache, or measured now (all of
    them when `force`, as `aefast tune` does) and written back. Never raises for cache trouble (warnings)."""
    cpu = cpu_key(core)
    path = cache_path(cpu)
    names = list(core.tile_names("q8", kernel))
    with _lock:
        entries = read_cache(path, cpu)
        out, changed = [], False
        for k, n in shapes:
            key = entry_key(kernel, k, n)
            entry = entries.get(key)
            if force or entry is None or entry.get("tiles") != names:
                entry = entries[key] = measure(core, kernel, k, n, rounds=rounds)
                changed = True
            out.append(entry)
        if changed:
            write_cache(path, cpu, entries)
        for (k, n), entry in zip(shapes, out):
            _memo[(json.dumps(cpu, sort_keys=True), kernel, k, n)] = entry["choice"]
    return out


def choose(core, kernel: str, shapes: list[tuple[int, int]], setting: str) -> list[str]:
    """The tile of each q8 layer (k, n) for `kernel` under `setting` (from setting_from). A pinned tile the
    kernel lacks is a ValueError listing the kernel's tiles."""
    names = list(core.tile_names("q8", kernel))
    pinned = setting if _TILE_NAME.match(setting) else (_per_kernel(setting) or {}).get(kernel)
    if pinned is not None:
        if pinned not in names:
            raise ValueError(f"tile {pinned!r} is not a tile of the {kernel} int8 kernel that runs here; "
                             f"expected one of: {', '.join(names)}")
        return [pinned] * len(shapes)
    if setting != "auto" or len(names) == 1:
        return [builtin_tile(core, kernel)] * len(shapes)
    cpu = json.dumps(cpu_key(core), sort_keys=True)
    with _lock:
        memo = [_memo.get((cpu, kernel, k, n)) for k, n in shapes]
    if all(memo):
        return memo
    return [entry["choice"] for entry in calibrate(core, kernel, shapes)]
