"""The integrity digests a model file carries (docs/format.md, "Integrity").

Format 2, `model_sha256`: SHA-256 of
    u64 little-endian length of J, then J, then each tensor's bytes as stored, in digest order,
where J is the UTF-8 of the JSON text {"metadata": {every metadata key but model_sha256: its string},
"tensors": [[name, dtype code, shape], ...] in digest order}, keys sorted, separators "," and ":", non-ASCII
escaped. It covers everything that changes results (layer sizes, activations, encoder_layers, input_shape,
pixel_scale, each tensor's dtype and shape and bytes) and the provenance metadata too.
Format 1, `tensors_sha256`: SHA-256 of the tensor bytes alone, in digest order (metadata not covered).

Digest order: for each layer i, dense_i.kernel, dense_i.bias, then dense_i.input_mean when the file has one;
bytes little-endian in C order (bf16 as its bits), so neither digest depends on where the tensors sit in the file.
"""
from __future__ import annotations

import hashlib
import json
import struct

import numpy as np

TENSORS_DIGEST_KEY = "tensors_sha256"   # format 1
MODEL_DIGEST_KEY = "model_sha256"       # format 2
_HEX_DIGITS = frozenset("0123456789abcdef")


def is_hex_digest(value) -> bool:
    """64 lowercase hex digits."""
    return isinstance(value, str) and len(value) == 64 and set(value) <= _HEX_DIGITS


def digest_order(names) -> list[str]:
    """Tensor names in digest order: for each layer, kernel, bias, then input_mean when the file has one."""
    n = sum(1 for name in names if name.endswith(".kernel"))
    return [f"dense_{i}.{part}" for i in range(n) for part in ("kernel", "bias", "input_mean")
            if f"dense_{i}.{part}" in names]


def _update(h, arr: np.ndarray) -> None:
    arr = np.ascontiguousarray(arr)
    h.update((arr.byteswap() if arr.dtype.byteorder == ">" else arr).data)


def tensors_digest(arrays: list[np.ndarray]) -> str:
    """Format 1: hex SHA-256 of the tensor bytes as stored, `arrays` given in digest order."""
    h = hashlib.sha256()
    for arr in arrays:
        _update(h, arr)
    return h.hexdigest()


def model_digest(metadata: dict, tensors: list[tuple[str, str, np.ndarray]]) -> str:
    """Format 2: hex SHA-256 of the metadata (without MODEL_DIGEST_KEY) and of `tensors`, (name, dtype code,
    array as stored) in digest order (see the module docstring)."""
    described = {"metadata": {k: v for k, v in metadata.items() if k != MODEL_DIGEST_KEY},
                 "tensors": [[name, code, [int(s) for s in arr.shape]] for name, code, arr in tensors]}
    text = json.dumps(described, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode("ascii")
    h = hashlib.sha256(struct.pack("<Q", len(text)) + text)
    for _, _, arr in tensors:
        _update(h, arr)
    return h.hexdigest()
