"""Files too big for memory: a .npy or Zarr input read chunk by chunk by the workers, the output written chunk by
chunk into a temporary .npy / Zarr next to the destination, renamed into place only when every chunk is written.

The workers open the input and the temporary output by path: on a cluster both must be on storage every worker
sees (NFS, a mounted bucket, ...), as with any Dask file I/O. Every path is made absolute on the client (a worker's
working folder is not the client's), and before any block runs each worker must see the input (same size and
modification time as the client sees) and the temporary output the client created; otherwise ClusterError names
the workers and the paths and nothing is written.
"""
from __future__ import annotations

import concurrent.futures
import contextlib
import errno
import logging
import os
import shutil
import time
import uuid
from pathlib import Path

import dask.array as da
import numpy as np
from dask.base import tokenize

from .._io import create_npy
from ..errors import ClusterError, DataFileError, DiskFullError
from . import arrays

OPERATIONS = ("compress", "reconstruct", "score")
DEFAULT_CHUNK_ROWS = 8192   # 8192 MNIST images: 6.4 MB uint8 in, 25.7 MB float32 out per reconstruct block
CONNECT_TIMEOUT_S = 10      # a scheduler address that refuses or does not answer fails after this long
WORKER_WAIT_S = 60          # a cluster without workers (an adaptive one scaling up) is given this long to get one
SETTLE_TIMEOUT_S = 120      # after a failed block, how long the client waits for the job's running blocks to end


class NpyRows:
    """A .npy file as an array-like for dask.array.from_array: pickles as its path, opens a read-only memory map per
    block (so a worker reads only its rows)."""

    def __init__(self, path: str | os.PathLike):
        self.path = str(path)
        mapped = np.load(self.path, mmap_mode="r", allow_pickle=False)
        self.shape, self.dtype, self.ndim = mapped.shape, mapped.dtype, mapped.ndim

    def __getitem__(self, key):
        return np.array(np.load(self.path, mmap_mode="r", allow_pickle=False)[key])


class NpyRowsTarget:
    """A pre-allocated .npy file as a dask.array.store target: each block writes its rows through a memory map.
    The file's disk space is reserved when it is created (on the client), so no worker's write can fault on a full
    disk; DiskFullError names `shown` (the final output) instead."""

    def __init__(self, path: str | os.PathLike, shape: tuple[int, ...], dtype, shown: str | os.PathLike):
        self.path, self.shape, self.dtype = str(path), tuple(shape), np.dtype(dtype)
        create_npy(self.path, self.shape, self.dtype, shown=shown).flush()

    def __setitem__(self, key, value):
        out = np.load(self.path, mmap_mode="r+", allow_pickle=False)
        out[key] = value
        out.flush()


def _absolute(path: str | os.PathLike) -> Path:
    """`path` made absolute against the client's working folder, spelled as given otherwise (symbolic links are
    kept: a worker may reach the same storage through the same link, not through the client's real path)."""
    return Path(path).expanduser().absolute()


def open_images(path: str | os.PathLike, chunk_rows: int = DEFAULT_CHUNK_ROWS) -> da.Array:
    """A .npy file or a Zarr array (directory) as a dask array in row chunks of `chunk_rows`. The path is made
    absolute here: the workers open it, from their own working folder."""
    path = _absolute(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such file or directory")
    if path.is_dir():
        images = da.from_zarr(str(path))
    elif path.suffix == ".npy":
        try:
            rows = NpyRows(path)
        except ValueError as e:
            raise ValueError(f"{path}: not a readable .npy array ({e})") from None
        images = da.from_array(rows, chunks=(chunk_rows, *rows.shape[1:]),
                               name="aefast-npy-" + tokenize(str(path), path.stat().st_mtime_ns),
                               meta=np.empty((0,) * rows.ndim, rows.dtype))
    else:
        raise ValueError(f"{path}: expected a .npy file or a Zarr directory")
    if images.ndim >= 1 and images.shape[0] == 0:
        raise DataFileError(f"{path}: holds no images")
    return images.rechunk({0: chunk_rows})


def _temporary_name(dest: Path) -> Path:
    return dest.with_name(f".{dest.name}.{uuid.uuid4().hex[:12]}.tmp")


def _fingerprint(path: str) -> tuple[int, int] | None:
    """(size, whole seconds of mtime) of the file (for a Zarr directory: of its metadata file), None when it cannot
    be seen. Whole seconds: network file systems agree on those, not always on finer digits."""
    for name in ("", "zarr.json", ".zarray"):
        candidate = os.path.join(path, name) if name else path
        if os.path.isfile(candidate):
            st = os.stat(candidate)
            return st.st_size, st.st_mtime_ns // 1_000_000_000
    return None


def _worker_view(source: str, expected: tuple[int, int] | None, temporary: str) -> list[str]:
    """Run on each worker: what it cannot reach of what the client prepared (empty when all is well)."""
    problems = []
    seen = _fingerprint(source)
    if seen is None:
        problems.append(f"does not see the input {source}")
    elif seen != expected:
        problems.append(f"sees a different file at {source} (size, mtime {seen}; the client's: {expected})")
    folder = os.path.dirname(temporary)
    if not os.path.exists(temporary):
        problems.append(f"does not see the temporary output {temporary} the client created in {folder}")
    elif not os.access(folder, os.W_OK):
        problems.append(f"may not write in {folder}")
    return problems


def check_workers_reach(client, source: Path, temporary: Path) -> None:
    """ClusterError naming each worker that cannot read SOURCE as the client sees it or write beside TEMPORARY.
    The workers present now are checked (after waiting for a first one); a worker that joins later is not."""
    try:
        client.wait_for_workers(1, timeout=WORKER_WAIT_S)
    except TimeoutError:
        raise ClusterError(f"the Dask cluster at {client.scheduler.address} has no workers (none joined within "
                           f"{WORKER_WAIT_S} s)") from None
    reports = client.run(_worker_view, str(source), _fingerprint(str(source)), str(temporary))
    bad = [f"worker {worker} {'; '.join(problems)}" for worker, problems in sorted(reports.items()) if problems]
    if bad:
        raise ClusterError("the Dask workers cannot reach the job's files (input and output must be on storage "
                           "every worker sees, under the same path): " + "; ".join(bad))


def write_array(result: da.Array, dest: str | os.PathLike, *, client=None, source: str | os.PathLike | None = None
                ) -> Path:
    """Compute `result` block by block into DEST (.npy file, or a Zarr directory for any other name), atomically:
    the blocks go to a temporary sibling, renamed to DEST once all are written. client (a distributed.Client) with
    source (the input path): each worker must reach both before any block runs (check_workers_reach)."""
    dest = _absolute(dest)
    if dest.exists():
        raise FileExistsError(f"{dest} already exists; remove it or choose another output name")
    if not dest.parent.is_dir():
        raise FileNotFoundError(f"{dest.parent}: the output's folder does not exist")
    tmp = _temporary_name(dest)
    try:
        try:
            if dest.suffix == ".npy":
                store = da.store(result, NpyRowsTarget(tmp, result.shape, result.dtype, dest), lock=False,
                                 compute=False)
            else:
                store = da.to_zarr(result, str(tmp), compute=False)   # writes the metadata here, on the client
            if client is not None:
                check_workers_reach(client, _absolute(source), tmp)
            _compute_settled(store, client)
        except OSError as e:   # a Zarr chunk or its metadata on a full disk (a .npy's space is reserved up front)
            if e.errno in (errno.ENOSPC, errno.EDQUOT) and not isinstance(e, DiskFullError):
                free = shutil.disk_usage(dest.parent).free
                raise DiskFullError(dest, result.nbytes, free, upper_bound=True) from None
            raise
        if dest.suffix == ".npy":
            with open(tmp, "rb+") as f:
                os.fsync(f.fileno())
        os.replace(tmp, dest)
    finally:
        with contextlib.suppress(FileNotFoundError):
            shutil.rmtree(tmp) if tmp.is_dir() else tmp.unlink()
    return dest


_BUSY_STATES = frozenset({"executing", "long-running", "cancelled", "resumed", "ready", "constrained", "waiting"})


def _busy_keys(dask_worker) -> list:
    """Run on each worker: the keys of the tasks it is running, or holds ready to run (a cancel reaches a worker
    asynchronously: a queued block could still start)."""
    return [key for key, ts in dask_worker.state.tasks.items() if ts.state in _BUSY_STATES]


def _compute_settled(store, client) -> None:
    """Compute `store`; when it fails, return (raise) only once no block of it is still running. A failed job's
    other blocks keep running on their threads, and a Zarr block writing after the temporary is removed recreates
    its folders: the output's temporary would be left behind."""
    if client is None:
        with concurrent.futures.ThreadPoolExecutor(os.cpu_count() or 1) as pool:
            try:
                store.compute(scheduler="threads", pool=pool)
            except BaseException:
                pool.shutdown(wait=True, cancel_futures=True)
                raise
        return
    future = client.compute(store, optimize_graph=False)   # unfused: the workers run the graph's own keys
    try:
        future.result()
    except BaseException:
        ours = set(store.__dask_graph__())
        with contextlib.suppress(*_cluster_errors(), OSError, TimeoutError):
            client.cancel([future], force=True)
            deadline = time.monotonic() + SETTLE_TIMEOUT_S
            while time.monotonic() < deadline:
                running = {key for keys in client.run(_busy_keys).values() for key in keys}
                if not running & ours:
                    break
                time.sleep(0.05)
        raise


def _cluster_errors() -> tuple[type[BaseException], ...]:
    """The exceptions by which distributed reports a lost scheduler, a dead worker or a closed connection."""
    from distributed.client import FutureCancelledError
    from distributed.comm.core import CommClosedError
    from distributed.scheduler import KilledWorker

    return FutureCancelledError, KilledWorker, CommClosedError, concurrent.futures.CancelledError


def _connect(address: str):
    from distributed import Client

    try:
        return Client(address, timeout=CONNECT_TIMEOUT_S)
    except (OSError, ValueError) as e:   # refused, timed out, or a malformed address
        raise ClusterError(f"cannot connect to the Dask scheduler at {address} within {CONNECT_TIMEOUT_S} s "
                           f"({type(e).__name__}: {e})") from None


def _current_client():
    """The distributed.Client dask computes on by default, or None (local threads)."""
    try:
        from distributed import default_client
    except ImportError:
        return None
    try:
        return default_client()
    except ValueError:
        return None


def process_file(operation: str, model, source: str | os.PathLike, dest: str | os.PathLike, *,
                 address: str | None = None, chunk_rows: int = DEFAULT_CHUNK_ROWS, precision: str = "fp32",
                 backend: str = "auto", threads: int | None = 1, isa: str = "auto", clip: bool = False,
                 uint8: bool = False) -> Path:
    """Run `operation` (compress | reconstruct | score) of `model` over the images in SOURCE (.npy or Zarr), writing
    DEST chunk by chunk: what `aefast compress|reconstruct|score -o DEST` writes for the same input, shape and dtype
    included (reconstruct: (N, *input_shape) float32, or uint8 pixels 0..255 with uint8=True, which implies clip).
    address: a Dask scheduler ("tcp://host:8786"); None uses the current Dask client if any, else local threads.
    Returns DEST made absolute. ClusterError when the scheduler cannot be reached or is lost, a worker dies, or the
    workers cannot reach SOURCE or DEST's folder; nothing is written then. This is what `python -m aefast.dask` (and
    `aefast ... --dask`) call."""
    if operation not in OPERATIONS:
        raise ValueError(f"operation must be one of {OPERATIONS}, got {operation!r}")
    if isinstance(chunk_rows, bool) or not isinstance(chunk_rows, int) or chunk_rows < 1:
        raise ValueError(f"chunk_rows must be a positive integer, got {chunk_rows!r}")
    if uint8 and operation != "reconstruct":
        raise ValueError(f"uint8=True applies to reconstruct only, not {operation}")
    source = _absolute(source)
    images = open_images(source, chunk_rows)
    engine = arrays.engine_for(model, precision, backend, threads, isa)
    if operation == "reconstruct":
        result = arrays.reconstruct(images, engine, clip=clip or uint8)
        result = result.reshape(result.shape[0], *engine.input_shape)   # the column chunk is whole: no rechunk
        if uint8:
            result = da.round(result * 255).astype(np.uint8)   # = the local command's rounding, in float32
    else:
        result = getattr(arrays, operation)(images, engine)
    client = _connect(address) if address is not None else _current_client()
    try:
        return write_array(result, dest, client=client, source=source)
    except _cluster_errors() as e:
        where = address or (client.scheduler.address if client is not None else "local threads")
        cause = " ".join(f"{type(e).__name__}: {e}".split())   # one line: distributed's messages span several
        raise ClusterError(f"the Dask cluster at {where} failed during the job ({cause}); nothing was written"
                           ) from None
    finally:
        if address is not None:
            _close_quietly(client)


def _close_quietly(client) -> None:
    """Close a client we opened. After a lost scheduler, closing cancels the client's reconnection attempts, which
    distributed logs as an ERROR with a traceback: the failure is already reported as one ClusterError line."""
    client_log = logging.getLogger("distributed.client")
    level = client_log.level
    client_log.setLevel(logging.CRITICAL)
    try:
        with contextlib.suppress(*_cluster_errors(), OSError, TimeoutError):
            client.close(timeout=CONNECT_TIMEOUT_S)
    finally:
        client_log.setLevel(level)
