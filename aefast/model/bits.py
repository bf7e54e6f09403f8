"""bf16 and fp16 bits: conversions between float32 values and the 16-bit forms a model file stores.

bf16 is the top half of a float32 (1 sign, 8 exponent, 7 mantissa bits); NumPy has no bf16 type, so bf16 tensors
are held as their bits in uint16 arrays. fp16 is NumPy's float16.
"""
from __future__ import annotations

import numpy as np

_F32_MIN_NORMAL_BITS = 0x00800000


def float_to_bf16_bits(values) -> np.ndarray:
    """float32 -> bf16 bits (uint16), round to nearest even, as `vcvtneps2bf16` does: NaN stays a quiet NaN,
    subnormals become signed zero (vdpbf16ps reads subnormal inputs as zero), overflow rounds to +-inf."""
    bits = np.array(values, dtype=np.float32, copy=True).view(np.uint32)   # any shape, 0-d included
    wide = bits.astype(np.uint64)
    out = ((wide + 0x7FFF + ((wide >> 16) & 1)) >> 16).astype(np.uint16)
    magnitude = bits & 0x7FFFFFFF
    out = np.where(magnitude < _F32_MIN_NORMAL_BITS, (bits >> 16) & 0x8000, out)
    out = np.where(magnitude > 0x7F800000, (bits >> 16) | 0x40, out)
    return out.astype(np.uint16)


def bf16_bits_to_float(bits) -> np.ndarray:
    """bf16 bits (uint16) -> the float32 values they hold (exact)."""
    return (np.asarray(bits, dtype=np.uint16).astype(np.uint32) << 16).view(np.float32)


def round_to_bf16(values) -> np.ndarray:
    """float32 values rounded to the nearest bf16 value, as float32."""
    return bf16_bits_to_float(float_to_bf16_bits(values))


def to_storage(values: np.ndarray, dtype: str) -> np.ndarray:
    """values as stored in a file with storage `dtype` ("float32", "float16" or "bf16": bf16 bits in uint16),
    C-contiguous. Values beyond the storage type's range become +-inf (the writer checks and refuses them)."""
    if dtype == "bf16":
        return np.ascontiguousarray(float_to_bf16_bits(values))
    with np.errstate(over="ignore"):
        return np.ascontiguousarray(values, dtype=np.dtype(dtype))


def from_storage(arr: np.ndarray, code: str) -> np.ndarray:
    """A stored tensor (safetensors dtype `code`: F32, F16 or BF16) -> float32/float16 values (BF16 bits widened to
    float32: exact)."""
    return bf16_bits_to_float(arr) if code == "BF16" else arr
