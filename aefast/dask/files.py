"""Files too big for memory: a .npy or Zarr input read chunk by chunk by the workers, the output written chunk by
chunk into a temporary .npy / Zarr next to the destination, renamed into place only when every chunk is written.

The workers open the input and the temporary output by path: on a cluster both must be on storage every worker
sees (NFS, a mounted bucket, ...), as with any Dask file I/O.
"""
from __future__ import annotations

import contextlib
import os
import shutil
import uuid
from pathlib import Path

import dask.array as da
import numpy as np
from dask.base import tokenize

from . import arrays

OPERATIONS = ("compress", "reconstruct", "score")
DEFAULT_CHUNK_ROWS = 8192   # 8192 MNIST images: 6.4 MB uint8 in, 25.7 MB float32 out per reconstruct block


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
    """A pre-allocated .npy file as a dask.array.store target: each block writes its rows through a memory map."""

    def __init__(self, path: str | os.PathLike, shape: tuple[int, ...], dtype):
        self.path, self.shape, self.dtype = str(path), tuple(shape), np.dtype(dtype)
        np.lib.format.open_memmap(self.path, mode="w+", dtype=self.dtype, shape=self.shape).flush()

    def __setitem__(self, key, value):
        out = np.load(self.path, mmap_mode="r+", allow_pickle=False)
        out[key] = value
        out.flush()


def open_images(path: str | os.PathLike, chunk_rows: int = DEFAULT_CHUNK_ROWS) -> da.Array:
    """A .npy file or a Zarr array (directory) as a dask array in row chunks of `chunk_rows`."""
    path = Path(path)
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
                               name="aefast-npy-" + tokenize(str(path.resolve()), path.stat().st_mtime_ns),
                               meta=np.empty((0,) * rows.ndim, rows.dtype))
    else:
        raise ValueError(f"{path}: expected a .npy file or a Zarr directory")
    return images.rechunk({0: chunk_rows})


def _temporary_name(dest: Path) -> Path:
    return dest.with_name(f".{dest.name}.{uuid.uuid4().hex[:12]}.tmp")


def write_array(result: da.Array, dest: str | os.PathLike) -> Path:
    """Compute `result` block by block into DEST (.npy file, or a Zarr directory for any other name), atomically:
    the blocks go to a temporary sibling, renamed to DEST once all are written."""
    dest = Path(dest)
    if dest.exists():
        raise FileExistsError(f"{dest} already exists; remove it or choose another output name")
    if not dest.parent.is_dir():
        raise FileNotFoundError(f"{dest.parent}: the output's folder does not exist")
    tmp = _temporary_name(dest)
    try:
        if dest.suffix == ".npy":
            da.store(result, NpyRowsTarget(tmp, result.shape, result.dtype), lock=False)
            with open(tmp, "rb+") as f:
                os.fsync(f.fileno())
        else:
            da.to_zarr(result, str(tmp))
        os.replace(tmp, dest)
    finally:
        with contextlib.suppress(FileNotFoundError):
            shutil.rmtree(tmp) if tmp.is_dir() else tmp.unlink()
    return dest


def process_file(operation: str, model, source: str | os.PathLike, dest: str | os.PathLike, *,
                 address: str | None = None, chunk_rows: int = DEFAULT_CHUNK_ROWS, precision: str = "fp32",
                 backend: str = "auto", threads: int | None = 1, isa: str = "auto", clip: bool = False) -> Path:
    """Run `operation` (compress | reconstruct | score) of `model` over the images in SOURCE (.npy or Zarr), writing
    DEST chunk by chunk. address: a Dask scheduler ("tcp://host:8786"); None uses the current Dask client if any,
    else local threads. Returns DEST. This is what `python -m aefast.dask` (and `aefast ... --dask`) call."""
    if operation not in OPERATIONS:
        raise ValueError(f"operation must be one of {OPERATIONS}, got {operation!r}")
    if isinstance(chunk_rows, bool) or not isinstance(chunk_rows, int) or chunk_rows < 1:
        raise ValueError(f"chunk_rows must be a positive integer, got {chunk_rows!r}")
    images = open_images(source, chunk_rows)
    kwargs = dict(precision=precision, backend=backend, threads=threads, isa=isa)
    if operation == "reconstruct":
        kwargs["clip"] = clip
    result = getattr(arrays, operation)(images, model, **kwargs)
    if address is None:
        return write_array(result, dest)
    from distributed import Client

    with Client(address):
        return write_array(result, dest)
