"""A fair timer for several contenders at once.

Each contender is warmed up, then timed in `rounds` rounds; within a round every contender runs one block of calls,
in an order that rotates from round to round, so slow phases of a shared, noisy machine fall on all of them alike.
A block holds as many calls as fit in `block_s` (at least one), so fast calls are not dominated by timer overhead.

After every block (and every warm-up) the timer waits, untimed, until this process's thread pools have gone idle
(`settle`): OpenBLAS's workers spin about 0.1 s after a NumPy product, ONNX Runtime's about 40 ms after a run, and a
contender timed during that spin would share its cores with them. Each contender is timed with its library's own
default spinning (its best settings); the spin is recorded (`Timing.spin_s`) but charged to nobody.
"""
from __future__ import annotations

import os
import statistics
import threading
import time
from dataclasses import asdict, dataclass, field
from typing import Callable

# Where /proc/self/task is missing (not Linux), `settle` cannot see thread states and sleeps this long instead:
# longer than the ~0.11 s OpenBLAS spin measured on the project machine (docs/performance.md).
FALLBACK_SETTLE_S = 0.25


@dataclass
class Timing:
    """Seconds per call: one sample per round (block time / calls in the block); spin_s: after each block, how long
    the process still had a runnable thread besides the timer's (a thread pool spinning), in seconds."""

    samples: list[float]
    calls_per_block: int
    spin_s: list[float] = field(default_factory=list)

    @property
    def median(self) -> float:
        return statistics.median(self.samples)

    @property
    def best(self) -> float:
        return min(self.samples)

    def as_dict(self) -> dict:
        return {**asdict(self), "median_s": self.median, "best_s": self.best}


def runnable_threads() -> int | None:
    """How many of this process's threads, the caller's excepted, are running or waiting for a CPU (state R in
    /proc/self/task/<tid>/stat): a pool spinning on sched_yield stays R even while descheduled, which CPU-time
    windows on a loaded machine can miss. None where /proc/self/task cannot be read."""
    me = threading.get_native_id()
    try:
        tids = os.listdir("/proc/self/task")
    except OSError:
        return None
    count = 0
    for tid in tids:
        if tid == str(me):
            continue
        try:
            with open(f"/proc/self/task/{tid}/stat", "rb") as f:
                stat = f.read()
        except OSError:  # the thread ended meanwhile
            continue
        end = stat.rfind(b")")  # the state follows "pid (comm) ", and comm may itself hold spaces or ")"
        count += stat[end + 2:end + 3] == b"R"
    return count


def settle(max_s: float = 1.0, poll_s: float = 0.003, quiet_polls: int = 3) -> float:
    """Sleep until no other thread of this process is runnable for `quiet_polls` polls in a row (`poll_s` apart),
    or `max_s` passed; returns how long threads were still seen runnable (0 when none was), capped at max_s."""
    start = time.perf_counter()
    if runnable_threads() is None:
        time.sleep(min(FALLBACK_SETTLE_S, max_s))
        return min(FALLBACK_SETTLE_S, max_s)
    last_busy, quiet = None, 0
    while quiet < quiet_polls:
        now = time.perf_counter()
        if now - start >= max_s:
            return max_s
        if runnable_threads():
            last_busy, quiet = now, 0
        else:
            quiet += 1
        time.sleep(poll_s)
    return 0.0 if last_busy is None else last_busy - start


def _time_block(fn: Callable[[], object], calls: int) -> float:
    start = time.perf_counter()
    for _ in range(calls):
        fn()
    return (time.perf_counter() - start) / calls


def time_interleaved(fns: dict[str, Callable[[], object]], rounds: int = 5, block_s: float = 0.05,
                     warmup_calls: int = 2, settle_max_s: float = 1.0) -> dict[str, Timing]:
    """Time every zero-argument callable in `fns`; returns name -> Timing.

    Warm-up runs `warmup_calls` calls of each (the last one also sizes its block); then `rounds` rounds. Every block
    and warm-up is followed by `settle(settle_max_s)` (settle_max_s 0: no wait, for tests of the rotation).
    """
    if rounds < 1 or warmup_calls < 1 or block_s <= 0:
        raise ValueError(f"need rounds >= 1, warmup_calls >= 1, block_s > 0; got {rounds}, {warmup_calls}, {block_s}")
    names = list(fns)
    calls = {}
    settle(settle_max_s)  # whatever ran before (building and checking the contenders) must not spill over
    for name in names:
        for _ in range(warmup_calls - 1):
            fns[name]()
        one_call = _time_block(fns[name], 1)
        calls[name] = max(1, min(10_000, int(block_s / max(one_call, 1e-9))))
        settle(settle_max_s)
    timings = {name: Timing([], calls[name]) for name in names}
    for r in range(rounds):
        for name in names[r % len(names):] + names[:r % len(names)]:
            timings[name].samples.append(_time_block(fns[name], calls[name]))
            timings[name].spin_s.append(settle(settle_max_s))
    return timings
