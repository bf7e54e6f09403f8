"""Keep the peers' start-up chatter off the benchmark's terminal: TensorFlow's Abseil INFO/WARNING lines (oneDNN,
CUDA stubs, CPU features), the cuInit error line of a machine without a GPU, LiteRT's "Created TensorFlow Lite
XNNPACK delegate" line, PyTorch's "No CUDA runtime" line and ONNX Runtime's "consider to run pre-processing"
warning. They are written while a contender is built and first run (`BuildContext.prepare`), many of them by C++
straight to file descriptor 2, where neither TF_CPP_MIN_LOG_LEVEL (Abseil ignores it before its log is
initialised) nor Python's warning filters reach. So within `native_chatter_filtered()` fd 2 goes to a temporary
file, and on exit every line of it that is not chatter is written back to fd 2 in order: errors and anything
unexpected still show. Setting AEFAST_BENCH_VERBOSE=1 (or `--verbose`) turns the filter off.
"""
from __future__ import annotations

import contextlib
import os
import re
import sys
import tempfile
from typing import Iterator

VERBOSE_ENV = "AEFAST_BENCH_VERBOSE"
# An Abseil/glog INFO or WARNING line ("I0000 00:00:1795523448.744769   30621 port.cc:153] ...", also PyTorch's
# "W1207 18:53:06.194000 16259 torch/utils/cpp_extension.py:183] No CUDA runtime ..."), the cuInit ERROR line,
# Abseil's notice about InitializeLog, the second line of TensorFlow's CPU-feature notice, TFLite's delegate notice,
# ONNX Runtime quantization's pre-processing advice (a Python logging line).
CHATTER = re.compile(rb"^(?:[IW]\d{4} \d\d:\d\d:\d+\.\d+ +\d+ [\w.\-/]+:\d+\] "
                     rb"|E\d{4} \d\d:\d\d:\d+\.\d+ +\d+ cuda_platform\.cc:\d+\] failed call to cuInit: "
                     rb"|WARNING: All log messages before absl::InitializeLog\(\) is called"
                     rb"|To enable the following instructions: "
                     rb"|INFO: Created TensorFlow Lite XNNPACK delegate for CPU\."
                     rb"|WARNING:root:Please consider to run pre-processing before quantization\.)")


def drop_chatter(text: bytes) -> bytes:
    """`text` without its chatter lines (whole lines, CHATTER)."""
    return b"".join(line for line in text.splitlines(keepends=True) if not CHATTER.match(line))


@contextlib.contextmanager
def native_chatter_filtered() -> Iterator[None]:
    """Within the block, whatever is written to fd 2 (C, C++ and a Python sys.stderr that is fd 2) is held in a
    temporary file; on exit it is written back to fd 2 without its chatter lines. A no-op when AEFAST_BENCH_VERBOSE
    is set or there is no fd 2."""
    if os.environ.get(VERBOSE_ENV):
        yield
        return
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError, AttributeError):
        yield
        return
    with tempfile.TemporaryFile(prefix="aefast-bench-stderr-") as held:
        os.dup2(held.fileno(), 2)
        try:
            yield
        finally:
            with contextlib.suppress(OSError, ValueError, AttributeError):
                sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            held.seek(0)
            kept = drop_chatter(held.read())
            if kept:
                os.write(2, kept)
