"""The safetensors container: an 8-byte little-endian header length, a JSON header (tensor entries and a
`__metadata__` object of strings), then the tensors back to back.

Written here rather than taken from the safetensors library because its NumPy API has no bf16, and because a
reader of untrusted files must bound every allocation before it makes it. Every defect raises ModelFileError
naming the source.
"""
from __future__ import annotations

import errno
import json
import math
import os
import re
import stat
import struct
from pathlib import Path

import numpy as np

from ..errors import ModelFileError
from .validation import MAX_LAYERS, MAX_WIDTH, is_int

_NP_DTYPES = {"F32": np.float32, "F16": np.float16, "BF16": np.uint16}   # BF16: bits, widened by the model reader
_DTYPE_SIZES = {"F32": 4, "F16": 2, "BF16": 2}
# A header larger than this is not an aefast model; refuse before reading it.
MAX_HEADER_BYTES = 1 << 20
# No aefast model file is larger than this (refused before reading).
MAX_FILE_BYTES = 8 + MAX_HEADER_BYTES + 4 * MAX_LAYERS * MAX_WIDTH * 64
MAX_JSON_DEPTH = 32
# A JSON string, or an unterminated one running to the end of the text. Possessive, and it cannot fail once it
# has seen the opening quote, so `sub` is one linear pass: the plain `"(?:[^"\\]|\\.)*"` rescanned from every
# quote of an unterminated string (a `"` and 64K escaped quotes took seconds; a 1 MiB header, most of an hour).
_JSON_STRING = re.compile(rb'"(?:[^"\\]++|\\.)*+(?:"|\\?\Z)', re.DOTALL)


def safetensors_bytes(tensors: dict[str, tuple[str, np.ndarray]], metadata: dict[str, str]) -> bytes:
    """The container for `tensors` (name -> (dtype code, array as stored)) and `metadata`, tensors in name order.
    The header is padded with spaces to a multiple of 8 bytes, as the safetensors library writes it."""
    header: dict = {"__metadata__": metadata}
    offset, chunks = 0, []
    for name in sorted(tensors):
        code, arr = tensors[name]
        raw = np.ascontiguousarray(arr).astype(arr.dtype.newbyteorder("<"), copy=False).tobytes()
        header[name] = {"dtype": code, "shape": list(arr.shape), "data_offsets": [offset, offset + len(raw)]}
        offset += len(raw)
        chunks.append(raw)
    head = json.dumps(header, separators=(",", ":")).encode()
    head += b" " * (-len(head) % 8)
    return struct.pack("<Q", len(head)) + head + b"".join(chunks)


def json_depth(raw: bytes) -> int:
    """Deepest [ / { nesting of a JSON text, strings ignored (C-speed passes: regex, translate, cumsum)."""
    brackets = _JSON_STRING.sub(b"", raw).translate(None, delete=bytes(set(range(256)) - set(b"[]{}")))
    if not brackets:
        return 0
    steps = np.frombuffer(brackets, np.uint8)
    return int(np.cumsum(np.where((steps == ord("[")) | (steps == ord("{")), 1, -1)).max())


def parse_json(text: bytes | str, what: str, source: str):
    """json.loads, with every way it can fail (bad syntax, bad UTF-8, nesting deeper than MAX_JSON_DEPTH, integers
    of more than 4300 digits) reported as a ModelFileError. The depth is checked first: json recurses in C, and
    with a raised recursion limit a hostile header could overflow the C stack."""
    raw = text.encode("utf-8", "surrogatepass") if isinstance(text, str) else bytes(text)
    if json_depth(raw) > MAX_JSON_DEPTH:
        raise ModelFileError(f"{source}: {what} is not valid JSON for a model file (nested deeper than "
                             f"{MAX_JSON_DEPTH} levels)")
    try:
        return json.loads(raw)
    except (ValueError, RecursionError) as e:   # JSONDecodeError and UnicodeDecodeError are ValueErrors
        raise ModelFileError(f"{source}: {what} is not valid JSON ({type(e).__name__}: {str(e)[:200]})") from None


def read_header(data: bytes, source: str) -> tuple[dict, int]:
    """Parse and bounds-check the header before any tensor is touched -> (header, offset of the data section)."""
    if len(data) < 8:
        raise ModelFileError(f"{source}: file is {len(data)} bytes, too short for a safetensors header")
    (n,) = struct.unpack("<Q", data[:8])
    if n == 0 or n > MAX_HEADER_BYTES:
        raise ModelFileError(f"{source}: header length {n} is absurd (expected 1..{MAX_HEADER_BYTES} bytes)")
    if 8 + n > len(data):
        raise ModelFileError(f"{source}: header length {n} runs past the end of the {len(data)}-byte file "
                             "(truncated?)")
    header = parse_json(data[8:8 + n], "header", source)
    if not isinstance(header, dict):
        raise ModelFileError(f"{source}: header must be a JSON object")
    return header, 8 + n


def read_tensors(data: bytes, header: dict, start: int, source: str) -> dict[str, np.ndarray]:
    """Every tensor the header names, as stored (BF16: uint16 bits), copied out of `data`. Entries are checked
    (dtype F32/F16/BF16, at most 2 dimensions of 0..MAX_WIDTH, offsets inside the data section, byte count equal to
    shape x item size) before anything is copied; then the tensors must cover the data section exactly."""
    body = len(data) - start
    tensors: dict[str, np.ndarray] = {}
    spans = []
    for name, info in header.items():
        if name == "__metadata__":
            continue
        if not isinstance(info, dict) or set(info) != {"dtype", "shape", "data_offsets"}:
            raise ModelFileError(f"{source}: tensor {name!r:.200} entry malformed: {info!r:.200}")
        dt, shape, offs = info["dtype"], info["shape"], info["data_offsets"]
        if not isinstance(dt, str) or dt not in _NP_DTYPES:
            raise ModelFileError(f"{source}: tensor {name!r:.200} has dtype {dt!r:.200}, expected F32, F16 or BF16")
        if (not isinstance(shape, list) or not all(is_int(s) and 0 <= s <= MAX_WIDTH for s in shape)
                or len(shape) > 2):
            raise ModelFileError(f"{source}: tensor {name!r:.200} has bad shape {shape!r:.200}")
        if (not isinstance(offs, list) or len(offs) != 2 or not all(is_int(o) for o in offs)
                or not 0 <= offs[0] <= offs[1] <= body):
            raise ModelFileError(f"{source}: tensor {name!r:.200} offsets {offs!r:.200} fall outside the "
                                 f"{body}-byte data section (truncated?)")
        nbytes = math.prod(shape) * _DTYPE_SIZES[dt]
        if offs[1] - offs[0] != nbytes:
            raise ModelFileError(f"{source}: tensor {name!r:.200} spans {offs[1] - offs[0]} bytes, "
                                 f"its shape {shape} and dtype {dt} need {nbytes}")
        spans.append((offs[0], offs[1], name))
        arr = np.frombuffer(data, dtype=_NP_DTYPES[dt], count=math.prod(shape), offset=start + offs[0])
        tensors[name] = arr.reshape(shape).copy()
    spans.sort()
    for (a0, a1, an), (b0, b1, bn) in zip(spans, spans[1:]):
        if b0 < a1:
            raise ModelFileError(f"{source}: tensors {an!r:.200} and {bn!r:.200} overlap")
    # safetensors requires the data section to be exactly the tensors, back to back: a gap or trailing bytes
    # mean a damaged or spliced file.
    covered = sum(b - a for a, b, _ in spans)
    if covered != body:
        raise ModelFileError(f"{source}: data section is {body} bytes but the tensors cover {covered} "
                             "(gaps or trailing bytes: damaged file?)")
    return tensors


def _declared_data_end(header: dict) -> int:
    """The end of the data section as the header's well-formed data_offsets declare it (0 if none)."""
    ends = [info["data_offsets"][1] for name, info in header.items()
            if name != "__metadata__" and isinstance(info, dict) and isinstance(info.get("data_offsets"), list)
            and len(info["data_offsets"]) == 2 and is_int(info["data_offsets"][1])]
    return max(ends, default=0)


def read_file_bytes(path: Path) -> bytes:
    """The bytes of a safetensors file, read so that no file can hang the reader or make it allocate much more
    than an honest model would need: only regular files (a FIFO, /dev/zero or a socket is refused without
    blocking, also behind a symlink); the header is read and parsed first, and the rest is read only when the
    header accounts for every byte of the file (a 10 GB file with a 100-byte header is refused after reading
    8 + 100 bytes). OSError (IsADirectoryError for a folder) propagates to the caller."""
    source = str(path)
    # O_NONBLOCK: opening a FIFO with no writer would otherwise block forever; regular files ignore the flag.
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    with os.fdopen(fd, "rb") as f:
        st = os.fstat(f.fileno())
        if stat.S_ISDIR(st.st_mode):
            raise IsADirectoryError(errno.EISDIR, "is a directory")
        if not stat.S_ISREG(st.st_mode):
            raise ModelFileError(f"{source}: not a regular file (a device, FIFO or socket), expected a "
                                 ".safetensors model file")
        size = st.st_size
        if size == 0:
            # /proc and /sys files say 0 bytes whatever they hold: tell them apart from an empty file.
            if f.read(1):
                raise ModelFileError(f"{source}: reports a size of 0 bytes but has content (a virtual file, as in "
                                     "/proc or /sys?), expected a .safetensors model file")
            raise ModelFileError(f"{source}: empty file (0 bytes), expected a .safetensors model file")
        if size > MAX_FILE_BYTES:
            raise ModelFileError(f"{source}: {size} bytes is far larger than any aefast model")
        head = f.read(min(size, 8 + MAX_HEADER_BYTES))
        header, start = read_header(head, source)
        declared = start + _declared_data_end(header)
        if size > declared:
            raise ModelFileError(f"{source}: file is {size} bytes but its header describes {declared} "
                                 "(trailing bytes: damaged file, or not an aefast model)")
        # at most `size` bytes in all, even if the file grows while being read; the parser checks the rest.
        return head + f.read(size - len(head))
