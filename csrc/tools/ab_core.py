"""A/B timing of two builds of aefast._core in one process, interleaved, so both see the same machine load.

Build the baseline from a commit into its own folder (nothing in the repository is touched):
    mkdir -p /tmp/old && git archive <commit> csrc CMakeLists.txt | tar -x -C /tmp/old
    cmake -S /tmp/old -B /tmp/old/b -DCMAKE_BUILD_TYPE=Release -Dpybind11_DIR=$(python3 -m pybind11 --cmakedir) \
        -DPython_EXECUTABLE=$(which python3) && cmake --build /tmp/old/b -j2
then compare it with the installed build (784-1000-100-1000-784 ELU, random weights):
    python3 csrc/tools/ab_core.py /tmp/old/b BATCHES DTYPES THREADS [ROUNDS]
    e.g. python3 csrc/tools/ab_core.py /tmp/old/b 1,16 float32,float16,int8,q8,bf16 1,2 15
    (DTYPES: float32 | float16 | int8 weights with fp32 compute; q8: int8 x uint8 compute; bf16: bf16 compute)
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
import sys
import time

import numpy as np

from aefast import _core as new_core
from aefast.model.bits import float_to_bf16_bits

SIZES = [784, 1000, 100, 1000, 784]


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


def main(argv: list[str]) -> None:
    if argv[0] == "--cpu":
        return cpu_efficiency(int(argv[1]), argv[2].split(","), [int(t) for t in argv[3].split(",")])
    old_core = load_core(argv[0])
    batches = [int(b) for b in argv[1].split(",")]
    dtypes, threads = argv[2].split(","), [int(t) for t in argv[3].split(",")]
    rounds = int(argv[4]) if len(argv) > 4 else 9
    x_all = np.random.default_rng(1).random((max(batches), SIZES[0]), dtype=np.float32)
    cases = {}
    for dtype in dtypes:
        spec = layers(dtype)
        for th in threads:
            for name, core in (("old", old_core), ("new", new_core)):
                net = core.Network(spec, threads=th)
                for n in batches:
                    x, out = x_all[:n].copy(), np.empty((n, SIZES[-1]), np.float32)
                    cases[(dtype, th, n, name)] = (lambda net=net, x=x, out=out: net.forward(x, out), out)
    for run, _ in cases.values():
        run()
    for (dtype, th, n, name), (_, out) in cases.items():
        if name == "new" and not np.array_equal(out, cases[(dtype, th, n, "old")][1]):
            raise SystemExit(f"outputs differ: {dtype} threads={th} batch={n}")
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
        print(f"{dtype:8s} threads={th} batch={n:5d}: old best {old[0] * 1e6:9.0f} median {med_old * 1e6:9.0f} | "
              f"new best {new[0] * 1e6:9.0f} median {med_new * 1e6:9.0f} us | new/old median {med_new / med_old:.2f}")


if __name__ == "__main__":
    main(sys.argv[1:])
