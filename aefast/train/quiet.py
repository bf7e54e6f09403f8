"""Keep TensorFlow's C++ start-up chatter (oneDNN, CUDA stubs, CPU features, XLA service lines) off the terminal.

TF_CPP_MIN_LOG_LEVEL alone does not do it: TensorFlow 2.21 logs through Abseil, and Abseil writes every message
logged before absl::InitializeLog() straight to file descriptor 2 whatever the level. So, unless the user asked
for them (--verbose, or their own TF_CPP_MIN_LOG_LEVEL), `tensorflow_quiet` sets the variable and routes fd 2
through a filter thread that drops Abseil's INFO/WARNING lines and passes everything else on unchanged. Python's
own sys.stderr keeps writing to the real terminal (so tqdm bars and isatty() behave), only C/C++ writes are filtered.
"""
from __future__ import annotations

import contextlib
import os
import re
import sys
import threading
from typing import Iterator

LOG_LEVEL_ENV = "TF_CPP_MIN_LOG_LEVEL"
# An Abseil/glog INFO or WARNING line ("I0000 00:00:1795523448.744769   30621 port.cc:153] ..."), the ERROR line a
# machine without a GPU driver gets when TensorFlow probes for one, Abseil's notice about InitializeLog, and the
# second line of TensorFlow's CPU-feature notice.
_CHATTER = re.compile(rb"^(?:[IW]\d{4} \d\d:\d\d:\d+\.\d+ +\d+ [\w.\-/]+:\d+\] "
                      rb"|E\d{4} \d\d:\d\d:\d+\.\d+ +\d+ cuda_platform\.cc:\d+\] failed call to cuInit: "
                      rb"|WARNING: All log messages before absl::InitializeLog\(\) is called"
                      rb"|To enable the following instructions: )")


def _pump(read_fd: int, out_fd: int) -> None:
    """Copy read_fd to out_fd until EOF, dropping whole lines that are chatter (each write is one message)."""
    with os.fdopen(read_fd, "rb", buffering=0) as source:
        while chunk := source.read(65536):
            kept = b"".join(line for line in chunk.splitlines(keepends=True) if not _CHATTER.match(line))
            if kept:
                os.write(out_fd, kept)


@contextlib.contextmanager
def tensorflow_quiet(verbose: bool = False) -> Iterator[None]:
    """Within the block, TensorFlow's C++ INFO/WARNING lines are hidden (see the module doc); a no-op when
    `verbose` or when the user set TF_CPP_MIN_LOG_LEVEL themselves."""
    if verbose or LOG_LEVEL_ENV in os.environ:
        yield
        return
    os.environ[LOG_LEVEL_ENV] = "2"   # read when TensorFlow loads: hides what still goes through TF's own logger
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError):      # no fd 2 (a daemon, an embedded interpreter): nothing to filter
        yield
        return
    read_fd, write_fd = os.pipe()
    python_stderr = sys.stderr
    try:
        redirect_python = python_stderr.fileno() == 2   # False when sys.stderr is captured (pytest, a GUI)
    except (AttributeError, OSError, ValueError):
        redirect_python = False
    if redirect_python:
        sys.stderr = open(os.dup(saved), "w", buffering=1, encoding=python_stderr.encoding or "utf-8",
                          errors="backslashreplace")
    os.dup2(write_fd, 2)
    os.close(write_fd)
    pump = threading.Thread(target=_pump, args=(read_fd, saved), name="aefast-stderr-filter", daemon=True)
    pump.start()
    try:
        yield
    finally:
        sys.stderr.flush()
        os.dup2(saved, 2)          # the pipe's last writer is gone: the pump reads EOF and ends
        pump.join(timeout=5)
        if redirect_python:
            sys.stderr.close()
            sys.stderr = python_stderr
        os.close(saved)
