"""The machine under test: a description for the results, and its limits measured in the same run.

The compute limit is NumPy's BLAS sgemm on a large square product (best of several runs): every dense layer is a
matrix product, so no engine should expect to beat it by much. The memory limit is a large NumPy copy. The
instruction peaks (`peak_rates`) are aefast._core's register-only loops of fp32 FMA, int8 vpdpbusd and bf16
vdpbf16ps: the ceilings of each precision's arithmetic (`arithmetic_ceilings`).
Every measurement here waits for OpenBLAS's worker threads to stop spinning before it returns (timing.settle).
"""
from __future__ import annotations

import concurrent.futures
import importlib.metadata
import os
import platform
import time
from pathlib import Path

import numpy as np

from .timing import settle

# Environment variables that change which OpenBLAS kernel NumPy uses (the runner clears them before numpy loads).
OPENBLAS_ENV = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")
_VERSIONED = ("numpy", "tensorflow", "keras", "onnxruntime", "onnx", "numba", "threadpoolctl", "aefast")


def sgemm_call(n: int):
    """(zero-argument function running one float32 (n, n) @ (n, n) product with NumPy's BLAS, its flops 2 n^3)."""
    rng = np.random.default_rng(0)
    a, b = rng.random((n, n), np.float32), rng.random((n, n), np.float32)
    out = np.empty((n, n), np.float32)
    return (lambda: np.matmul(a, b, out=out)), 2.0 * n ** 3


def matched_sgemm_n(flops: float) -> int:
    """The side n of the square sgemm doing about `flops` flops (2 n^3 = flops): the same work as one call of a
    contender, so both take about as long and meet the same load (at least 16)."""
    if flops <= 0:
        raise ValueError(f"flops must be positive, got {flops}")
    return max(16, round((flops / 2) ** (1 / 3)))


def sgemm_gflops(n: int = 2048, repeats: int = 5) -> dict:
    """Best and median GFLOP/s of float32 (n, n) @ (n, n) with NumPy's BLAS (2 n^3 flops a product); returns once
    BLAS's threads stopped spinning (spin_s: how long that took)."""
    run, flops = sgemm_call(n)
    run()  # warm-up: thread pool start, page faults
    seconds = [_timed(run) for _ in range(repeats)]
    return {"n": n, "repeats": repeats, "best_gflops": flops / min(seconds) / 1e9,
            "median_gflops": flops / float(np.median(seconds)) / 1e9, "spin_s": settle()}


def copy_bandwidth(mib: int = 256, repeats: int = 5) -> dict:
    """Best GB/s of one NumPy copy of `mib` MiB (counting bytes read + bytes written), on one thread."""
    src = np.ones(mib * (1 << 20) // 4, np.float32)
    dst = np.empty_like(src)
    np.copyto(dst, src)
    best = min(_timed(lambda: np.copyto(dst, src)) for _ in range(repeats))
    return {"mib": mib, "repeats": repeats, "best_gb_per_s": 2 * src.nbytes / best / 1e9}


# The `_core.peak` kinds measuring each arithmetic's multiply-add rate; the fastest usable one is its ceiling.
PEAK_KINDS = {"fp32": ("fp32_fma", "fp32_fma_zmm"), "int8": ("int8_vpdpbusd",), "bf16": ("bf16_vdpbf16ps",)}


def usable_cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def peak_rates(seconds: float = 0.2, threads: int | None = None) -> dict:
    """kind -> {"per_core_gmacs", "all_core_gmacs", "threads"} or {"unavailable": why}, for every kind in PEAK_KINDS.

    Each thread's rate is G multiply-adds per second, its fastest ~2 ms window of about `seconds`
    (aefast._core.peak). The loop runs once alone, then on `threads` threads at once: all_core_gmacs is the sum of
    those threads' rates, per_core_gmacs the fastest single rate of either phase (on a shared machine the quiet
    moment a core's peak needs may fall in either)."""
    threads = threads or usable_cores()
    try:
        from .._core import peak
    except ImportError as e:
        return {kind: {"unavailable": f"aefast._core is not built ({e})"} for kinds in PEAK_KINDS.values()
                for kind in kinds}
    rates = {}
    with concurrent.futures.ThreadPoolExecutor(threads) as pool:  # peak releases the GIL: the threads run at once
        for kind in (k for kinds in PEAK_KINDS.values() for k in kinds):
            try:
                per_core = peak(kind, seconds)
            except ValueError as e:  # this CPU lacks the instructions; the message names the usable kinds
                rates[kind] = {"unavailable": str(e)}
                continue
            each = list(pool.map(lambda _: peak(kind, seconds), range(threads)))
            rates[kind] = {"per_core_gmacs": max(per_core, *each), "all_core_gmacs": sum(each), "threads": threads}
    return rates


def best_peak_rates(*measured: dict) -> dict:
    """The per-kind maximum of several `peak_rates` results (a run measures at its start and its end)."""
    best = {}
    for rates in measured:
        for kind, r in rates.items():
            if "per_core_gmacs" not in r:
                best.setdefault(kind, r)
            elif "per_core_gmacs" not in best.get(kind, {}):
                best[kind] = dict(r)
            else:
                best[kind] = {**r, **{k: max(best[kind][k], r[k]) for k in ("per_core_gmacs", "all_core_gmacs")}}
    return best


def arithmetic_ceilings(rates: dict, cores: int) -> dict:
    """arithmetic -> {"kind", "per_core_gmacs", "gmacs": per core x cores} from the fastest usable kind of each
    arithmetic in PEAK_KINDS (arithmetics with no usable kind are left out)."""
    out = {}
    for arithmetic, kinds in PEAK_KINDS.items():
        usable = [(rates[k]["per_core_gmacs"], k) for k in kinds if "per_core_gmacs" in rates.get(k, {})]
        if usable:
            per_core, kind = max(usable)
            out[arithmetic] = {"kind": kind, "per_core_gmacs": per_core, "gmacs": per_core * cores, "cores": cores}
    return out


def _timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def images_per_s_at_gflops(gflops: float, flops_per_image: int) -> float:
    """Images per second a machine doing `gflops` GFLOP/s could push through `flops_per_image` flops each."""
    if flops_per_image <= 0:
        raise ValueError(f"flops_per_image must be positive, got {flops_per_image}")
    return gflops * 1e9 / flops_per_image


ceiling_images_per_s = images_per_s_at_gflops   # the older name, kept for callers


def load_average() -> list[float] | None:
    """The 1, 5 and 15 minute load averages: above the core count, other jobs shared the machine."""
    return list(os.getloadavg()) if hasattr(os, "getloadavg") else None


def blas_info() -> list[dict]:
    """What threadpoolctl reports for the loaded BLAS libraries (kernel = 'architecture')."""
    try:
        import threadpoolctl
    except ImportError:
        return [{"error": "threadpoolctl is not installed"}]
    return threadpoolctl.threadpool_info()


def _cpu_model() -> str:
    return _cpu_identity().get("model name") or platform.processor() or "unknown"


def _cpu_identity() -> dict:
    """The first processor's "model name", "vendor_id", "cpu family", "model" and "stepping" from /proc/cpuinfo
    (strings, as written there); {} where it cannot be read. A VM's model name may be generic ("AMD EPYC",
    "Intel(R) Xeon(R) Processor"): family and model then tell which CPU generation the figures came from."""
    keys = ("model name", "vendor_id", "cpu family", "model", "stepping")
    found: dict = {}
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if not line.strip():
                break   # the end of the first processor's block
            key, _, value = line.partition(":")
            if key.strip() in keys:
                found.setdefault(key.strip(), value.strip())
    except OSError:
        pass
    return found


def _cpu_flags() -> dict:
    try:
        from ..engine import backend as _backend
        if _backend.core is not None:
            return {"source": "aefast._core.cpu_features", **_backend.core.cpu_features()}
    except ImportError:
        pass
    try:
        flags = next(line for line in Path("/proc/cpuinfo").read_text().splitlines() if line.startswith("flags"))
        present = set(flags.split(":", 1)[1].split())
        return {"source": "/proc/cpuinfo", **{f: f in present for f in ("avx2", "fma", "f16c", "avx512f")}}
    except (OSError, StopIteration):
        return {"source": "unknown"}


def _caches() -> dict:
    caches = {}
    for index in sorted(Path("/sys/devices/system/cpu/cpu0/cache").glob("index*")):
        try:
            level, kind, size = ((index / f).read_text().strip() for f in ("level", "type", "size"))
        except OSError:
            continue
        caches[f"L{level} {kind}"] = size
    return caches


def _versions() -> dict:
    versions = {}
    for name in _VERSIONED:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def describe_machine() -> dict:
    """CPU model, flags, cores, caches, memory, library versions and the BLAS kernel, for results.json."""
    try:
        import psutil
        physical, memory = psutil.cpu_count(logical=False), psutil.virtual_memory().total
    except ImportError:
        physical, memory = None, None
    return {
        "cpu_model": _cpu_model(),
        "cpu_identity": _cpu_identity(),
        "cpu_flags": _cpu_flags(),
        "logical_cores": os.cpu_count(),
        "physical_cores": physical,
        "usable_cores": usable_cores(),
        "caches": _caches(),
        "memory_bytes": memory,
        "platform": platform.platform(),
        "python": platform.python_version(),
        "versions": _versions(),
        "blas": blas_info(),
        "openblas_env": {k: os.environ.get(k) for k in OPENBLAS_ENV},
        "aefast_amx": os.environ.get("AEFAST_AMX") or None,   # the AMX opt-in (aefast/engine/backend.py)
    }
