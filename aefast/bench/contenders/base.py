"""What every contender family shares: the Contender record, its checked Prepared form, Skipped, the check
(relative RMS error against the reference, per-precision tolerances) and the lazy import of a peer's package."""
from __future__ import annotations

import importlib
import os
from dataclasses import dataclass
from typing import Callable

import numpy as np

from ...errors import Skipped  # noqa: F401 (re-exported: the contender families import it from here)

# Largest relative RMS error ||y - ref|| / ||ref|| a contender of each precision may show against the reference.
# fp32: summation order only; fp16: weights rounded to 11 bits; bf16: weights and activations rounded to 8 bits of
# mantissa; int8: weights and activations quantized to 8 bits; int8w: weights only.
REL_RMS_TOLERANCE = {"fp32": 1e-4, "fp16": 1e-2, "bf16": 2e-2, "int8": 1e-1, "int8w": 1e-1}
# Which multiply-add instruction bounds a precision's arithmetic, i.e. which machine ceiling it is measured against
# (machine.PEAK_KINDS): fp16 and int8w weights are widened to fp32 and multiplied with FMA.
ARITHMETIC = {"fp32": "fp32", "fp16": "fp32", "int8w": "fp32", "bf16": "bf16", "int8": "int8"}


def arithmetic_of(precision: str) -> str:
    """"fp32", "bf16" or "int8": the arithmetic (and machine ceiling) of `precision`; a precision named after none
    of the known ones counts as fp32."""
    if precision in ARITHMETIC:
        return ARITHMETIC[precision]
    return next((a for a in ("int8", "bf16") if precision.startswith(a)), "fp32")


def tolerance(precision: str) -> float:
    """The check's largest relative RMS error for `precision`; an unknown precision gets its arithmetic's loosest."""
    if precision in REL_RMS_TOLERANCE:
        return REL_RMS_TOLERANCE[precision]
    return {"int8": 1e-1, "bf16": 2e-2, "fp32": 1e-2}[arithmetic_of(precision)]

Runner = Callable[[np.ndarray], np.ndarray]


@dataclass(frozen=True)
class Contender:
    """name: shown in tables; family: "aefast" or "peer"; precision: what the targets group by and the check's
    tolerance (`tolerance`); build(ctx, op, batch) returns a function (batch, in) float32 -> output, or raises
    Skipped."""

    name: str
    family: str
    precision: str
    build: Callable[["BuildContext", str, int], Runner]   # BuildContext: context.py (which imports this module)

    @property
    def arithmetic(self) -> str:
        return arithmetic_of(self.precision)


@dataclass
class Prepared:
    """A checked contender, ready to time: run() computes one batch of the stored input."""

    contender: Contender
    op: str
    batch: int
    run: Callable[[], np.ndarray]
    rel_rms_error: float
    max_abs_error: float
    reference: str
    details: dict  # for aefast engines: backend, isa, threads, nbytes


def require(module: str):
    """The imported module, or Skipped naming it when it is not installed."""
    try:
        return importlib.import_module(module)
    except ImportError as e:
        raise Skipped(f"{module} is not installed ({e})") from None


def tensorflow():
    """TensorFlow (its C++ logging below warnings), or Skipped when it is not installed."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    return require("tensorflow")


_require, _tf = require, tensorflow   # older names, kept for callers


def check_errors(y: np.ndarray, ref: np.ndarray) -> tuple[float, float]:
    """(relative RMS error, max abs error) of y against ref; inf when shapes differ or y is not finite."""
    if y.shape != ref.shape or not np.isfinite(y).all():
        return float("inf"), float("inf")
    diff = y.astype(np.float64) - ref
    scale = max(float(np.sqrt(np.mean(np.square(ref, dtype=np.float64)))), 1e-30)
    return float(np.sqrt(np.mean(diff * diff))) / scale, float(np.max(np.abs(diff), initial=0.0))
