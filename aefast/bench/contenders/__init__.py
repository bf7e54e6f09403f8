"""Who runs the benchmark: aefast's engine and its peers, each checked against the engine's fp32 answer.

One package for both `python -m aefast.bench` and `pytest bench/`: a `BuildContext` (context.py) holds one model,
its input images and the heavy objects built from them (engines, Keras model, ONNX and TFLite files), built once and
cached; `BuildContext.prepare(contender, op, batch)` returns a `Prepared` zero-argument runner whose output has
already been checked, or raises `Skipped` saying why (package missing, engine not built, check failed).

Modules: base (Contender, Prepared, Skipped, the check and its tolerances), context (BuildContext), registry (every
contender, by family), and one module per family: aefast_engines, numpy_matmul, tensorflow_graphs (Keras, XLA),
onnx_runtime, tflite_interpreters (TFLite, LiteRT).
"""
from __future__ import annotations

from .aefast_engines import aefast_contenders
from .base import (ARITHMETIC, REL_RMS_TOLERANCE, Contender, Prepared, Runner, Skipped, _require, _tf,
                   arithmetic_of, check_errors, require, tolerance)
from .context import BuildContext
from .numpy_matmul import numpy_forward
from .registry import CONTENDERS, CONTENDERS_BY_NAME, FAMILIES, PEER_CONTENDERS, select_contenders

__all__ = ["ARITHMETIC", "REL_RMS_TOLERANCE", "Contender", "Prepared", "Runner", "Skipped", "arithmetic_of",
           "check_errors", "require", "tolerance", "BuildContext", "aefast_contenders", "numpy_forward",
           "CONTENDERS", "CONTENDERS_BY_NAME", "FAMILIES", "PEER_CONTENDERS", "select_contenders", "_require", "_tf"]
