"""aefast: a small, fast, honest autoencoder engine for images.

Light to import: numpy only. `import aefast` loads the model file format (aefast.model) and the exception types;
the engine (with the compiled core or numba) loads on first use of an engine name, TensorFlow only for
training/export. Subpackages (aefast.engine, aefast.data, ...) load when first named, e.g. `aefast.engine`.
"""
from __future__ import annotations

import importlib

from .errors import DataFileError, ModelFileError
from .model import AutoencoderWeights, read_model, save_model

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
    "export_onnx": "interop",
    "from_torch": "interop",
    "read_onnx": "interop",
}
# Submodules reachable as attributes of the package before anything imported them (aefast.engine, ...).
_SUBMODULES = ("analyze", "bench", "cli", "dask", "data", "engine", "errors", "export", "interop", "keras_io",
               "model", "modelfile", "train")

__all__ = ["AutoencoderWeights", "DataFileError", "ModelFileError", "read_model", "save_model", *_LAZY]


def __getattr__(name: str):
    if name in _LAZY:
        value = getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
        globals()[name] = value
        return value
    if name in _SUBMODULES:
        return importlib.import_module(f".{name}", __name__)
    raise AttributeError(f"module 'aefast' has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(_LAZY) | set(_SUBMODULES))
