"""Images/s of aefast.dask on a distributed.LocalCluster of 1 and 2 worker processes (one thread each), against
the local Engine on the same images. A benchmark, not a test: `python bench/dask_scaling.py [--images N] ...`.

The input is persisted on the workers before timing (so the figure is the model's, not the data generation's);
each timed run computes `compress` (or another operation) over all images and gathers the result to the client.
Every call ships the engine to the workers again (its weights, 3.5 MB float16 or 7 MB float32, once per
worker); the first run on a fresh cluster also warms the workers up and is reported separately.
"""
from __future__ import annotations

import argparse
import os
import statistics
import time

import numpy as np


def _timed(fn, repeats: int) -> list[float]:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return times


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python bench/dask_scaling.py", description=__doc__.splitlines()[0])
    p.add_argument("--images", type=int, default=60_000)
    p.add_argument("--chunk-rows", type=int, default=5_000)
    p.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    p.add_argument("--operation", choices=("compress", "reconstruct", "score"), default="compress")
    p.add_argument("--repeats", type=int, default=3)
    args = p.parse_args(argv)

    import dask.array as da
    import distributed

    import aefast
    import aefast.dask

    engine = aefast.load(aefast.engine.api.DEFAULT_MODEL_PATH, threads=1)
    rng = da.random.default_rng(0)
    print(f"{args.operation} of {args.images} random uint8 28x28 images in chunks of {args.chunk_rows}, "
          f"{os.cpu_count()} logical cores, load average {os.getloadavg()[0]:.1f}; "
          f"median of {args.repeats} runs after a first run")
    local_x = np.random.default_rng(0).integers(0, 256, size=(args.images, 784), dtype=np.uint8)
    for threads in sorted({1, os.cpu_count() or 1}):
        local = aefast.load(aefast.engine.api.DEFAULT_MODEL_PATH, threads=threads)
        run = getattr(local, args.operation)
        run(local_x[:1000])
        seconds = statistics.median(_timed(lambda: run(local_x), args.repeats))
        print(f"  local Engine, threads={threads}: {args.images / seconds:,.0f} images/s")
    for n_workers in args.workers:
        with distributed.LocalCluster(n_workers=n_workers, threads_per_worker=1, processes=True,
                                      dashboard_address=None) as cluster, distributed.Client(cluster) as client:
            x = rng.integers(0, 256, size=(args.images, 784), dtype=np.uint8, chunks=(args.chunk_rows, 784))
            x = client.persist(x)
            distributed.wait(x)
            op = getattr(aefast.dask, args.operation)
            first = _timed(lambda: op(x, model=engine).compute(), 1)[0]
            seconds = statistics.median(_timed(lambda: op(x, model=engine).compute(), args.repeats))
            print(f"  LocalCluster {n_workers} worker(s) x 1 thread: {args.images / seconds:,.0f} images/s "
                  f"(first run, engine shipped: {args.images / first:,.0f} images/s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
