"""aefast._io.atomic_path leaves no temp file behind, whenever a Ctrl-C lands."""
import os
import signal
import tempfile

import pytest

from aefast import _io


@pytest.fixture
def sigint_after_mkstemp(monkeypatch):
    """atomic_path's mkstemp raises SIGINT right after it created the file (the window before the cleanup's try)."""
    real_mkstemp = tempfile.mkstemp

    def mkstemp_then_sigint(*args, **kwargs):
        result = real_mkstemp(*args, **kwargs)
        # raise_signal: delivered to this (main) thread, whose C handler runs before the call returns, so Python
        # runs its handler at the next check, still inside atomic_path's deferred block. os.kill is process-directed:
        # the kernel may run the C handler in another thread (TensorFlow's, OpenBLAS's) after the block has ended.
        signal.raise_signal(signal.SIGINT)
        return result

    monkeypatch.setattr(_io.tempfile, "mkstemp", mkstemp_then_sigint)


def test_ctrl_c_while_the_temp_file_is_created_leaves_nothing(tmp_path, sigint_after_mkstemp, python_sigint_handler):
    """A Ctrl-C in that window must not leak the temp file."""
    with pytest.raises(KeyboardInterrupt):
        _io.write_bytes_atomic(tmp_path / "out.bin", b"data")
    assert sorted(os.listdir(tmp_path)) == []


def test_ctrl_c_during_the_write_leaves_nothing(tmp_path):
    with pytest.raises(KeyboardInterrupt):
        with _io.atomic_write(tmp_path / "out.bin") as f:
            f.write(b"half")
            raise KeyboardInterrupt
    assert sorted(os.listdir(tmp_path)) == []


def test_clean_exit_renames_with_the_plain_open_mode(tmp_path):
    path = _io.write_text_atomic(tmp_path / "a" / "out.txt", "text")
    assert path.read_text() == "text"
    assert sorted(os.listdir(path.parent)) == ["out.txt"]
    assert path.stat().st_mode & 0o777 == _io._FILE_MODE


def test_an_ignored_sigint_stays_ignored_inside_atomic_path(tmp_path, sigint_after_mkstemp):
    """With SIGINT ignored (a background job, nohup), a SIGINT inside the deferred block is dropped, as it would be
    without the block: the write completes."""
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        _io.write_bytes_atomic(tmp_path / "out.bin", b"data")
        assert signal.getsignal(signal.SIGINT) == signal.SIG_IGN
    finally:
        signal.signal(signal.SIGINT, previous)
    assert sorted(os.listdir(tmp_path)) == ["out.bin"] and (tmp_path / "out.bin").read_bytes() == b"data"


def test_the_ctrl_c_tests_pass_in_a_run_that_starts_with_sigint_ignored():
    """The suite's outcome does not depend on how it was started: `pytest ... &` from a non-interactive shell starts
    with SIGINT ignored (as here, through preexec_fn), and the Ctrl-C tests above must still see KeyboardInterrupt."""
    import subprocess
    import sys
    from pathlib import Path

    run = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:randomly", __file__, "-k",
                          "not starts_with_sigint_ignored"], capture_output=True, text=True, timeout=300,
                         cwd=Path(__file__).resolve().parent.parent,
                         preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN))
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-2000:]
