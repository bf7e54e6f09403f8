"""Streaming an image set through an Engine in chunks, into outputs that appear only when complete.

The chunks are row slices: every backend computes each image's row on its own, so the codes of N images
streamed in chunks equal one Engine.compress call on all N (tested).
"""
from __future__ import annotations

import contextlib
import os
import sys
from typing import Callable, Iterator

import numpy as np

from .._io import atomic_path, create_npy
from ..data.images import ImageSet

DEFAULT_CHUNK = 4096


def chunks(images: ImageSet, chunk: int, *, progress: bool, desc: str) -> Iterator[tuple[int, np.ndarray]]:
    """(start, block) pairs: block is images.x[start:start + chunk] as a C-contiguous (n, pixels) array of the
    stored dtype (a memory-mapped file is read one chunk at a time); a tqdm bar on stderr counts images."""
    from tqdm.auto import tqdm

    n = len(images)
    with tqdm(total=n, desc=desc, unit="img", disable=None if progress else True, file=sys.stderr,
              leave=False) as bar:
        for start in range(0, n, chunk):
            block = np.ascontiguousarray(images.x[start:start + chunk])
            yield start, block.reshape(len(block), -1)
            bar.update(len(block))


def apply_in_chunks(fn: Callable[[np.ndarray], np.ndarray], images: ImageSet, out: np.ndarray, chunk: int, *,
                    progress: bool, desc: str) -> np.ndarray:
    """out[i] = fn(images.x[i]) for every image, computed `chunk` images at a time; returns out."""
    for start, block in chunks(images, chunk, progress=progress, desc=desc):
        out[start:start + len(block)] = fn(block)
    return out


@contextlib.contextmanager
def npy_output(path: str | os.PathLike, shape: tuple[int, ...], dtype) -> Iterator[np.ndarray]:
    """A writable memory-mapped .npy of `shape` and `dtype` to fill; on a clean exit it is flushed, synced and
    renamed to `path`; on any exception (Ctrl-C included) it is deleted and `path` is untouched. Its disk space is
    reserved before the first write: a disk without room raises DiskFullError (an OSError naming `path`, the bytes
    needed and free) instead of a SIGBUS in the middle of the memory-mapped writes."""
    with atomic_path(path) as tmp:
        array = create_npy(tmp, shape, dtype, shown=path)
        yield array
        array.flush()
        del array
