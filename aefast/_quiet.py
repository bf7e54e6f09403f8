"""Keep native libraries' start-up chatter off the terminal: TensorFlow's Abseil INFO/WARNING lines (oneDNN, CUDA
stubs, CPU features), the cuInit error line of a machine without a GPU, LiteRT's "Created TensorFlow Lite XNNPACK
delegate" line, PyTorch's "No CUDA runtime" line and ONNX Runtime quantization's "consider to run pre-processing"
warning. Many are written by C++ straight to file descriptor 2, where neither TF_CPP_MIN_LOG_LEVEL (Abseil ignores
it before its log is initialised) nor Python's warning filters reach.

Within `fd2_filtered()`, fd 2 is a pipe read by a filter process (this interpreter, `-I -S`, started once per
process and destination) that writes every line that is not chatter to the real stderr as it arrives, in order;
a line still incomplete after 50 ms is passed on as it is. The filter is another process so that what this process
writes just before it dies (faulthandler's dump on SIGSEGV, a C++ abort message, a Python traceback) still reaches
the real stderr: the filter reads the pipe to its end after the writer has gone. On leaving the block the filter
has written everything the block wrote before the real stderr is back on fd 2.
"""
from __future__ import annotations

import atexit
import contextlib
import os
import re
import select
import subprocess
import sys
import threading
from typing import Iterator

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

_SYNC = b"\x01aefast-stderr-filter-sync\x02"   # a line the filter answers with one byte on its acknowledgement pipe
_SYNC_TIMEOUT_S = 10.0
# argv: the chatter pattern (latin-1), the sync line (latin-1), the acknowledgement fd. stdin: the pipe; stdout:
# the real stderr. SIGINT is ignored: a terminal's Ctrl-C goes to the whole process group, and the filter must
# outlive it to pass on what the program prints while it stops.
_FILTER_SOURCE = r"""
import os, re, select, signal, sys
signal.signal(signal.SIGINT, signal.SIG_IGN)
chatter, sync, ack = re.compile(sys.argv[1].encode("latin-1")), sys.argv[2].encode("latin-1"), int(sys.argv[3])
def put(fd, data):
    while data:
        data = data[os.write(fd, data):]
pending, mid_line = b"", False
while True:
    if pending and not select.select([0], [], [], 0.05)[0]:
        put(1, pending)
        pending, mid_line = b"", True
        continue
    chunk = os.read(0, 65536)
    if not chunk:
        break
    *lines, pending = (pending + chunk).split(b"\n")
    for line in lines:
        if line.endswith(sync):   # sent without a newline before it: what precedes it is an incomplete line
            put(1, line[:-len(sync)])
            put(ack, b"k")
            mid_line = bool(line[:-len(sync)])
            continue
        if mid_line or not chatter.match(line):
            put(1, line + b"\n")
        mid_line = False
put(1, pending)
"""


def drop_chatter(text: bytes) -> bytes:
    """`text` without its chatter lines (whole lines, CHATTER)."""
    return b"".join(line for line in text.splitlines(keepends=True) if not CHATTER.match(line))


def _identity(fd: int) -> tuple[int, int]:
    st = os.fstat(fd)
    return st.st_dev, st.st_ino


class _Filter:
    """A filter process reading a pipe and writing to `dest_fd`'s file."""

    def __init__(self, dest_fd: int):
        self.pid, self.dest = os.getpid(), _identity(dest_fd)
        read_fd, self.write_fd = os.pipe()
        ack_read, ack_write = os.pipe()
        try:
            self.proc = subprocess.Popen(
                [sys.executable, "-I", "-S", "-c", _FILTER_SOURCE, CHATTER.pattern.decode("latin-1"),
                 _SYNC.decode("latin-1"), str(ack_write)],
                stdin=read_fd, stdout=dest_fd, stderr=dest_fd, pass_fds=(ack_write,), start_new_session=True)
        except BaseException:
            os.close(self.write_fd)
            os.close(ack_read)
            raise
        finally:
            os.close(read_fd)
            os.close(ack_write)
        self.ack_read = ack_read
        self.pipe = _identity(self.write_fd)
        if not self.sync():   # not answering (sys.executable is no Python): filtering would block fd 2's writers
            self.proc.kill()
            self.proc.wait()
            os.close(self.write_fd)
            os.close(self.ack_read)
            raise OSError(f"the stderr filter process ({sys.executable}) did not answer")

    def sync(self) -> bool:
        """Wait until the filter has written everything sent before this call; False if it did not answer."""
        try:
            os.write(self.write_fd, _SYNC + b"\n")
            if select.select([self.ack_read], [], [], _SYNC_TIMEOUT_S)[0]:
                return os.read(self.ack_read, 1) == b"k"
        except OSError:
            pass
        return False

    def close(self) -> None:
        os.close(self.write_fd)   # the filter reads EOF, writes what is left and ends
        try:
            self.proc.wait(timeout=_SYNC_TIMEOUT_S)
        except subprocess.TimeoutExpired:   # a child of ours still holds the pipe: the filter ends after it
            pass
        os.close(self.ack_read)


_lock = threading.RLock()
_filter: _Filter | None = None


def _close_filter() -> None:
    global _filter
    with _lock:
        if _filter is not None and _filter.pid == os.getpid():
            _filter.close()
        _filter = None


atexit.register(_close_filter)


@contextlib.contextmanager
def fd2_filtered(python_stderr_direct: bool = False) -> Iterator[None]:
    """Within the block, fd 2 passes through the chatter filter (see the module doc). `python_stderr_direct`: when
    sys.stderr writes to fd 2, it writes to the real stderr instead for the block (so isatty() and progress bars
    behave), and only C/C++ writes are filtered. A no-op when there is no fd 2 or no filter process can start;
    nested blocks share the outer one's filter."""
    global _filter
    with _lock:
        try:
            sys.stderr.flush()
            dest = _identity(2)
        except (OSError, ValueError, AttributeError):   # no fd 2 (a daemon, an embedded interpreter)
            dest = None
        nested = _filter is not None and _filter.pid == os.getpid() and dest == _filter.pipe
        if dest is not None and not nested:
            if _filter is not None and (_filter.pid != os.getpid() or _filter.dest != dest):
                if _filter.pid == os.getpid():
                    _filter.close()
                _filter = None
            if _filter is None:
                try:
                    _filter = _Filter(2)
                except (OSError, ValueError, subprocess.SubprocessError):   # no interpreter to start: unfiltered
                    dest = None
    if dest is None or nested:
        yield
        return
    saved = os.dup(2)
    python_stderr = sys.stderr
    try:
        redirect_python = python_stderr_direct and python_stderr.fileno() == 2   # False under pytest's capture
    except (AttributeError, OSError, ValueError):
        redirect_python = False
    if redirect_python:
        sys.stderr = open(os.dup(saved), "w", buffering=1, encoding=python_stderr.encoding or "utf-8",
                          errors="backslashreplace")
    with _lock:
        active = _filter
        os.dup2(active.write_fd, 2)
    try:
        yield
    finally:
        with contextlib.suppress(OSError, ValueError, AttributeError):
            sys.stderr.flush()
        with _lock:
            active.sync()   # what the block wrote is out before anything written after it
            os.dup2(saved, 2)
        os.close(saved)
        if redirect_python:
            sys.stderr.close()
            sys.stderr = python_stderr
