"""Every contender on every operation and batch size, grouped as "<model> <op> batch=<n>"; each test's
extra_info holds images/s (median and best), and the session ends with one readable images/s line per test
(conftest.py).

Each contender is checked against the engine's fp32 answer before it is timed, and skipped (with the reason) when
its package is missing or the check fails.
"""
from __future__ import annotations

import re

import pytest

from aefast.bench.contenders import Skipped
from aefast.bench.contenders.registry import CONTENDERS
from aefast.bench.models import OPERATIONS, flops_per_image
from aefast.bench.runner import BATCHES
from aefast.bench.timing import settle


def contender_id(name: str) -> str:
    """A test ID of plain words and dashes: "openvino static int8 (nncf)" -> "openvino-static-int8-nncf"."""
    return re.sub(r"[^\w.=]+", "-", name).strip("-")


@pytest.mark.parametrize("batch", BATCHES)
@pytest.mark.parametrize("op", OPERATIONS)
@pytest.mark.parametrize("contender", CONTENDERS, ids=lambda c: contender_id(c.name))
def test_forward(benchmark, bench_context, model_name, contender, op, batch):
    ctx = bench_context(model_name)
    try:
        prepared = ctx.prepare(contender, op, batch)
    except Skipped as e:
        pytest.skip(f"{contender.name}: {e}")
    benchmark.group = f"{model_name} {op} batch={batch}"
    benchmark.extra_info.update(
        contender=contender.name, family=contender.family, precision=contender.precision, batch=batch,
        flops_per_image=flops_per_image(ctx.weights, op), rel_rms_error=prepared.rel_rms_error,
        reference=prepared.reference, model=ctx.description, **prepared.details)
    settle()  # the previous test's thread pool (OpenBLAS spins ~0.1 s) must not run into this one's rounds
    out = benchmark(prepared.run)
    settle()
    stats = benchmark.stats.stats
    benchmark.extra_info.update(images_per_s=batch / stats.median, best_images_per_s=batch / stats.min)
    assert out.shape[0] == batch
