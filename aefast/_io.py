"""Atomic file writes: a reader never sees a half-written file under its final name."""
from __future__ import annotations

import contextlib
import errno
import math
import os
import signal
import shutil
import tempfile
import threading
from pathlib import Path
from typing import IO, Iterator


def _current_umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


# mkstemp creates 0600 files; finished files get the mode a plain open() would give them.
_FILE_MODE = 0o666 & ~_current_umask()


@contextlib.contextmanager
def _sigint_deferred() -> Iterator[None]:
    """A SIGINT that arrives inside the block is handled when the block ends, by the handler that was in place (for
    Python's default one: KeyboardInterrupt raised there). Masking the signal would not do: the kernel may deliver a
    process-directed SIGINT to any thread that does not mask it, and Python then runs the handler in the main thread
    at once. Only the main thread may set handlers, and only there do they run, so other threads need nothing."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    received: list = []
    previous = signal.signal(signal.SIGINT, lambda signum, frame: received.append(frame))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
        if received:
            if callable(previous):
                previous(signal.SIGINT, received[0])
            elif previous == signal.SIG_DFL:
                os.kill(os.getpid(), signal.SIGINT)


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """A temp file path beside `path` to write (by any means); on clean exit the file is fsynced and renamed over
    `path`. On any exception (KeyboardInterrupt included) the temp file is removed and `path` is untouched."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = None
    try:
        # The temp file's name is known (tmp set) before a Ctrl-C can land, so the cleanup below always sees it.
        with _sigint_deferred():
            fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
            os.close(fd)
        yield Path(tmp)
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.chmod(tmp, _FILE_MODE)
        os.replace(tmp, path)
    except BaseException:
        if tmp is not None:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
        raise


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike, mode: str = "wb") -> Iterator[IO]:
    """Open a temp file beside `path`; on clean exit fsync it and rename it over `path` (see atomic_path)."""
    with atomic_path(path) as tmp, open(tmp, mode) as f:
        yield f


def write_bytes_atomic(path: str | os.PathLike, data: bytes) -> Path:
    with atomic_write(path, "wb") as f:
        f.write(data)
    return Path(path)


def write_text_atomic(path: str | os.PathLike, text: str) -> Path:
    return write_bytes_atomic(path, text.encode("utf-8"))


def reserve_space(path: str | os.PathLike, start: int, length: int, *, shown: str | os.PathLike | None = None) -> None:
    """Allocate disk blocks for bytes [start, start + length) of the existing file `path`, so that writes through a
    memory map of them cannot fail: a store into a page of a sparse file that the disk has no room for raises SIGBUS
    and kills the process, where write() raises ENOSPC. Raises DiskFullError naming `shown` (default `path`), the
    file's size and the bytes free. The contents are left as they are (posix_fallocate); where the platform lacks
    it, the range is zero-filled with write()."""
    from .errors import DiskFullError

    shown = path if shown is None else shown
    free = shutil.disk_usage(os.path.dirname(os.path.abspath(path))).free
    try:
        with open(path, "rb+") as f:
            if hasattr(os, "posix_fallocate"):
                os.posix_fallocate(f.fileno(), start, length)
            else:
                f.seek(start)
                zeros = bytes(1 << 20)
                for done in range(0, length, len(zeros)):
                    f.write(zeros[:min(len(zeros), length - done)])
                f.flush()
    except OSError as e:
        if e.errno in (errno.ENOSPC, errno.EDQUOT):
            raise DiskFullError(shown, start + length, free) from None
        raise


def create_npy(path: str | os.PathLike, shape: tuple[int, ...], dtype, *, shown: str | os.PathLike | None = None):
    """A new .npy file of `shape` and `dtype` at `path` with its disk space reserved (reserve_space), opened as a
    writable memory map: filling it cannot crash on a full disk. Raises DiskFullError (names `shown`) instead."""
    import numpy as np
    from .errors import DiskFullError

    dtype = np.dtype(dtype)
    nbytes = math.prod(shape) * dtype.itemsize
    try:
        array = np.lib.format.open_memmap(path, mode="w+", dtype=dtype, shape=tuple(shape))
    except OSError as e:
        if e.errno not in (errno.ENOSPC, errno.EDQUOT):
            raise
        free = shutil.disk_usage(os.path.dirname(os.path.abspath(path))).free
        raise DiskFullError(path if shown is None else shown, nbytes, free) from None
    if nbytes:
        reserve_space(path, array.offset, nbytes, shown=shown)
    return array
