"""The numba backend's `Network`: the same interface as the C++ `aefast._core.Network` (minus `isa`), running the
kernels of numba_kernels.py: checks and packs the layer list, chains the layers (bf16 rounding or uint8
re-quantization between them), picks serial or parallel launches and numba's threading layer (fork safety).

numba is imported when this module is imported, so `aefast` imports it only on first use of this backend.
"""
from __future__ import annotations

import os
import threading

import numba
import numpy as np

from ..model.activations import parse_activation
from .numba_kernels import (ACTIVATION_CODES, COMPUTES, DECODE_ONCE_ROWS, KR, MB, NR, WEIGHT_DTYPES, _decode_all,
                            _dense_parallel, _dense_serial, _q8_parallel, _q8_serial, _quantize_rows,
                            _round_rows_to_bf16)

# Threading layer. numba's default order is tbb, omp, workqueue; without the tbb package it picks GNU OpenMP,
# and a process forked after a GNU OpenMP parallel region dies at its first parallel launch ("Terminating: fork()
# called from a process already using GNU OpenMP, this is unsafe."). workqueue resets itself in a forked child (numba
# starts new workers there); tbb does not when the fork lands during a launch (numba warns "the TBB library may be in
# an invalid state in the child process"). So we ask for workqueue, unless the user chose a layer (the
# NUMBA_THREADING_LAYER variable, or numba.config.THREADING_LAYER set before this import). The setting is read at
# numba's first parallel launch in this process: if other code launched one before, its layer stays, and a forked
# child of a process on the omp layer runs our kernels serially instead (_serial_in_child, set at fork).
if "NUMBA_THREADING_LAYER" not in os.environ and str(numba.config.THREADING_LAYER).lower() == "default":
    numba.config.THREADING_LAYER = "workqueue"

# The workqueue threading layer aborts on concurrent parallel launches; tbb and omp are thread-safe.
_PARALLEL_LOCK = threading.Lock()
_layer_is_threadsafe = False   # set after the first parallel launch, when numba has picked its layer
_serial_in_child = False       # True in a forked child of a process whose numba layer is omp


def _after_fork_in_child() -> None:
    """A fork may land while another thread holds _PARALLEL_LOCK (that thread does not exist in the child)."""
    global _PARALLEL_LOCK, _serial_in_child
    _PARALLEL_LOCK = threading.Lock()
    try:
        layer = numba.threading_layer()
    except ValueError:   # no parallel launch yet: the child picks its own layer (workqueue unless chosen otherwise)
        return
    _serial_in_child = _serial_in_child or layer == "omp"


os.register_at_fork(after_in_child=_after_fork_in_child)


def _check_layer(i: int, layer, n_in) -> tuple[np.ndarray, np.ndarray, np.ndarray | None, str]:
    if not isinstance(layer, dict):
        raise TypeError(f"layers[{i}] must be a dict with weight/bias/activation, got {type(layer).__name__}")
    expected = {"weight", "bias", "activation"} | ({"scale"} if "scale" in layer else set())
    expected |= {"compute"} if "compute" in layer else set()
    if set(layer) != expected:
        raise ValueError(f"layers[{i}] has keys {sorted(layer)}, expected weight, bias, activation (+ scale, compute)")
    w, b, act = layer["weight"], layer["bias"], layer["activation"]
    if not isinstance(w, np.ndarray) or w.ndim != 2 or w.dtype not in WEIGHT_DTYPES:
        raise TypeError(f"layers[{i}]['weight'] must be a 2-D float32/float16/int8/uint16 (bf16) ndarray, got "
                        f"{getattr(w, 'dtype', type(w).__name__)} {getattr(w, 'shape', '')}")
    if not w.flags.c_contiguous:
        raise ValueError(f"layers[{i}]['weight'] must be C-contiguous")
    if min(w.shape) < 1:
        raise ValueError(f"layers[{i}]['weight'] has shape {w.shape}; widths must be >= 1")
    if n_in is not None and w.shape[0] != n_in:
        raise ValueError(f"layers[{i}]['weight'] takes {w.shape[0]} inputs but layer {i - 1} gives {n_in}")
    out = w.shape[1]
    for key in ("bias", "scale"):
        v = layer.get(key)
        if v is None:
            continue
        if not isinstance(v, np.ndarray) or v.dtype != np.float32:
            raise TypeError(f"layers[{i}][{key!r}] must be a float32 ndarray, got "
                            f"{getattr(v, 'dtype', type(v).__name__)}")
        if v.shape != (out,):
            raise ValueError(f"layers[{i}][{key!r}] has shape {v.shape}, expected ({out},)")
        if not np.isfinite(v).all():
            raise ValueError(f"layers[{i}][{key!r}] contains NaN or infinite values")
    if (w.dtype == np.int8) != ("scale" in layer):
        raise ValueError(f"layers[{i}]: 'scale' is required iff the weight is int8 (weight is {w.dtype})")
    if w.dtype == np.uint16 and ((w & 0x7F80) == 0x7F80).any():
        raise ValueError(f"layers[{i}]['weight'] holds infinite or NaN bf16 values; weights must be finite")
    if w.dtype.kind == "f" and not np.isfinite(w).all():
        raise ValueError(f"layers[{i}]['weight'] contains NaN or infinite values")
    compute = layer.get("compute", COMPUTES[w.dtype][0])
    if compute not in COMPUTES[w.dtype]:
        raise ValueError(f"layers[{i}]['compute'] is {compute!r} for {w.dtype} weights; expected one of "
                         f"{COMPUTES[w.dtype]}")
    try:
        kind, alpha = parse_activation(act)
    except ValueError as e:
        raise ValueError(f"layers[{i}]['activation']: {e}") from None
    return w, b, layer.get("scale"), (ACTIVATION_CODES[kind], np.float32(1.0 if alpha is None else alpha)), compute


def _pack(w: np.ndarray) -> np.ndarray:
    """(in, out) weight -> (out_pad, in_pad) transposed, zero rows up to a multiple of NR and zero columns up to
    a multiple of KR; fp16 kept as its bits."""
    k_in, m_out = w.shape
    m_pad, k_pad = -(-m_out // NR) * NR, -(-k_in // KR) * KR
    packed = np.zeros((m_pad, k_pad), dtype=np.uint16 if w.dtype == np.float16 else w.dtype)
    packed[:m_out, :k_in] = (w.view(np.uint16) if w.dtype == np.float16 else w).T
    return packed


class Network:
    """A chain of fused dense+bias+activation layers; see the `_core.Network` contract in csrc/bindings.cpp."""

    isa = "numba"

    def __init__(self, layers, threads: int = 0):
        if not isinstance(layers, (list, tuple)) or not layers:
            raise TypeError("layers must be a non-empty list of layer dicts")
        if isinstance(threads, bool) or not isinstance(threads, (int, np.integer)) or threads < 0:
            raise ValueError(f"threads must be an integer >= 0 (0 = all cores), got {threads!r}")
        cores = numba.config.NUMBA_NUM_THREADS
        self.threads = cores if threads == 0 else min(int(threads), cores)
        self._layers = []
        self._colsums = []   # q8 only: int32 column sums of the int8 weights (out_pad,)
        sizes = []
        computes = set()
        for i, layer in enumerate(layers):
            w, b, scale, act, compute = _check_layer(i, layer, sizes[-1] if sizes else None)
            computes.add(compute)
            if len(computes) > 1:
                raise ValueError(f"layers[{i}] computes in {compute!r} but an earlier layer does not; every layer "
                                 "must use the same compute")
            if not sizes:
                sizes.append(int(w.shape[0]))
            sizes.append(int(w.shape[1]))
            col_scale = np.ones(w.shape[1], np.float32) if scale is None else scale.copy()
            # bf16 weights are kept as the float32 values they hold (widened once here).
            packed = _pack((w.astype(np.uint32) << 16).view(np.float32) if compute == "bf16" else w)
            self._layers.append((packed, col_scale, b.copy(), act))
            if compute == "q8":
                self._colsums.append(packed.astype(np.int32).sum(axis=1, dtype=np.int32))
        self.compute = computes.pop()
        self.kernel = "numba"
        self.layer_sizes = sizes
        self.nbytes = sum(wt.nbytes + b.nbytes + (s.nbytes if lay.get("scale") is not None else 0)
                          for (wt, s, b, _), lay in zip(self._layers, layers))
        self.nbytes += sum(c.nbytes for c in self._colsums)

    def __repr__(self) -> str:
        return f"<aefast numba Network layer_sizes={self.layer_sizes} threads={self.threads}>"

    def _check_forward(self, x, out, begin, end, input_scale):
        n_layers = len(self._layers)
        end = n_layers if end == -1 else end
        if not (0 <= begin < end <= n_layers):
            raise ValueError(f"need 0 <= begin < end <= {n_layers}, got begin={begin} end={end}")
        if not isinstance(x, np.ndarray) or x.dtype not in (np.float32, np.uint8) or x.ndim != 2:
            raise TypeError(f"x must be a 2-D float32 or uint8 ndarray, got {getattr(x, 'dtype', type(x))}")
        if not isinstance(out, np.ndarray) or out.dtype != np.float32 or out.ndim != 2:
            raise TypeError(f"out must be a 2-D float32 ndarray, got {getattr(out, 'dtype', type(out))}")
        if not (x.flags.c_contiguous and out.flags.c_contiguous and out.flags.writeable):
            raise ValueError("x and out must be C-contiguous and out writeable")
        if x.shape != (x.shape[0], self.layer_sizes[begin]) or out.shape != (x.shape[0], self.layer_sizes[end]):
            raise ValueError(f"expected x of shape (N, {self.layer_sizes[begin]}) and out of shape "
                             f"(N, {self.layer_sizes[end]}), got {x.shape} and {out.shape}")
        if np.shares_memory(x, out):
            raise ValueError("out must not alias x")
        if not np.isfinite(input_scale):
            raise ValueError(f"input_scale must be finite, got {input_scale}")
        return end

    def forward(self, x, out, begin: int = 0, end: int = -1, clip: bool = False, input_scale: float = 1.0):
        """Run layers [begin, end) on x (N, layer_sizes[begin]) into out (N, layer_sizes[end]) (overwritten)."""
        end = self._check_forward(x, out, begin, end, input_scale)
        if x.shape[0] == 0:
            return out
        serial = self.threads == 1 or x.shape[0] <= MB or _serial_in_child
        if self.compute == "q8":
            return self._forward_q8(x, out, begin, end, clip, input_scale, serial)
        scale = np.float32(input_scale)
        cur = x
        if self.compute == "bf16" and x.dtype == np.float32:   # uint8 values are exact in bf16
            cur = np.empty_like(x)
            _round_rows_to_bf16(x, cur)
        for li in range(begin, end):
            wt, col_scale, bias, act = self._layers[li]
            if wt.dtype != np.float32 and x.shape[0] >= DECODE_ONCE_ROWS:
                wt = _decode_all(wt)   # the same float32 values the panels would hold: results are bit-identical
            dst = out if li == end - 1 else np.empty((x.shape[0], self.layer_sizes[li + 1]), np.float32)
            args = (cur, wt, col_scale, bias, act, scale, bool(clip and li == end - 1), dst)
            if serial:
                _dense_serial(*args)
            else:
                self._run_parallel(_dense_parallel, args)
            if self.compute == "bf16" and li < end - 1:
                _round_rows_to_bf16(dst, dst)   # the next layer's input, as the C++ epilogue stores it
            cur, scale = dst, np.float32(1.0)
        return out

    def _forward_q8(self, x, out, begin, end, clip, input_scale, serial):
        """Quantized-activation int8: uint8 rows with per-row scale / zero point between layers (see precisions)."""
        n = x.shape[0]
        scale, zero = np.empty(n, np.float32), np.zeros(n, np.int32)
        k_pad = self._layers[begin][0].shape[1]
        q = np.zeros((n, k_pad), np.uint8)
        if x.dtype == np.uint8:
            q[:, :x.shape[1]] = x
            scale[:] = np.float32(input_scale)
        else:
            _quantize_rows(x, np.float32(input_scale), q, scale, zero)
        run = _q8_serial if serial else _q8_parallel
        for li in range(begin, end):
            wq, w_scale, bias, act = self._layers[li]
            last = li == end - 1
            dst = out if last else np.empty((n, self.layer_sizes[li + 1]), np.float32)
            if serial:
                run(q, scale, zero, wq, self._colsums[li], w_scale, bias, act, bool(clip and last), dst)
            else:
                self._run_parallel(run, (q, scale, zero, wq, self._colsums[li], w_scale, bias, act,
                                         bool(clip and last), dst))
            if not last:
                q = np.empty((n, self._layers[li + 1][0].shape[1]), np.uint8)
                _quantize_rows(dst, np.float32(1.0), q, scale, zero)
        return out

    def _run_parallel(self, kernel, args):
        global _layer_is_threadsafe
        if _layer_is_threadsafe:
            numba.set_num_threads(self.threads)   # thread-local setting in numba
            kernel(*args)
            return
        with _PARALLEL_LOCK:   # first launch (layer not chosen yet) or the workqueue layer
            numba.set_num_threads(self.threads)
            kernel(*args)
            _layer_is_threadsafe = numba.threading_layer() != "workqueue"
