"""Single-core int8 (q8) layer rates of the default model's four layer shapes, as a share of the `vpdpbusd` peak
timed in the same run: `python bench/layer_rates.py [elu|linear]` (docs/performance.md quotes its figures).

Each layer runs alone on one thread (its weights stay in that core's L2 between calls), with uint8 input, so this is
the kernel's own rate with its fused epilogue: no quantization pass between layers, no thread synchronisation."""
import sys
import time

import numpy as np

import aefast._core as core

SHAPES = [(784, 1000), (1000, 100), (100, 1000), (1000, 784)]


def best_seconds(call, repeats: int) -> float:
    best = float("inf")
    for _ in range(9):
        start = time.perf_counter()
        for _ in range(repeats):
            call()
        best = min(best, (time.perf_counter() - start) / repeats)
    return best


def main(activation: str = "elu") -> None:
    rng = np.random.default_rng(0)
    for rows in (1, 16, 96, 256):
        cells, peak = [], 0.0
        for k, n in SHAPES:
            layer = dict(weight=rng.integers(-127, 128, (k, n)).astype(np.int8), scale=np.full(n, 1e-3, np.float32),
                         bias=np.zeros(n, np.float32), activation=activation, compute="q8")
            net = core.Network([layer], threads=1)
            x = rng.integers(0, 256, (rows, k), dtype=np.uint8)
            out = np.empty((rows, n), np.float32)
            peak = max(peak, core.peak("int8_vpdpbusd", 0.05))
            seconds = best_seconds(lambda: net.forward(x, out, 0, 1, False, 1 / 255), max(3, int(2e7 / (rows * k * n))))
            peak = max(peak, core.peak("int8_vpdpbusd", 0.05))
            rate = rows * k * n / seconds / 1e9
            cells.append(f"{k}->{n}: {rate:6.1f} G/s {100 * rate / peak:4.0f}%")
        print(f"rows {rows:4d} | " + " | ".join(cells) + f" | vpdpbusd peak {peak:.0f} G/s")


if __name__ == "__main__":
    main(*sys.argv[1:])
