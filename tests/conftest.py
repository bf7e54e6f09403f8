import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
# int8 engines take the built-in register tiles (no measurement, no writes to the user's cache); the tile choice
# never changes results, and tests/test_tiles.py tests the measured ("auto") path with a private cache.
os.environ.setdefault("AEFAST_TILES", "builtin")
SHARED_ROOT = REPO.parent / "shared"


def resolve_mnist_dir(shared_root: Path = SHARED_ROOT) -> Path:
    """The folder holding the four MNIST IDX files, found the way aefast.data.load_mnist finds them:
    $AEFAST_DATA_DIR, else `shared_root`/data/mnist (the CI checkout's ../shared), else the user cache
    ($AEFAST_CACHE_DIR or ~/.cache/aefast/mnist, hash-checked), else a download into that cache."""
    from aefast.data import DATA_DIR_ENV, mnist_files
    from aefast.data.files import find_in_dir

    env = os.environ.get(DATA_DIR_ENV)
    if env:
        find_in_dir(env)     # DataFileError listing what is missing
        return Path(env)
    shared = shared_root / "data" / "mnist"
    if shared.is_dir():
        try:
            find_in_dir(shared)
            return shared
        except ValueError:   # an incomplete ../shared: use the cache instead
            pass
    files = mnist_files()   # no folder named: the verified cache, downloading what is missing
    (folder,) = {path.parent for path in files.values()}
    return folder


@pytest.fixture(scope="session")
def mnist_resolver():
    """resolve_mnist_dir itself, for the test that runs it with ../shared hidden."""
    return resolve_mnist_dir


@pytest.fixture(scope="session")
def mnist_dir() -> Path:
    """The directory holding the four MNIST IDX files (see resolve_mnist_dir)."""
    from aefast.errors import DataFileError

    try:
        return resolve_mnist_dir()
    except DataFileError as e:
        pytest.fail(f"MNIST not found and not downloadable ({e}); set AEFAST_DATA_DIR to the folder that holds it")


# --- The report names the CPU and, for every ISA and kernel name found in test IDs, how many tests ran or were
# skipped on it (skips carry their reason, e.g. "avx512: CPU lacks avx512bw"). Test IDs hold the ISA as one
# '-'-separated parameter, e.g. test_x[avx512-q8-relu].
_REPORTED_ISAS = ("amx", "avx512", "avx2", "scalar", "avx512vnni", "avx512bf16", "avxvnni", "numba")
_isa_counts: dict[str, dict[str, int]] = {}


def _cpu_line() -> str:
    fields = {}
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                key, _, value = line.partition(":")
                fields.setdefault(key.strip(), value.strip())
                if not line.strip():
                    break
    except OSError:
        return "CPU: /proc/cpuinfo not readable"
    flags = set(fields.get("flags", "").split())
    simd = [f for f in ("avx2", "fma", "avx512f", "avx512bw", "avx512_vnni", "avx512_bf16", "avx_vnni", "amx_tile",
                        "amx_int8", "amx_bf16") if f in flags]
    name, vendor = fields.get("model name", "?"), fields.get("vendor_id", "?")
    return (f"CPU: {name} ({vendor}, family {fields.get('cpu family', '?')}, model {fields.get('model', '?')}); "
            f"{' '.join(simd) or 'no AVX2'}")


def pytest_report_header(config):
    return _cpu_line()


def pytest_runtest_logreport(report):
    if not (report.when == "call" or (report.when == "setup" and report.skipped)) or "[" not in report.nodeid:
        return
    params = report.nodeid[report.nodeid.index("[") + 1:-1].split("-")
    for isa in (p for p in params if p in _REPORTED_ISAS):
        counts = _isa_counts.setdefault(isa, {"executed": 0, "skipped": 0})
        counts["skipped" if report.skipped else "executed"] += 1


def pytest_terminal_summary(terminalreporter):
    if not _isa_counts:
        return
    terminalreporter.write_sep("-", "ISAs and kernels exercised (from test IDs)")
    terminalreporter.write_line(_cpu_line())
    for isa in _REPORTED_ISAS:
        counts = _isa_counts.get(isa)
        if counts:
            terminalreporter.write_line(f"{isa}: {counts['executed']} tests executed, {counts['skipped']} skipped")


@pytest.fixture
def tiny_config(mnist_dir, tmp_path):
    """make(**overrides) -> a TrainConfig small enough to train in a second or two (hidden 32, 640 MNIST images)."""
    from aefast.train.config import TrainConfig

    def make(**overrides):
        base = dict(hidden=(32,), latent=8, epochs=2, batch_size=64, lr=3e-3, train_limit=640, val_size=256,
                    test_limit=256, xla=False, data_dir=str(mnist_dir), out=str(tmp_path), name="run")
        return TrainConfig(**{**base, **overrides})
    return make


# --- Every test leaves the process's signal state as it found it: SIGINT's handler, the main thread's blocked
# signals and the wakeup fd. A test (or a library it drives) that leaves another SIGINT handler installed changes
# what Ctrl-C does in every later test; this check fails the test that leaked, restores the state, and so keeps the
# later tests' outcome independent of the order.
def _signal_state() -> tuple:
    import signal

    wakeup_fd = signal.set_wakeup_fd(-1)
    signal.set_wakeup_fd(wakeup_fd)
    return signal.getsignal(signal.SIGINT), frozenset(signal.pthread_sigmask(signal.SIG_BLOCK, [])), wakeup_fd


def _restore_signal_state(state: tuple) -> None:
    import signal

    handler, blocked, wakeup_fd = state
    if handler is not None:   # None: a handler installed from C, which Python cannot reinstall
        signal.signal(signal.SIGINT, handler)
    signal.pthread_sigmask(signal.SIG_SETMASK, blocked)
    signal.set_wakeup_fd(wakeup_fd)


@pytest.fixture
def python_sigint_handler():
    """Python's own SIGINT handler for the test, whatever the process started with: a test that expects Ctrl-C to
    raise KeyboardInterrupt needs it. The suite does not always start with it: as a background job of a
    non-interactive shell (`pytest ... &`, `nohup pytest`) SIGINT starts ignored, which Python keeps, and there
    signal.raise_signal and _thread.interrupt_main do nothing ("DID NOT RAISE KeyboardInterrupt")."""
    import signal

    old = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, old)


@pytest.fixture(autouse=True)
def _signal_state_unchanged(request):
    before = _signal_state()
    yield
    after = _signal_state()
    if after != before:
        _restore_signal_state(before)
        names = ("SIGINT handler", "blocked signals", "wakeup fd")
        changed = "; ".join(f"{n}: {b!r} -> {a!r}" for n, b, a in zip(names, before, after) if a != b)
        pytest.fail(f"{request.node.nodeid} left the signal state changed ({changed}); restored", pytrace=False)
