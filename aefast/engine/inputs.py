"""Checking what users pass to the engine, before any compute runs.

Accepted images: array-likes of shape (N, *input_shape), (N, input_size), input_shape or (input_size,) (one image);
input_shape is (H, W) for grayscale (also accepted as (H, W, 1)) or (H, W, C) for colour.
  The batch reading wins: an array whose shape is (N, *input_shape) or (N, input_size) is a batch of N; only a shape
  that cannot be read as a batch is one item, and then the result has no batch axis. So a 2-D (N, input_size) array
  is always N flat images, also for a model whose input_shape is (1, input_size): there (1, input_size) is a batch
  of one, and one item is passed as (input_size,).
  - uint8: raw pixels 0..pixel_scale; passed on as uint8 (the engine folds 1/pixel_scale into the first layer).
  - float16/float32/float64: pixels already scaled to [0, 1]; values must lie in [-RANGE_TOL, 1 + RANGE_TOL]
    (not clipped: a value of 255.0 almost always means "forgot to divide", which we say rather than hide).
  - everything else (bool, other integer types, complex, object, strings, datetimes) is a TypeError: a bool or an
    int16 image has no single obvious meaning, so we ask the caller to convert explicitly.
Accepted codes: float16/float32/float64 of shape (N, latent) or (latent,), finite, and no larger in magnitude than
  the model's decoder_code_limit: below it no decoder value can leave float32, so decompress never makes NaN or inf
  (which a clip to [0, 1] would then hide).
Any memory layout is accepted (strided, reversed, Fortran, read-only); the caller's array is never written.
"""
from __future__ import annotations

import math
import os

import numpy as np

from .precisions import bf16_bits_to_float
from ..model.activations import parse_activation

RANGE_TOL = 1e-3
_FLOAT_KINDS = (np.float16, np.float32, np.float64)


def _physical_memory_bytes() -> int | None:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):  # not POSIX, or the value is unknown
        return None


# A batch whose contiguous copy alone would exceed this is refused before it is scanned or copied: a view such as
# np.broadcast_to(img, (2**40, 784)) costs no memory, but checking or converting it would take hours or fail late.
MAX_BATCH_BYTES = _physical_memory_bytes() or 2**40


def _as_array(value, what: str) -> np.ndarray:
    if isinstance(value, np.ndarray):
        return value
    try:
        return np.asarray(value)
    except (ValueError, TypeError) as e:  # ragged nested lists and the like
        raise TypeError(f"{what} must be an array (or nested lists of numbers): {e}") from None


def _check_finite(x: np.ndarray, what: str, lo: float | None = None, hi: float | None = None) -> tuple[float, float]:
    """NaN/inf (and, when lo/hi are given, the range) in one min/max pass: NaN propagates into min and max.
    -> (min, max) of x, (0, 0) when empty."""
    if x.size == 0:
        return 0.0, 0.0
    vmin, vmax = float(x.min()), float(x.max())
    if not (math.isfinite(vmin) and math.isfinite(vmax)):
        bad = np.argwhere(~np.isfinite(x))[0]
        raise ValueError(f"{what} contain NaN or infinite values (first at index {tuple(int(i) for i in bad)})")
    if lo is not None and (vmin < lo or vmax > hi):
        raise ValueError(f"{what} must be floating point in [0, 1] (tolerance {RANGE_TOL}), found values in "
                         f"[{vmin:g}, {vmax:g}]; for raw 0..255 pixels pass uint8, or divide by 255")
    return vmin, vmax


def _batch_shape(x: np.ndarray, item_shapes: list[tuple[int, ...]], what: str) -> bool:
    """True when x is one item (no batch axis), False for a batch; ValueError naming the accepted shapes otherwise.
    The batch reading is tried first (see the module docstring): (1, 784) is a batch for item shapes (1, 784), (784,)."""
    if x.ndim >= 1 and x.shape[1:] in item_shapes:
        return False
    if x.shape in item_shapes:
        return True
    accepted = ", ".join(f"(N, {', '.join(map(str, s))})" for s in item_shapes)
    singles = " or ".join(str(s) for s in item_shapes)
    raise ValueError(f"{what} have shape {x.shape}; expected {accepted}, or one item of shape {singles}")


def _check_fits(x: np.ndarray, itemsize: int, what: str) -> None:
    """ValueError when x as a contiguous array of `itemsize`-byte values would not fit in this machine's memory."""
    nbytes = x.size * itemsize
    if nbytes > MAX_BATCH_BYTES:
        raise ValueError(f"{what} of shape {x.shape} would need {nbytes / 2**30:.3g} GiB as a contiguous array, "
                         f"more than this machine's {MAX_BATCH_BYTES / 2**30:.3g} GiB of memory; "
                         "pass smaller batches")


def _channel_forms(input_shape: tuple[int, ...]) -> list[tuple[int, ...]]:
    """Other spellings of a grayscale image shape: (H, W) images may also come as (H, W, 1), and vice versa."""
    if len(input_shape) == 2:
        return [(*input_shape, 1)]
    if len(input_shape) == 3 and input_shape[2] == 1:
        return [input_shape[:2]]
    return []


def image_batch(images, input_shape: tuple[int, ...]) -> tuple[np.ndarray, bool]:
    """-> (x, single): x is a C-contiguous (N, input_size) uint8 or float32 array; single = no batch axis given."""
    x = _as_array(images, "images")
    size = math.prod(input_shape)
    shapes = list(dict.fromkeys([tuple(input_shape), (size,), *_channel_forms(tuple(input_shape))]))
    if x.dtype != np.uint8 and x.dtype.type not in _FLOAT_KINDS:
        raise TypeError(f"images have dtype {x.dtype}; expected uint8 (0..255) or float16/float32/float64 in "
                        "[0, 1] (convert other types explicitly, e.g. images.astype(np.uint8))")
    single = _batch_shape(x, shapes, "images")
    _check_fits(x, 1 if x.dtype == np.uint8 else 4, "images")
    if x.dtype != np.uint8:
        _check_finite(x, "images", -RANGE_TOL, 1 + RANGE_TOL)
    x2 = x.reshape(1 if single else x.shape[0], size)
    return np.ascontiguousarray(x2, dtype=np.uint8 if x.dtype == np.uint8 else np.float32), single


_UINT8 = np.dtype(np.uint8)
_FLOAT32 = np.dtype(np.float32)
_PIXEL_LO, _PIXEL_HI = -RANGE_TOL, 1 + RANGE_TOL
_min_of, _max_of = np.minimum.reduce, np.maximum.reduce


def _numpy_range(x: np.ndarray) -> tuple[float, float]:
    return float(_min_of(x, None)), float(_max_of(x, None))


def _float_range():
    """(min, max) of a float32 batch, NaN propagating: the compiled core's one-pass scan when it loaded (two NumPy
    reductions cost ~5 us of a ~15 us batch-1 call), else NumPy's."""
    from . import backend
    return getattr(backend.core, "float_range", None) or _numpy_range


_range_of = _float_range()


class ImageBatcher:
    """image_batch for one input_shape, with a fast path for what callers nearly always pass.

    Fast path: a plain C-contiguous uint8 or native float32 ndarray of shape (N, input_size) or (input_size,)
    within MAX_BATCH_BYTES; float32 values are range-checked with one (min, max) scan (NaN gives NaN bounds, which
    fail `lo >= _PIXEL_LO`, and +-inf fails a bound). It only ever ACCEPTS: any input it does
    not accept goes through image_batch, which applies every check and raises the precise error. Accepted arrays
    are returned as they are (no copy; the engine only reads them). Immutable, so safe to share between threads.
    """

    __slots__ = ("input_shape", "input_size")

    def __init__(self, input_shape: tuple[int, ...]):
        self.input_shape = tuple(input_shape)
        self.input_size = math.prod(self.input_shape)

    def __call__(self, images) -> tuple[np.ndarray, bool]:
        if type(images) is np.ndarray and images.flags.c_contiguous:
            dtype, shape, size = images.dtype, images.shape, self.input_size
            if len(shape) == 2 and shape[1] == size:   # (N, input_size) is always a batch (module docstring)
                x, single = images, False
            elif shape == (size,):
                x, single = images.reshape(1, size), True
            else:
                return image_batch(images, self.input_shape)
            if dtype is _UINT8:
                if images.size <= MAX_BATCH_BYTES:
                    return x, single
            elif dtype is _FLOAT32 and images.size * 4 <= MAX_BATCH_BYTES:
                # float(): compare in float64 as image_batch does (a float32 scalar against a Python float compares in
                # float32 under NumPy 2, which would accept float32(-1e-3) < -1e-3).
                if images.size == 0:
                    return x, single
                lo, hi = _range_of(x)   # Python floats: compared in float64, as image_batch does
                if lo >= _PIXEL_LO and hi <= _PIXEL_HI:
                    return x, single
        return image_batch(images, self.input_shape)


def decoder_code_limit(layers: list[dict], margin: float = 1e37) -> float:
    """The largest max|code| for which no value the decoder computes can exceed `margin` in magnitude, so none can
    overflow float32 (3.4e38; the 34x margin covers float32 rounding). layers: the decoder's backend layer dicts
    (aefast/engine/precisions.py): weight (in, out) as stored, scale (out,) for int8, bias, activation.

    The kernels accumulate sum_i x_i w_ij with w as stored (for int8 the integers, scaled after the sum), so per layer
    |acc_j| <= (max_j sum_i |w_ij|) max|x| and |y_j| <= (max_j scale_j sum_i |w_ij|) max|x| + max|b|; every
    activation keeps |act(y)| <= g |y| + c: g = max(1, |alpha|) for the leaky ReLU, else 1; c = max(1, |alpha|) for
    ELU, else 1 (linear, relu, tanh, sigmoid need less). Each bound is affine in max|code|."""
    limit, slope, offset = math.inf, 1.0, 0.0   # max|layer input| <= slope * max|code| + offset

    def below_margin(a: float, b: float) -> float:   # the largest m with a * m + b <= margin
        return (margin - b) / a if a > 0 else (math.inf if b <= margin else 0.0)

    for layer in layers:
        w = layer["weight"]
        if w.dtype == np.uint16:   # bf16 bits: widen to the float32 values they stand for
            w = bf16_bits_to_float(w)
        stored = np.abs(w.astype(np.float64)).sum(axis=0)
        scale = np.abs(layer["scale"].astype(np.float64)) if layer.get("scale") is not None else 1.0
        acc, real = float(stored.max(initial=0.0)), float((stored * scale).max(initial=0.0))
        limit = min(limit, below_margin(acc * slope, acc * offset))
        slope, offset = real * slope, real * offset + float(np.abs(layer["bias"]).max(initial=0.0))
        limit = min(limit, below_margin(slope, offset))
        kind, alpha = parse_activation(layer["activation"])
        gain = max(1.0, abs(alpha)) if kind == "leaky_relu" else 1.0
        slope, offset = gain * slope, gain * offset + (max(1.0, abs(alpha)) if kind == "elu" else 1.0)
    return max(limit, 0.0)


def code_batch(codes, latent_size: int, limit: float = math.inf) -> tuple[np.ndarray, bool]:
    """-> (c, single): c is a C-contiguous (N, latent_size) float32 array; |codes| <= limit (decoder_code_limit)."""
    c = _as_array(codes, "codes")
    if c.dtype.type not in _FLOAT_KINDS:
        raise TypeError(f"codes have dtype {c.dtype}; expected float16/float32/float64 (as from compress)")
    single = _batch_shape(c, [(latent_size,)], "codes")
    _check_fits(c, 4, "codes")
    vmin, vmax = _check_finite(c, "codes")
    with np.errstate(over="ignore"):  # overflow is reported just below, as a ValueError
        c2 = np.ascontiguousarray(c.reshape(1 if single else c.shape[0], latent_size), dtype=np.float32)
    if c.dtype.itemsize == 8 and not np.isfinite(c2).all():  # float64 codes beyond the float32 range (only they can)
        raise ValueError("codes overflow float32 (values beyond +-3.4e38)")
    if max(-vmin, vmax) > limit:
        where = "" if single else f"[{int(np.argwhere(np.abs(c2) > limit)[0, 0])}]"
        raise ValueError(f"codes{where} reach {max(-vmin, vmax):.3g}, beyond +-{limit:.3g}, the largest magnitude "
                         "for which this model's decoder provably stays within float32 (codes from compress() are "
                         "far smaller)")
    return c2, single
