"""aefast: a small, fast, honest autoencoder engine for images.

Light to import: numpy only. The engine (and numba) load on first use; TensorFlow only for training/export.
"""
from __future__ import annotations

import importlib

from .engine import backend as _backend
from .errors import DataFileError, ModelFileError
from .modelfile import AutoencoderWeights, read_model, save_model

__version__ = "0.1.0"

# name -> submodule that defines it, imported on first access (PEP 562).
_LAZY = {
    "Engine": "engine",
    "load": "engine",
    "default_engine": "engine",
    "compress": "engine",
    "decompress": "engine",
    "reconstruct": "engine",
    "score": "engine",
    "export_keras": "keras_io",
    "load_keras": "keras_io",
}

__all__ = ["AutoencoderWeights", "DataFileError", "ModelFileError", "read_model", "save_model", *_LAZY]


def __getattr__(name: str):
    if name in _LAZY:
        value = getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'aefast' has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(_LAZY))
