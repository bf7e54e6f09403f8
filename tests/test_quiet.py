"""The fd-2 chatter filter (aefast._quiet), through each entry point that uses it: chatter lines are hidden, every
other line reaches the real stderr in order, and what a process writes as it dies inside the filter (faulthandler's
dump on SIGSEGV) is not lost."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest

from aefast._quiet import CHATTER, drop_chatter, fd2_filtered

# entry point -> the `with` statement that opens its filter in a child process
ENTRY_POINTS = {
    "aefast._quiet": "from aefast._quiet import fd2_filtered as f\nblock = f()",
    "aefast.bench.quiet": "from aefast.bench.quiet import native_chatter_filtered as f\nblock = f()",
    "aefast.train.quiet": "from aefast.train.quiet import tensorflow_quiet as f\nblock = f()",
}
CHATTER_LINES = [b"WARNING: All log messages before absl::InitializeLog() is called are written to STDERR\n",
                 b"I0000 00:00:1796669606.646252   16963 port.cc:153] oneDNN custom operations are on.\n",
                 b"E0000 00:00:1796669617.919566   16963 cuda_platform.cc:52] failed call to cuInit: INTERNAL\n",
                 b"INFO: Created TensorFlow Lite XNNPACK delegate for CPU.\n",
                 b"W1207 18:53:06.194000 16259 torch/utils/cpp_extension.py:183] No CUDA runtime is found\n",
                 b"WARNING:root:Please consider to run pre-processing before quantization. Refer to example\n"]
KEPT_LINES = [b"E0000 00:00:1.5 1 session.cc:10] a real error\n", b"INFO: something else\n"]


def _child(entry: str, body: str) -> subprocess.CompletedProcess:
    code = f"import os, sys\n{ENTRY_POINTS[entry]}\nwith block:\n" + "".join(f"    {line}\n" for line in body.splitlines())
    env = {k: v for k, v in os.environ.items() if k not in ("TF_CPP_MIN_LOG_LEVEL", "AEFAST_BENCH_VERBOSE")}
    return subprocess.run([sys.executable, "-c", code], capture_output=True, timeout=120, env=env)


def test_chatter_lines_match_and_others_do_not():
    assert all(CHATTER.match(line) for line in CHATTER_LINES)
    assert not any(CHATTER.match(line) for line in KEPT_LINES)
    mixed = b"".join([CHATTER_LINES[0], KEPT_LINES[0], *CHATTER_LINES[1:], KEPT_LINES[1]])
    assert drop_chatter(mixed) == b"".join(KEPT_LINES)


@pytest.mark.parametrize("entry", ENTRY_POINTS)
def test_chatter_is_hidden_and_the_rest_kept_in_order(entry):
    lines = [CHATTER_LINES[0], KEPT_LINES[0], *CHATTER_LINES[1:], KEPT_LINES[1], b"a line without its end"]
    run = _child(entry, "\n".join(f"os.write(2, {line!r})" for line in lines) + "\nos.write(2, b'; ended')")
    assert run.returncode == 0, run.stderr
    assert run.stderr == b"".join(KEPT_LINES) + b"a line without its end; ended"


@pytest.mark.parametrize("entry", ENTRY_POINTS)
def test_a_segfault_inside_the_filter_shows_faulthandlers_dump(entry):
    run = _child(entry, "os.write(2, b'before the crash\\n')\n"
                        "import ctypes, faulthandler\nfaulthandler.enable()\nctypes.string_at(0)")
    assert run.returncode == -11
    err = run.stderr.decode(errors="replace")
    assert "before the crash\n" in err and "Fatal Python error: Segmentation fault" in err, err
    assert "in string_at" in err, err


def test_lines_reach_the_real_stderr_while_the_block_runs():
    """Streaming, not held to the end: the child waits inside the block until the parent has read its line."""
    code = ("import sys, os\nfrom aefast._quiet import fd2_filtered\nwith fd2_filtered():\n"
            "    os.write(2, b'I0000 00:00:1.5 1 port.cc:1] chatter\\nwaiting\\n')\n    sys.stdin.readline()\n"
            "    os.write(2, b'done\\n')\n")
    proc = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        assert proc.stderr.readline() == b"waiting\n"   # would block to the timeout if the filter held its input
        proc.stdin.write(b"go\n")
        proc.stdin.close()
        assert proc.stderr.read() == b"done\n"
        assert proc.wait(timeout=60) == 0
    finally:
        proc.kill()
        proc.wait()


def test_the_filter_follows_fd2_and_restores_it(capfd):
    before = os.fstat(2).st_ino
    with fd2_filtered():
        assert os.fstat(2).st_ino != before
        for line in [CHATTER_LINES[1], KEPT_LINES[0], CHATTER_LINES[3], KEPT_LINES[1]]:
            os.write(2, line)
    assert os.fstat(2).st_ino == before
    assert capfd.readouterr().err == b"".join(KEPT_LINES).decode()


def test_without_a_working_interpreter_fd2_is_left_unfiltered(monkeypatch, capfd, tmp_path):
    """sys.executable that is no Python (an embedding program): the filter process never answers, so fd 2 stays as
    it is rather than becoming a pipe nobody reads."""
    import aefast._quiet as quiet

    monkeypatch.setattr(quiet, "_SYNC_TIMEOUT_S", 2.0)
    not_python = tmp_path / "not-python"
    not_python.write_text("#!/bin/sh\ncat > /dev/null\n")   # reads the pipe, never acknowledges
    not_python.chmod(0o755)
    monkeypatch.setattr(sys, "executable", str(not_python))
    quiet._close_filter()
    before = os.fstat(2).st_ino
    with fd2_filtered():
        assert os.fstat(2).st_ino == before
        os.write(2, CHATTER_LINES[1])
    quiet._close_filter()
    assert capfd.readouterr().err == CHATTER_LINES[1].decode()
