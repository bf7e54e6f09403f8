"""IDX files (the MNIST container format): a checked reader and an atomic writer.

Layout (big-endian): 2 zero bytes, a type byte (0x08 = unsigned byte, the only one MNIST uses), a byte giving the
number of dimensions d, then d uint32 sizes, then prod(sizes) data bytes, nothing after. MNIST images are
magic 0x00000803 with sizes (N, 28, 28); labels are 0x00000801 with sizes (N,) and values 0..9.
A file may be gzip-compressed or raw; which one is decided by its first bytes, never by its name.
"""
from __future__ import annotations

import gzip
import hashlib
import os
import struct
import zlib
from pathlib import Path
from typing import NamedTuple

import numpy as np

from .._io import write_bytes_atomic
from ..errors import DataFileError

IMAGES_MAGIC = 0x00000803
LABELS_MAGIC = 0x00000801
IMAGE_SIDE = 28
NUM_CLASSES = 10
_UBYTE = 0x08
_GZIP_MAGIC = b"\x1f\x8b"


class IdxContent(NamedTuple):
    """One decoded IDX file: `array` (uint8, read-only view of the file's bytes) and `sha256`, the hex SHA-256 of
    the uncompressed IDX bytes (stable whether the file is stored gzipped or raw, at any compression level)."""

    array: np.ndarray
    sha256: str


def read_idx_bytes(path: str | os.PathLike) -> bytes:
    """The uncompressed bytes of an IDX file, gunzipped if the file starts with the gzip magic."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise DataFileError(f"{path}: file not found") from None
    except OSError as e:
        raise DataFileError(f"{path}: cannot read ({e.strerror or e})") from e
    if data[:2] == _GZIP_MAGIC:
        try:
            data = gzip.decompress(data)
        except (EOFError, gzip.BadGzipFile, zlib.error, OSError) as e:
            raise DataFileError(f"{path}: damaged gzip data ({e}); expected a complete gzip stream") from e
    return data


def parse_idx(data: bytes, *, source: str, magic: int) -> np.ndarray:
    """Decode uncompressed IDX bytes whose magic must be `magic`; `source` names the file in error messages.

    Returns a read-only uint8 array viewing `data`, shaped by the header's dimensions.
    """
    if len(data) < 4:
        raise DataFileError(f"{source}: {len(data)} bytes is too short for an IDX header (expected at least 4)")
    (found,) = struct.unpack(">I", data[:4])
    if found != magic:
        raise DataFileError(
            f"{source}: magic number 0x{found:08x}, expected 0x{magic:08x} "
            f"({'images' if magic == IMAGES_MAGIC else 'labels'}); wrong or mislabelled file"
        )
    ndim = magic & 0xFF
    header = 4 + 4 * ndim
    if len(data) < header:
        raise DataFileError(f"{source}: truncated header ({len(data)} bytes, expected {header})")
    dims = struct.unpack(f">{ndim}I", data[4:header])
    expected = header + int(np.prod(dims, dtype=np.int64))
    if len(data) != expected:
        what = "truncated" if len(data) < expected else "has trailing bytes"
        raise DataFileError(
            f"{source}: {what}: {len(data)} bytes, expected {expected} for dimensions {dims}"
        )
    return np.frombuffer(data, dtype=np.uint8, offset=header).reshape(dims)


def _read_checked(path: str | os.PathLike, magic: int) -> IdxContent:
    data = read_idx_bytes(path)
    return IdxContent(parse_idx(data, source=str(path), magic=magic), hashlib.sha256(data).hexdigest())


def read_images(path: str | os.PathLike) -> IdxContent:
    """MNIST images: array of shape (N, 28, 28) uint8. Raises DataFileError naming the file on any defect."""
    content = _read_checked(path, IMAGES_MAGIC)
    if content.array.shape[1:] != (IMAGE_SIDE, IMAGE_SIDE):
        raise DataFileError(
            f"{path}: images are {content.array.shape[1]}x{content.array.shape[2]}, "
            f"expected {IMAGE_SIDE}x{IMAGE_SIDE}"
        )
    return content


def read_labels(path: str | os.PathLike) -> IdxContent:
    """MNIST labels: array of shape (N,) uint8 with values 0..9. Raises DataFileError naming the file on any defect."""
    content = _read_checked(path, LABELS_MAGIC)
    if content.array.size and int(content.array.max()) >= NUM_CLASSES:
        raise DataFileError(
            f"{path}: label value {int(content.array.max())} out of range, expected 0..{NUM_CLASSES - 1}"
        )
    return content


def encode_idx(array: np.ndarray) -> bytes:
    """The uncompressed IDX bytes of a uint8 array (1-D labels -> 0x801, 3-D images -> 0x803)."""
    array = np.asarray(array)
    if array.dtype != np.uint8:
        raise ValueError(f"IDX arrays must be uint8, got {array.dtype}")
    if not 1 <= array.ndim <= 255:
        raise ValueError(f"IDX arrays need 1..255 dimensions, got {array.ndim}")
    header = struct.pack(f">BBBB{array.ndim}I", 0, 0, _UBYTE, array.ndim, *array.shape)
    return header + np.ascontiguousarray(array).tobytes()


def write_idx(path: str | os.PathLike, array: np.ndarray, *, compress: bool = True) -> Path:
    """Write `array` as an IDX file (gzipped when `compress`) atomically: no half-written file is ever visible."""
    data = encode_idx(array)
    if compress:
        # mtime=0 makes the output bytes depend on the content only.
        data = gzip.compress(data, compresslevel=6, mtime=0)
    return write_bytes_atomic(path, data)
