"""BuildContext: one model, its input images and the heavy objects built from them (engines, peers' models), built
once and cached; `prepare(contender, op, batch)` returns a checked, ready-to-time runner or raises Skipped."""
from __future__ import annotations

import functools
import os

import numpy as np

from ...engine.reference import reference_forward
from ...modelfile import AutoencoderWeights
from ..models import OPERATIONS, op_end
from ..quiet import native_chatter_filtered
from .base import Contender, Prepared, Skipped, check_errors, tolerance


class BuildContext:
    """One model and its inputs, with the objects contenders need built lazily and cached."""

    def __init__(self, weights: AutoencoderWeights, images: np.ndarray, description: str = ""):
        if images.dtype != np.float32 or images.ndim != 2 or images.shape[1] != weights.input_size:
            raise ValueError(f"images must be float32 (N, {weights.input_size}), got {images.dtype} {images.shape}")
        self.weights = weights
        self.images = images
        self.description = description  # where the weights and images came from, for the records
        self._cache: dict = {}

    def cached(self, key, make):
        """make() the first time `key` is asked for, the same object afterwards (engines, peers' models)."""
        if key not in self._cache:
            self._cache[key] = make()
        return self._cache[key]

    def inputs(self, batch: int) -> np.ndarray:
        """The first `batch` images, C-contiguous float32 (batch, in)."""
        if not 1 <= batch <= len(self.images):
            raise ValueError(f"batch {batch} outside 1..{len(self.images)} (the images loaded)")
        return self.cached(("x", batch), lambda: np.ascontiguousarray(self.images[:batch]))

    def engine(self, precision: str, backend: str, threads: int | None):
        def make():
            try:
                import aefast
                load = aefast.load
            except (ImportError, AttributeError) as e:
                raise Skipped(f"aefast.load is not available yet ({e})") from None
            try:
                return load(self.weights, precision=precision, backend=backend, threads=threads)
            except (ImportError, RuntimeError, ValueError, NotImplementedError) as e:
                raise Skipped(f"aefast.load(precision={precision!r}, backend={backend!r}) failed: {e}") from None
        return self.cached(("engine", precision, backend, threads), make)

    def engine_threads(self) -> int:
        """The thread count of aefast's C++ fp32 engine on all cores (what its contenders use), for a peer to match;
        the usable cores when the engine is not available."""
        try:
            return self.engine("fp32", "cpp", None).threads
        except Skipped:
            return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1

    def reference(self, op: str, batch: int) -> tuple[np.ndarray, str]:
        """The answer every contender is checked against: the engine's fp32 C++ output (all threads);
        float64 NumPy when the engine is not available."""
        def make():
            x = self.inputs(batch)
            try:
                engine = self.engine("fp32", "cpp", None)
                return _as_rows(getattr(engine, op)(x), batch), "aefast cpp fp32"
            except Exception as e:  # no engine here (or a broken one): its contenders will fail their checks
                why = str(e) if isinstance(e, Skipped) else f"{type(e).__name__}: {e}"
                return (reference_forward(self.weights, x, 0, op_end(self.weights, op)),
                        f"numpy float64 (aefast cpp fp32 unavailable: {why})")
        return self.cached(("reference", op, batch), make)

    def reference_error(self, op: str, batch: int = 64) -> tuple[str, float]:
        """(reference name, its relative RMS error against float64 NumPy) on the first `batch` images: the
        reference every contender is checked against is itself checked."""
        batch = min(batch, len(self.images))
        ref, name = self.reference(op, batch)
        return name, check_errors(ref, reference_forward(self.weights, self.inputs(batch), 0,
                                                         op_end(self.weights, op)))[0]

    # --- preparation and check --------------------------------------------------------------------------------
    def prepare(self, contender: Contender, op: str, batch: int) -> Prepared:
        """Build `contender` for (op, batch), run it once on the stored input and check it; raise Skipped on failure."""
        if op not in OPERATIONS:
            raise ValueError(f"unknown operation {op!r}, expected one of {OPERATIONS}")
        x = self.inputs(batch)
        ref, ref_name = self.reference(op, batch)
        try:
            with native_chatter_filtered():   # the peers' start-up lines (quiet.py)
                fn = contender.build(self, op, batch)
                y = _as_rows(fn(x), batch)
        except Skipped:
            raise
        except Exception as e:  # a peer library failing to convert or run is a result to report, not a crash
            raise Skipped(f"failed to build or run: {type(e).__name__}: {e}") from None
        rel, max_abs = check_errors(y, ref)
        tol = tolerance(contender.precision)
        if not rel <= tol:
            raise Skipped(f"check failed: relative RMS error {rel:.2e} > {tol:.0e} against {ref_name}")
        engine = getattr(fn, "__self__", None)
        details = {k: getattr(engine, k) for k in ("backend", "isa", "kernel", "threads", "nbytes") if hasattr(engine, k)}
        return Prepared(contender, op, batch, functools.partial(fn, x), rel, max_abs, ref_name, details)


def _as_rows(y, batch: int) -> np.ndarray:
    y = np.asarray(y)
    if y.shape[:1] != (batch,):
        raise Skipped(f"output shape {y.shape} does not start with the batch size {batch}")
    return y.reshape(batch, -1)
