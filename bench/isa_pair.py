"""Two ISA levels side by side on one model: `reconstruct` images/s per precision and batch, interleaved rounds in
one process (median of --rounds), so a busy moment of a shared machine falls on both alike:

    python bench/isa_pair.py --isas avx512,amx --precisions int8,bf16 [--model PATH] [--threads 2]

Prints one row per precision and batch with each ISA's images/s and the ratio of the second to the first, and the
kernel each Engine reports (Engine.kernel), so the figure names what ran.
"""
import argparse
import time

import numpy as np

import aefast
from aefast.engine.api import DEFAULT_MODEL_PATH


def rate(engine, x: np.ndarray, seconds: float) -> float:
    """Images per second of engine.reconstruct(x), repeated for at least `seconds`."""
    engine.reconstruct(x)
    calls, start = 0, time.perf_counter()
    while True:
        engine.reconstruct(x)
        calls += 1
        elapsed = time.perf_counter() - start
        if elapsed >= seconds:
            return calls * len(x) / elapsed


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python bench/isa_pair.py", description=__doc__.split("\n\n")[0])
    p.add_argument("--isas", default="avx512,amx")
    p.add_argument("--precisions", default="int8,bf16")
    p.add_argument("--batches", default="1,16,256,4096")
    p.add_argument("--model", default=str(DEFAULT_MODEL_PATH), help="model file (default: the shipped model)")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--seconds", type=float, default=0.2, help="time per measurement")
    args = p.parse_args(argv)
    isas = args.isas.split(",")
    rng = np.random.default_rng(0)
    for precision in args.precisions.split(","):
        engines = [aefast.load(args.model, precision=precision, isa=isa, threads=args.threads) for isa in isas]
        print(f"{precision}: " + ", ".join(f"isa {isa} runs {e.kernel}" for isa, e in zip(isas, engines)))
        for batch in map(int, args.batches.split(",")):
            x = rng.uniform(0, 1, (batch, int(np.prod(engines[0].input_shape)))).astype(np.float32)
            rounds = [[rate(e, x, args.seconds) for e in engines] for _ in range(args.rounds)]
            med = np.median(np.array(rounds), axis=0)
            cells = "  ".join(f"{isa} {m:>10,.0f}/s" for isa, m in zip(isas, med))
            print(f"  batch {batch:>5}: {cells}  ratio {med[-1] / med[0]:.2f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
