"""pytest-benchmark suite: `pytest bench/ --benchmark-only` (not part of the normal test run: testpaths=tests).

The contenders, their checks and the models are aefast.bench's (the same code `python -m aefast.bench` runs).
Options: --bench-model PATH (default: aefast/models/default.safetensors, else random weights), --bench-wide (also the
784-10000-100-10000-784 model), --bench-wide-model PATH. OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE are left as they are
here (the BLAS kernel is recorded in machine_info); `python -m aefast.bench` clears them for its NumPy figures.
The terminal table shows fewer columns than pytest-benchmark's default (IMAGE_COLUMNS, unless --benchmark-columns
is given), and the session ends with images/s per test, grouped by cell (from each test's extra_info).
"""
from __future__ import annotations

import pytest

from aefast.bench.contenders import BuildContext
from aefast.bench.machine import describe_machine
from aefast.bench.models import DEFAULT_MODEL_PATH, DEFAULT_SIZES, WIDE_SIZES, input_images, load_bench_model
from aefast.bench.runner import BATCHES


# pytest-benchmark's table, narrowed so its lines fit a terminal: seconds per call (median, spread) and rounds.
IMAGE_COLUMNS = ["median", "iqr", "rounds"]


def pytest_configure(config):
    if not any(a.startswith("--benchmark-columns") for a in config.invocation_params.args) \
            and hasattr(config.option, "benchmark_columns"):
        config.option.benchmark_columns = IMAGE_COLUMNS


def pytest_terminal_summary(terminalreporter, config):
    """One line per benchmarked test: its group, contender and images/s (median), fastest first in each group."""
    session = getattr(config, "_benchmarksession", None)
    rows = [b for b in getattr(session, "benchmarks", []) if "images_per_s" in b.extra_info]
    if not rows:
        return
    terminalreporter.section("images/s (median; extra_info of each test)")
    for group in dict.fromkeys(b.group for b in rows):
        terminalreporter.write_line(group)
        for b in sorted((b for b in rows if b.group == group), key=lambda b: -b.extra_info["images_per_s"]):
            info = b.extra_info
            terminalreporter.write_line(f"  {info['contender']:<32} {info['precision']:<6} "
                                        f"{info['images_per_s']:>14,.0f}")


def pytest_addoption(parser):
    group = parser.getgroup("aefast benchmarks")
    group.addoption("--bench-model", default=None, help="default-shape model file (default: the shipped model)")
    group.addoption("--bench-wide", action="store_true", help="also benchmark the wide model")
    group.addoption("--bench-wide-model", default=None, help="wide model file (default: random weights)")


def pytest_generate_tests(metafunc):
    if "model_name" in metafunc.fixturenames:
        names = ["default"] + (["wide"] if metafunc.config.getoption("--bench-wide") else [])
        metafunc.parametrize("model_name", names, scope="session")


def pytest_benchmark_update_machine_info(config, machine_info):
    machine_info["aefast"] = describe_machine()


@pytest.fixture(scope="session")
def bench_context(request):
    """model name -> its BuildContext (built once per session, shared by every test)."""
    contexts = {}

    def get(name: str) -> BuildContext:
        if name not in contexts:
            if name == "wide":
                model = load_bench_model("wide", request.config.getoption("--bench-wide-model"), WIDE_SIZES)
            else:
                model = load_bench_model("default", request.config.getoption("--bench-model") or DEFAULT_MODEL_PATH,
                                         DEFAULT_SIZES)
            images, source = input_images(model.weights.input_size, max(BATCHES))
            contexts[name] = BuildContext(model.weights, images, f"{model.source}; inputs: {source}")
        return contexts[name]
    return get
