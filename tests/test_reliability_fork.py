"""An Engine survives os.fork(). A forked child can use the engine (cpp and numba), always
exits, and a fork that lands while another thread is inside a call never deadlocks the child.

Every scenario runs in its own Python process (subprocess with a timeout), whose parent forks children and waits for
each with a deadline, killing it if it hangs: a regression fails the test instead of blocking the suite.
"""
import json
import os
import subprocess
import sys
import textwrap

import pytest

from aefast.engine import available_backends

BACKENDS = sorted({b for b, _ in available_backends()})
CHILD_DEADLINE_S = 20

# argv: backend scenario. Prints one JSON list: each forked child's exit code, or "hung" (killed at the deadline).
_SCRIPT = textwrap.dedent("""
    import json, os, sys, threading, time
    import numpy as np
    import aefast
    from aefast.engine.reference import random_weights

    backend, scenario, deadline_s, forks, precision = sys.argv[1:6]
    deadline_s, forks = float(deadline_s), int(forks)
    # Wide enough that a batch-1 call already uses the pool (> 2**18 multiply-adds), 200 rows > numba's 60-row block.
    eng = aefast.load(random_weights((784, 256, 32, 256, 784), seed=3), precision, backend, threads=2)
    assert eng.threads == 2, eng.threads
    x = np.random.default_rng(0).integers(0, 256, (200, 784), dtype=np.uint8)
    want = eng.reconstruct(x)
    # Every call path the children and the background thread use has run once (numba compiles a kernel on its first
    # call, under its own process-wide lock: a fork landing inside a compile is numba's limit, see docs/reliability.md).
    for n in (1, 7):
        assert np.array_equal(eng.reconstruct(x[:n]), want[:n])
    time.sleep(0.05)   # the pool's workers go to sleep on its condition variable (they spin for 200 us first)

    def run_child(use):   # in the forked child; never returns
        code = 0
        try:
            if use:
                ok = np.array_equal(eng.reconstruct(x), want) and np.array_equal(eng.reconstruct(x[:1]), want[:1])
                code = 0 if ok else 3
        except BaseException as e:
            print(f"child: {type(e).__name__}: {e}", file=sys.stderr, flush=True)
            code = 4
        sys.exit(code)   # a normal interpreter exit, which frees the Engine

    def fork_and_wait(use):
        pid = os.fork()
        if pid == 0:
            run_child(use)
        deadline = time.monotonic() + deadline_s
        while time.monotonic() < deadline:
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                return os.waitstatus_to_exitcode(status)
            time.sleep(0.002)
        os.kill(pid, 9)
        os.waitpid(pid, 0)
        return "hung"

    if scenario == "exit":     # the child never touches the engine
        results = [fork_and_wait(False) for _ in range(forks)]
    elif scenario == "use":
        results = [fork_and_wait(True) for _ in range(forks)]
    elif scenario == "race":   # another thread is inside reconstruct (any batch size) when the fork happens
        stop = threading.Event()
        def loop():
            i = 0
            while not stop.is_set():
                eng.reconstruct(x[: (1, 7, 200)[i % 3]])
                i += 1
        bg = threading.Thread(target=loop, daemon=True)
        bg.start()
        results = []
        for _ in range(forks):
            time.sleep(0.001 * (len(results) % 7))
            results.append(fork_and_wait(True))
        stop.set()
        bg.join()
    assert np.array_equal(eng.reconstruct(x), want)   # the parent's engine is untouched by its children
    print(json.dumps(results), flush=True)
""")


def run_scenario(backend: str, scenario: str, forks: int = 3, precision: str = "fp32", **env: str) -> list:
    proc = subprocess.run([sys.executable, "-c", _SCRIPT, backend, scenario, str(CHILD_DEADLINE_S), str(forks),
                           precision],
                          capture_output=True, text=True, timeout=150, env={**os.environ, **env})
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.fixture(autouse=True)
def two_cpus():
    if len(os.sched_getaffinity(0)) < 2:
        pytest.skip("needs 2 usable CPUs: with one, the Engine runs with threads=1 and has no pool to copy")


@pytest.mark.parametrize("backend", BACKENDS)
def test_forked_child_that_never_uses_the_engine_exits(backend):
    """Item 1: the child's exit used to hang in pthread_cond_destroy on the pool's copied condition variable."""
    assert run_scenario(backend, "exit") == [0, 0, 0]


@pytest.mark.parametrize("backend", BACKENDS)
def test_forked_child_uses_the_engine_and_gets_the_parents_answers(backend):
    """Items 1 and 3: the child computes 200 rows (numba: more than one 60-row block, so its parallel path runs,
    which aborted the child under GNU OpenMP) and exits."""
    assert run_scenario(backend, "use") == [0, 0, 0]


@pytest.mark.parametrize("precision", ["int8", "bf16"])
def test_forked_child_rebuilds_low_precision_networks(precision):
    """The rebuilt network in the child is the parent's precision (int8: with its calibration), bit for bit, and
    the low-precision path's own scratch (quantized rows, bf16 pairs) is rebuilt with it."""
    assert run_scenario(BACKENDS[0], "use", precision=precision) == [0, 0, 0]


@pytest.mark.parametrize("backend", BACKENDS)
def test_fork_while_another_thread_is_inside_a_call_never_deadlocks_the_child(backend):
    """Item 2: forks while a background thread loops reconstruct; about 1 child in 40 used to hang on a mutex copied
    while locked. 40 forks on cpp (0.25 s each); 12 on numba, whose children take ~1 s each (most of it the exit of a
    process holding numba and LLVM) and whose risk is the reset of _PARALLEL_LOCK and of numba's workqueue."""
    forks = 40 if backend == "cpp" else 12
    results = run_scenario(backend, "race", forks)
    assert results == [0] * forks, results


@pytest.mark.skipif("numba" not in BACKENDS, reason="numba is not installed")
def test_numba_on_a_user_chosen_omp_layer_runs_serially_in_a_forked_child():
    """Item 3, when the user picked GNU OpenMP (NUMBA_THREADING_LAYER=omp is respected in the parent): the child falls
    back to the serial kernels instead of dying in numba's "fork() called from a process already using GNU OpenMP"
    (seen failing with the fallback switched off: every child exited -15)."""
    assert run_scenario("numba", "use", NUMBA_THREADING_LAYER="omp") == [0, 0, 0]
