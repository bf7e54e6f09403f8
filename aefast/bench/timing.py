"""A fair timer for several contenders at once.

Each contender is warmed up, then timed in `rounds` rounds; within a round every contender runs one block of calls,
in an order that rotates from round to round, so slow phases of a shared, noisy machine fall on all of them alike.
A block holds as many calls as fit in `block_s` (at least one), so fast calls are not dominated by timer overhead.
A short untimed pause follows each block: thread pools that spin after a call (OpenBLAS, ONNX Runtime, TensorFlow)
go idle before the next contender starts, instead of stealing its cores.
"""
from __future__ import annotations

import statistics
import time
from dataclasses import asdict, dataclass
from typing import Callable


@dataclass
class Timing:
    """Seconds per call: one sample per round (block time / calls in the block)."""

    samples: list[float]
    calls_per_block: int

    @property
    def median(self) -> float:
        return statistics.median(self.samples)

    @property
    def best(self) -> float:
        return min(self.samples)

    def as_dict(self) -> dict:
        return {**asdict(self), "median_s": self.median, "best_s": self.best}


def _time_block(fn: Callable[[], object], calls: int) -> float:
    start = time.perf_counter()
    for _ in range(calls):
        fn()
    return (time.perf_counter() - start) / calls


def time_interleaved(fns: dict[str, Callable[[], object]], rounds: int = 5, block_s: float = 0.05,
                     warmup_calls: int = 2, gap_s: float = 0.005) -> dict[str, Timing]:
    """Time every zero-argument callable in `fns`; returns name -> Timing.

    Warm-up runs `warmup_calls` calls of each (the last one also sizes its block); then `rounds` rounds.
    """
    if rounds < 1 or warmup_calls < 1 or block_s <= 0:
        raise ValueError(f"need rounds >= 1, warmup_calls >= 1, block_s > 0; got {rounds}, {warmup_calls}, {block_s}")
    names = list(fns)
    calls = {}
    for name in names:
        for _ in range(warmup_calls - 1):
            fns[name]()
        one_call = _time_block(fns[name], 1)
        calls[name] = max(1, min(10_000, int(block_s / max(one_call, 1e-9))))
    samples: dict[str, list[float]] = {name: [] for name in names}
    for r in range(rounds):
        for name in names[r % len(names):] + names[:r % len(names)]:
            samples[name].append(_time_block(fns[name], calls[name]))
            time.sleep(gap_s)
    return {name: Timing(samples[name], calls[name]) for name in names}
