"""Keep the peers' start-up chatter off the benchmark's terminal (aefast._quiet: TensorFlow's Abseil lines, the
cuInit error, LiteRT's XNNPACK notice, PyTorch's "No CUDA runtime", ONNX Runtime's pre-processing advice). They are
written while a contender is built and first run (`BuildContext.prepare`), many by C++ straight to fd 2. Within
`native_chatter_filtered()` fd 2, Python's sys.stderr included, passes through the streaming filter: errors, crash
reports and anything unexpected still show, as they are written. Setting AEFAST_BENCH_VERBOSE=1 (or `--verbose`)
turns the filter off.
"""
from __future__ import annotations

import contextlib
import os
from typing import Iterator

from .._quiet import CHATTER, drop_chatter, fd2_filtered

__all__ = ["CHATTER", "VERBOSE_ENV", "drop_chatter", "native_chatter_filtered"]

VERBOSE_ENV = "AEFAST_BENCH_VERBOSE"


@contextlib.contextmanager
def native_chatter_filtered() -> Iterator[None]:
    """Within the block, what is written to fd 2 (C, C++ and a Python sys.stderr that is fd 2) reaches the real
    stderr without its chatter lines. A no-op when AEFAST_BENCH_VERBOSE is set."""
    if os.environ.get(VERBOSE_ENV):
        yield
        return
    with fd2_filtered():
        yield
