"""The inference engine: load a model file into an `Engine`, then compress / decompress / reconstruct / score.

Layout (one job per module):
  api            the public API: Engine, load, default_engine and the module-level shortcuts
  inputs         checks of what users pass (images, codes) before any compute runs
  precisions     fp32 / fp16 / int8 / bf16 layer lists for the backends (quantization lives here)
  backend        which compute backend loaded: the compiled `aefast._core`, else numba
  numba_network  the numba twin of `_core.Network` (layer checks, chaining, threading layer, fork)
  numba_kernels  its compiled kernels (dense tiles, uint8 quantization, bf16 rounding, ELU / sigmoid)
  numba_backend  the import path of both
  reference      the plain float64 NumPy twin, for tests and benchmarks
"""
from __future__ import annotations

from .api import (BACKENDS, DEFAULT_MODEL_PATH, Engine, available_backends, compress, decompress, default_engine,
                  load, reconstruct, score)

__all__ = ["BACKENDS", "DEFAULT_MODEL_PATH", "Engine", "available_backends", "compress", "decompress",
           "default_engine", "load", "reconstruct", "score"]
