"""IDX files (the MNIST container format): a checked reader and an atomic writer.

Layout (big-endian): 2 zero bytes, a type byte (0x08 = unsigned byte, the only one MNIST uses), a byte giving the
number of dimensions d, then d uint32 sizes, then prod(sizes) data bytes, nothing after. MNIST images are
magic 0x00000803 with sizes (N, 28, 28); labels are 0x00000801 with sizes (N,) and values 0..9.
A file may be gzip-compressed or raw; which one is decided by its first bytes, never by its name.
Reading is bounded by what the header declares (and by a caller's `max_bytes`): a gzip bomb or a huge file is
refused after producing at most one byte more than that, never inflated or read whole.
"""
from __future__ import annotations

import gzip
import hashlib
import math
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
# No IDX file aefast reads is larger than this uncompressed (MNIST's largest is 47 MB).
MAX_IDX_BYTES = 1 << 31


class IdxContent(NamedTuple):
    """One decoded IDX file: `array` (uint8, read-only view of the file's bytes) and `sha256`, the hex SHA-256 of
    the uncompressed IDX bytes (stable whether the file is stored gzipped or raw, at any compression level)."""

    array: np.ndarray
    sha256: str


_CHUNK = 1 << 20   # bytes read or inflated per step: memory beyond the output stays at about this much


class _RawStream:
    """An uncompressed file read in chunks: read_into(out, n) appends up to n bytes (fewer at the end)."""

    def __init__(self, f):
        self._f = f

    def read_into(self, out: bytearray, n: int) -> None:
        target = len(out) + n
        while len(out) < target:
            piece = self._f.read(min(_CHUNK, target - len(out)))
            if not piece:
                return
            out += piece


class _GzipStream:
    """The uncompressed bytes of a gzip file (every member), inflated on demand from compressed input read in
    chunks: read_into(out, n) appends up to n bytes and never produces, or reads, much more than that."""

    def __init__(self, f, source: str):
        self._f, self._source = f, source
        self._rest = b""          # compressed bytes read from the file and not yet used
        self._inflater = None     # the current member's decompressor; None between members

    def _damaged(self, why: str) -> DataFileError:
        return DataFileError(f"{self._source}: damaged gzip data ({why}); expected a complete gzip stream")

    def _more_input(self) -> bool:
        piece = self._f.read(_CHUNK)
        self._rest += piece
        return bool(piece)

    def read_into(self, out: bytearray, n: int) -> None:
        target = len(out) + n
        try:
            while len(out) < target:
                if self._inflater is None:
                    while len(self._rest) < 2 and self._more_input():
                        pass
                    if not self._rest.strip(b"\0"):   # the end (zero padding after the last member is allowed)
                        self._rest = b""
                        if self._more_input():
                            continue
                        return
                    if self._rest[:2] != _GZIP_MAGIC:
                        raise self._damaged("bytes after the end of the gzip stream are not another gzip member")
                    self._inflater = zlib.decompressobj(wbits=31)   # 31: gzip wrapper, its CRC32 checked
                if not self._rest:
                    self._more_input()
                d, before = self._inflater, len(out)
                out += d.decompress(self._rest, min(target - len(out), _CHUNK))   # max_length >= 1: bounded
                self._rest = d.unconsumed_tail
                if d.eof:
                    self._inflater, self._rest = None, d.unused_data
                elif len(out) == before and not self._rest and not self._more_input():
                    raise self._damaged("the stream ends early")
        except zlib.error as e:
            raise self._damaged(str(e)) from None


def _idx_header_size(head: bytes) -> int | None:
    """Bytes in the IDX header starting `head` (4 + 4 * ndim), or None if `head` does not start one of unsigned
    bytes (then the caller's magic check reports the defect)."""
    if len(head) < 4 or head[:3] != bytes((0, 0, _UBYTE)):
        return None
    return 4 + 4 * head[3]


def read_idx_bytes(path: str | os.PathLike, max_bytes: int | None = None) -> bytes | bytearray:
    """The uncompressed bytes of an IDX file, gunzipped if the file starts with the gzip magic.

    At most the size its header declares is read or inflated (a header declaring more than `max_bytes`, or than
    MAX_IDX_BYTES, is refused first), in 1 MiB steps: a gzip bomb or a file with a huge tail raises DataFileError
    instead of filling memory. Data that does not start with an IDX header is returned cut short (a few bytes,
    enough for the caller's magic check to name the defect).
    """
    path = Path(path)
    limit = MAX_IDX_BYTES if max_bytes is None else min(max_bytes, MAX_IDX_BYTES)
    try:
        with open(path, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            gzipped = f.read(2) == _GZIP_MAGIC
            f.seek(0)
            stream = _GzipStream(f, str(path)) if gzipped else _RawStream(f)
            what = "inflates to" if gzipped else f"is {size} bytes,"
            data = bytearray()
            stream.read_into(data, 4)
            header_size = _idx_header_size(data)
            if header_size is None:
                return data
            stream.read_into(data, header_size - 4)
            if len(data) < header_size:
                return data                         # truncated header: parse_idx names it
            dims = struct.unpack(f">{data[3]}I", data[4:header_size])
            declared = header_size + math.prod(dims)
            if declared > limit:
                raise DataFileError(f"{path}: header declares dimensions {dims}, {declared} bytes of data, more than "
                                    f"the {limit} expected for this file")
            stream.read_into(data, declared - header_size)
            probe = bytearray()
            if len(data) == declared:
                stream.read_into(probe, 1)
            if probe:
                raise DataFileError(f"{path}: {what} more than the {declared} bytes its header declares "
                                    f"for dimensions {dims} (trailing bytes, or a gzip bomb)")
            return data
    except FileNotFoundError:
        raise DataFileError(f"{path}: file not found") from None
    except IsADirectoryError:
        raise DataFileError(f"{path}: is a directory, expected an IDX file") from None
    except OSError as e:
        raise DataFileError(f"{path}: cannot read ({e.strerror or e})") from e


def parse_idx(data: bytes | bytearray, *, source: str, magic: int) -> np.ndarray:
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
    expected = header + math.prod(dims)   # Python integers: no wrap-around, whatever the dimensions
    if len(data) != expected:
        what = "truncated" if len(data) < expected else "has trailing bytes"
        raise DataFileError(
            f"{source}: {what}: {len(data)} bytes, expected {expected} for dimensions {dims}"
        )
    try:
        array = np.frombuffer(data, dtype=np.uint8, offset=header).reshape(dims)
    except ValueError as e:   # e.g. (0, 2**32-1, 2**32-1): no bytes, but more elements per row than NumPy allows
        raise DataFileError(f"{source}: dimensions {dims} cannot be held in an array ({e})") from None
    array.flags.writeable = False   # a view of the file's bytes: callers copy what they keep
    return array


def _read_checked(path: str | os.PathLike, magic: int, max_bytes: int | None) -> IdxContent:
    data = read_idx_bytes(path, max_bytes)
    return IdxContent(parse_idx(data, source=str(path), magic=magic), hashlib.sha256(data).hexdigest())


def read_images(path: str | os.PathLike, max_bytes: int | None = None) -> IdxContent:
    """MNIST images: array of shape (N, 28, 28) uint8. Raises DataFileError naming the file on any defect
    (and when the uncompressed file would exceed `max_bytes`)."""
    content = _read_checked(path, IMAGES_MAGIC, max_bytes)
    if content.array.shape[1:] != (IMAGE_SIDE, IMAGE_SIDE):
        raise DataFileError(
            f"{path}: images are {content.array.shape[1]}x{content.array.shape[2]}, "
            f"expected {IMAGE_SIDE}x{IMAGE_SIDE}"
        )
    return content


def read_labels(path: str | os.PathLike, max_bytes: int | None = None) -> IdxContent:
    """MNIST labels: array of shape (N,) uint8 with values 0..9. Raises DataFileError naming the file on any defect
    (and when the uncompressed file would exceed `max_bytes`)."""
    content = _read_checked(path, LABELS_MAGIC, max_bytes)
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
