"""A/B timing of two builds of aefast._core in one process, interleaved, so both see the same machine load.

Build the baseline from a commit into its own folder (nothing in the repository is touched):
    mkdir -p /tmp/old && git archive <commit> csrc CMakeLists.txt | tar -x -C /tmp/old
    cmake -S /tmp/old -B /tmp/old/b -DCMAKE_BUILD_TYPE=Release -Dpybind11_DIR=$(python3 -m pybind11 --cmakedir) \
        -DPython_EXECUTABLE=$(which python3) && cmake --build /tmp/old/b -j2
then compare it with the installed build (784-1000-100-1000-784 ELU, random weights):
    python3 csrc/tools/ab_core.py /tmp/old/b BATCHES DTYPES THREADS [ROUNDS]
    e.g. python3 csrc/tools/ab_core.py /tmp/old/b 1,16 float32,float16,int8,q8,bf16 1,2 15
    (DTYPES: float32 | float16 | int8 weights with fp32 compute; q8: int8 x uint8 compute; bf16: bf16 compute)
Images/s of whole Engines, aefast.load(random Glorot model, precision=...), old build against the installed one, every
precision and batch in interleaved rounds (the old build's Network is put under the Engine by swapping the backend
module while it is loaded):
    python3 csrc/tools/ab_core.py --engine /tmp/old/b BATCHES PRECISIONS [ROUNDS]   e.g. 1,16,256,4096 fp32,fp16,bf16 5
(every mode takes the model's layer sizes from AB_SIZES, default 784,1000,100,1000,784; --engine takes the model file
AB_MODEL instead when set, "default" for the shipped model, the ISA levels AB_ISAS (comma-separated, default auto) and,
where the builds' outputs may differ (a change of the arithmetic), AB_MAX_DIFF: the largest |new - old| allowed, printed)
The int8 precision's kernels side by side on the installed build (avx512vnni; avxvnni: isa "avx2" on a CPU with
AVX-VNNI; avx2: isa "avx2" in a copy of the module loaded with AEFAST_CPU_DISABLE=avx_vnni):
    python3 csrc/tools/ab_core.py --q8-kernels BATCHES [ROUNDS]
GFLOP per CPU-second of the installed build alone (process CPU time of all threads: the figure a busy shared
machine distorts least; cpu/wall shows how much of the threads actually ran at once):
    python3 csrc/tools/ab_core.py --cpu BATCH DTYPES THREADS     e.g. --cpu 4096 float32,float16,int8 1,2
Both builds' outputs are checked bit-equal first. Each round times every case once (100 calls per sample at
batch 1, 20 at batch <= 1023, 1 above); prints best and median per-call time and new/old median ratio.
"""
import glob
import importlib.machinery
import importlib.util
import os
import pathlib
import sys
import tempfile
import time

import numpy as np

import aefast
from aefast import _core as new_core
from aefast.bench.models import random_weights
from aefast.engine import backend as engine_backend
from aefast.model.bits import float_to_bf16_bits

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[2] / "bench"))
from layer_rates import KERNELS, core_with_env  # noqa: E402  (bench/ is not a package)

# The model's layer sizes: the default shape, or AB_SIZES (e.g. AB_SIZES=784,10000,100,10000,784 for the wide model).
SIZES = [int(v) for v in os.environ.get("AB_SIZES", "784,1000,100,1000,784").split(",")]


def load_core(build_dir: str):
    path = glob.glob(os.path.join(build_dir, "_core*.so"))[0]
    loader = importlib.machinery.ExtensionFileLoader("_core", path)
    module = importlib.util.module_from_spec(importlib.util.spec_from_file_location("_core", path, loader=loader))
    loader.exec_module(module)
    return module


def layers(dtype: str) -> list[dict]:
    rng = np.random.default_rng(0)
    out = []
    for n_in, n_out in zip(SIZES[:-1], SIZES[1:]):
        w = rng.standard_normal((n_in, n_out)) / np.sqrt(n_in)
        layer = dict(bias=np.zeros(n_out, np.float32), activation="elu")
        if dtype in ("int8", "q8"):   # int8 weights: widened to fp32 (int8) or on int8 x uint8 dot products (q8)
            scale = np.abs(w).max(0) / 127
            layer["weight"], layer["scale"] = np.round(w / scale).astype(np.int8), scale.astype(np.float32)
            if dtype == "q8":
                layer["compute"] = "q8"
        elif dtype == "bf16":         # bf16 weights and activations, fp32 sums
            layer["weight"], layer["compute"] = float_to_bf16_bits(w.astype(np.float32)), "bf16"
        else:
            layer["weight"] = w.astype(dtype)
        out.append(layer)
    return out


def cpu_efficiency(batch: int, dtypes: list[str], threads: list[int], rounds: int = 5) -> None:
    macs = sum(a * b for a, b in zip(SIZES[:-1], SIZES[1:]))
    x = np.random.default_rng(1).random((batch, SIZES[0]), dtype=np.float32)
    out = np.empty((batch, SIZES[-1]), np.float32)
    nets = {(d, t): new_core.Network(layers(d), threads=t) for d in dtypes for t in threads}
    calls = max(1, int(5e8 / (2 * batch * macs)))
    results = {key: [] for key in nets}
    for _ in range(rounds):
        for key, net in nets.items():
            wall, cpu = time.perf_counter(), time.process_time()
            for _ in range(calls):
                net.forward(x, out)
            wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
            results[key].append((2 * batch * macs * calls / cpu / 1e9, cpu / wall, 2 * batch * macs * calls / wall / 1e9))
    print(f"load average (1 min): {os.getloadavg()[0]:.1f}")
    for (dtype, th), values in results.items():
        values.sort()
        print(f"{dtype:8s} threads={th} batch={batch}: GFLOP per CPU-second median {values[len(values) // 2][0]:.1f} "
              f"best {values[-1][0]:.1f}, cpu/wall median {sorted(v[1] for v in values)[len(values) // 2]:.2f}, "
              f"wall GFLOP/s best {max(v[2] for v in values):.1f}")


def load_engine(core, precision: str, isa: str = "auto") -> aefast.Engine:
    """aefast.load of the random Glorot default-shape model (or the model file AB_MODEL) on `core` (an extension
    module) instead of the installed one: the backend module is swapped while the Engine builds its Network."""
    model = os.environ.get("AB_MODEL")
    if model == "default":
        from aefast.engine.api import DEFAULT_MODEL_PATH
        model = DEFAULT_MODEL_PATH
    saved = engine_backend.core
    engine_backend.core = core
    try:
        return aefast.load(aefast.read_model(model) if model else random_weights(tuple(SIZES)), precision=precision,
                           backend="cpp", isa=isa)
    finally:
        engine_backend.core = saved


def interleaved(cases: dict, rounds: int) -> dict:
    """Per-call seconds of every case, `rounds` samples each; each round times every case once (100 calls per sample
    at batch 1, 20 below 1024, 1 above; the batch is the key's last element)."""
    samples = {key: [] for key in cases}
    for _ in range(rounds):
        for key, run in cases.items():
            calls = 100 if key[-1] == 1 else 20 if key[-1] < 1024 else 1
            start = time.perf_counter()
            for _ in range(calls):
                run()
            samples[key].append((time.perf_counter() - start) / calls)
    return samples


def median(values: list[float]) -> float:
    return sorted(values)[len(values) // 2]


def engine_cases(engines: dict, batches: list[int]) -> tuple[dict, dict]:
    """For every (label, engine) and batch n: the timed call under key label + (n,), and its output."""
    x_all = np.random.default_rng(1).random((max(batches), SIZES[0]), dtype=np.float32)
    cases, outs = {}, {}
    for label, engine in engines.items():
        for n in batches:
            x = x_all[:n].copy()
            cases[label + (n,)] = lambda engine=engine, x=x: engine.reconstruct(x)
            outs[label + (n,)] = engine.reconstruct(x)
    return cases, outs


def timed(cases: dict, rounds: int, what: str) -> dict:
    load_before = os.getloadavg()[0]
    samples = interleaved(cases, rounds)
    print(f"{what}, median of {rounds} interleaved rounds; load average (1 min) before/after: {load_before:.1f} / "
          f"{os.getloadavg()[0]:.1f}")
    return samples


def engine_ab(old_build: str, batches: list[int], precisions: list[str], rounds: int) -> None:
    builds = (("old", load_core(old_build)), ("new", new_core))
    isas = os.environ.get("AB_ISAS", "auto").split(",")
    max_diff = float(os.environ.get("AB_MAX_DIFF", "0"))
    labels = [(f"{p}@{isa}" if len(isas) > 1 else p) for p in precisions for isa in isas]
    engines = {(label, name): load_engine(core, label.split("@")[0], label.split("@")[1] if "@" in label else isas[0])
               for label in labels for name, core in builds}
    cases, outs = engine_cases(engines, batches)
    for (label, name, n), out in outs.items():
        if name == "new":
            diff = float(np.max(np.abs(out - outs[(label, "old", n)])))
            if diff > max_diff:
                raise SystemExit(f"outputs differ: {label} batch={n} by up to {diff:.3g} (AB_MAX_DIFF {max_diff:g})")
            if diff:
                print(f"{label} batch={n}: outputs differ by up to {diff:.3g}")
    samples = timed(cases, rounds, "images/s")
    for n in batches:
        cells = []
        for label in labels:
            old, new = median(samples[(label, "old", n)]), median(samples[(label, "new", n)])
            best = min(samples[(label, "old", n)]) / min(samples[(label, "new", n)])
            cells.append(f"{label} old {n / old:9.0f} new {n / new:9.0f} ({old / new:.2f}x, best {best:.2f}x)")
        print(f"batch {n:5d}: " + " | ".join(cells))
    for name in ("old", "new"):
        if "fp16" in precisions and "fp32" in precisions:
            print(f"{name}: fp16 / fp32 images/s: " + ", ".join(
                f"batch {n} {median(samples[('fp32', name, n)]) / median(samples[('fp16', name, n)]):.2f}"
                for n in batches))


def q8_kernels(batches: list[int], rounds: int) -> None:
    kernels = KERNELS["q8"]
    with tempfile.TemporaryDirectory() as tmp:
        modules, engines = {}, {}
        for kernel, (isa, env, expected) in kernels.items():
            engines[(kernel,)] = load_engine(core_with_env(env, modules, tmp), "int8", isa)
            if engines[(kernel,)].kernel != expected:
                raise SystemExit(f"{kernel}: the engine runs kernel {engines[(kernel,)].kernel!r}, not {expected!r}")
        cases, outs = engine_cases(engines, batches)
        first = next(iter(kernels))
        for (kernel, n), out in outs.items():
            if not np.array_equal(out, outs[(first, n)]):
                raise SystemExit(f"outputs differ: {kernel} against {first} at batch {n}")
        samples = timed(cases, rounds, "int8 images/s by kernel")
    for n in batches:
        print(f"batch {n:5d}: " + " | ".join(f"{kernel} {n / median(samples[(kernel, n)]):9.0f}" for kernel in kernels))


def main(argv: list[str]) -> None:
    if argv[0] == "--cpu":
        return cpu_efficiency(int(argv[1]), argv[2].split(","), [int(t) for t in argv[3].split(",")])
    if argv[0] == "--engine":
        return engine_ab(argv[1], [int(b) for b in argv[2].split(",")], argv[3].split(","),
                         int(argv[4]) if len(argv) > 4 else 5)
    if argv[0] == "--q8-kernels":
        return q8_kernels([int(b) for b in argv[1].split(",")], int(argv[2]) if len(argv) > 2 else 5)
    old_core = load_core(argv[0])
    batches = [int(b) for b in argv[1].split(",")]
    dtypes, threads = argv[2].split(","), [int(t) for t in argv[3].split(",")]
    rounds = int(argv[4]) if len(argv) > 4 else 9
    x_all = np.random.default_rng(1).random((max(batches), SIZES[0]), dtype=np.float32)
    isas = os.environ.get("AB_ISAS", "auto").split(",")
    max_diff = float(os.environ.get("AB_MAX_DIFF", "0"))
    cases = {}
    for label in [f"{d}@{isa}" if len(isas) > 1 else d for d in dtypes for isa in isas]:
        spec = layers(label.split("@")[0])
        for th in threads:
            for name, core in (("old", old_core), ("new", new_core)):
                net = core.Network(spec, isa=label.split("@")[1] if "@" in label else isas[0], threads=th)
                for n in batches:
                    x, out = x_all[:n].copy(), np.empty((n, SIZES[-1]), np.float32)
                    cases[(label, th, n, name)] = (lambda net=net, x=x, out=out: net.forward(x, out), out)
    for run, _ in cases.values():
        run()
    for (dtype, th, n, name), (_, out) in cases.items():
        if name == "new":
            diff = float(np.max(np.abs(out - cases[(dtype, th, n, "old")][1])))
            if diff > max_diff:
                raise SystemExit(f"outputs differ: {dtype} threads={th} batch={n} by up to {diff:.3g} "
                                 f"(AB_MAX_DIFF {max_diff:g})")
            if diff:
                print(f"{dtype} threads={th} batch={n}: outputs differ by up to {diff:.3g}")
    samples = {key: [] for key in cases}
    load_before = os.getloadavg()[0]
    for _ in range(rounds):
        for key, (run, _) in cases.items():
            calls = 100 if key[2] == 1 else 20 if key[2] < 1024 else 1
            start = time.perf_counter()
            for _ in range(calls):
                run()
            samples[key].append((time.perf_counter() - start) / calls)
    print(f"load average (1 min) before/after: {load_before:.1f} / {os.getloadavg()[0]:.1f}")
    for (dtype, th, n, name), values in samples.items():
        if name != "new":
            continue
        old, new = sorted(samples[(dtype, th, n, "old")]), sorted(values)
        med_old, med_new = old[len(old) // 2], new[len(new) // 2]
        print(f"{dtype:12s} threads={th} batch={n:5d}: old best {old[0] * 1e6:9.0f} median {med_old * 1e6:9.0f} | "
              f"new best {new[0] * 1e6:9.0f} median {med_new * 1e6:9.0f} us | new/old median {med_new / med_old:.2f} "
              f"best {new[0] / old[0]:.2f}")


if __name__ == "__main__":
    main(sys.argv[1:])
