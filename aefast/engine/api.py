"""The public inference API: `load` a model file into an `Engine`; compress / decompress / reconstruct / score.

An Engine is immutable after construction and safe to call from several Python threads at once: every call
allocates its own output, and the backend Network (C++ `_core.Network` or the numba one) is thread-safe.
Inputs are checked in Python (aefast/engine/inputs.py) before any compute runs; the caller's arrays are never written.
"""
from __future__ import annotations

import copy
import dataclasses
import os
import threading
from pathlib import Path

import numpy as np

from . import backend as _backend
from .inputs import ImageBatcher, code_batch
from .precisions import PRECISIONS, backend_layers
from ..errors import ModelFileError
from ..modelfile import AutoencoderWeights, read_model

BACKENDS = ("auto", "cpp", "numba")
DEFAULT_MODEL_PATH = Path(__file__).resolve().parent.parent / "models" / "default.safetensors"
_FLOAT32 = np.dtype(np.float32)
_empty = np.empty


def _cpp_network_class():
    """The C++ Network class, or None with the reason it is unavailable."""
    if _backend.core is None:
        return None, f"the compiled core did not load ({_backend.core_error})"
    cls = getattr(_backend.core, "Network", None)
    if cls is None:
        return None, "the compiled core has no Network (built from an older source?)"
    return cls, None


def _make_network(layers: list[dict], backend: str, isa: str, threads: int):
    """-> (network, backend name). threads: 0 = all cores."""
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
    cpp, why = _cpp_network_class()
    if backend == "cpp" or (backend == "auto" and cpp is not None):
        if cpp is None:
            raise RuntimeError(f"backend='cpp' requested but {why}; use backend='numba' or 'auto'")
        return cpp(layers, isa=isa, threads=threads), "cpp"
    if isa not in ("auto", "numba"):  # numba has one code path
        raise ValueError(f"isa={isa!r} applies to the cpp backend only; the numba backend has isa 'numba'")
    from .numba_backend import Network  # imports numba: only now

    return Network(layers, threads=threads), "numba"


def available_backends() -> list[tuple[str, str]]:
    """(backend, isa) pairs usable here, best first: each cpp ISA when the compiled Network exists, then numba."""
    cpp, _ = _cpp_network_class()
    pairs = [("cpp", isa) for isa in _backend.core.isas()] if cpp is not None else []
    return pairs + [("numba", "numba")]


class Engine:
    """A loaded autoencoder ready for inference.

    Attributes: layer_sizes, latent_size, input_shape, pixel_scale, precision, backend ("cpp"/"numba"), isa,
    threads, nbytes (bytes of weights as the backend holds them), metadata (training, metrics, data_sha256).
    """

    def __init__(self, weights: AutoencoderWeights, precision: str = "fp32", backend: str = "auto",
                 threads: int | None = None, isa: str = "auto", source: str = "<weights>"):
        if not isinstance(weights, AutoencoderWeights):
            raise TypeError(f"weights must be an AutoencoderWeights, got {type(weights).__name__}")
        if precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
        if threads is not None and (isinstance(threads, bool) or not isinstance(threads, (int, np.integer))
                                    or threads < 1):
            raise ValueError(f"threads must be None (all cores) or an integer >= 1, got {threads!r}")
        weights.validate(source)
        self._pickle_state = _pickle_state(weights, precision, backend, threads, isa, source)
        self.source = source
        self.precision = precision
        self.layer_sizes = list(weights.layer_sizes)
        self.encoder_layers = int(weights.encoder_layers)
        self.latent_size = weights.latent_size
        self.input_shape = tuple(weights.input_shape)
        self.pixel_scale = float(weights.pixel_scale)
        self.activations = list(weights.activations)
        self.metadata = {"training": dict(weights.training), "metrics": dict(weights.metrics),
                         "data_sha256": dict(weights.data_sha256)}
        self._net, self.backend = _make_network(backend_layers(weights, precision), backend, isa,
                                                0 if threads is None else int(threads))
        self.isa = self._net.isa
        self.threads = int(self._net.threads)
        self.nbytes = int(self._net.nbytes)
        # Per-call constants, looked up once (the batch-1 path is a few microseconds of Python around the backend).
        self._images = ImageBatcher(self.input_shape)
        self._forward = self._net.forward
        self._u8_scale = 1.0 / self.pixel_scale   # uint8 pixels: the backend folds this into the first layer
        self._last = len(self.layer_sizes) - 1
        self._output_size = self.layer_sizes[-1]

    def __reduce__(self):
        # Pickle (also copy.deepcopy, spawn/forkserver pools, Dask) as weights + settings, never as the backend
        # Network (a C++ object) or a file path the receiving process may not have. The receiver rebuilds with the
        # requested backend/isa/threads: "auto" and threads=None resolve on the receiving machine.
        return (_engine_from_state, self._pickle_state)

    def __repr__(self) -> str:
        sizes = "-".join(map(str, self.layer_sizes))
        return (f"<aefast.Engine {sizes} latent={self.latent_size} precision={self.precision} "
                f"backend={self.backend} isa={self.isa} threads={self.threads} nbytes={self.nbytes} "
                f"source={self.source!r}>")

    def _run(self, x: np.ndarray, begin: int, end: int, clip: bool = False) -> np.ndarray:
        """x: checked C-contiguous (N, layer_sizes[begin]) uint8 or float32 -> a new (N, layer_sizes[end]) float32."""
        out = _empty((x.shape[0], self.layer_sizes[end]), _FLOAT32)   # per call: nothing shared between threads
        self._forward(x, out, begin, end, clip, self._u8_scale if x.itemsize == 1 else 1.0)
        return out

    def compress(self, images) -> np.ndarray:
        """images (N, *input_shape) | (N, input_size) | one image -> codes (N, latent_size) float32."""
        x, single = self._images(images)
        out = self._run(x, 0, self.encoder_layers)
        return out[0] if single else out

    def decompress(self, codes, clip: bool = False) -> np.ndarray:
        """codes (N, latent_size) | (latent_size,) -> images (N, input_size) float32 in [0, 1] scale."""
        c, single = code_batch(codes, self.latent_size)
        out = self._run(c, self.encoder_layers, len(self.layer_sizes) - 1, clip)
        return out[0] if single else out

    def reconstruct(self, images, clip: bool = False) -> np.ndarray:
        """decoder(encoder(images)) -> (N, input_size) float32; clip=True clamps to [0, 1] in the last layer."""
        x, single = self._images(images)
        out = _empty((x.shape[0], self._output_size), _FLOAT32)
        self._forward(x, out, 0, self._last, clip, self._u8_scale if x.itemsize == 1 else 1.0)
        return out[0] if single else out

    def score(self, images) -> np.ndarray:
        """Per-image mean squared reconstruction error (N,) float32, pixels in [0, 1] scale (anomaly score)."""
        x, single = self._images(images)
        recon = self._run(x, 0, self._last)
        target = x * np.float32(1.0 / self.pixel_scale) if x.dtype == np.uint8 else x
        recon -= target
        err = np.einsum("ij,ij->i", recon, recon, dtype=np.float64) / max(x.shape[1], 1)
        err = err.astype(np.float32)
        return err[0] if single else err


def _pickle_state(weights: AutoencoderWeights, precision, backend, threads, isa, source) -> tuple:
    """A private, read-only snapshot of the weights (the caller may mutate theirs later) and the settings."""
    def frozen(a: np.ndarray) -> np.ndarray:
        a = np.array(a, copy=True)
        a.flags.writeable = False
        return a

    snapshot = dataclasses.replace(weights, kernels=[frozen(k) for k in weights.kernels],
                                   biases=[frozen(b) for b in weights.biases], activations=list(weights.activations),
                                   input_shape=tuple(weights.input_shape), training=copy.deepcopy(weights.training),
                                   metrics=copy.deepcopy(weights.metrics),
                                   data_sha256=dict(weights.data_sha256))
    return snapshot, precision, backend, threads, isa, source


def _engine_from_state(weights, precision, backend, threads, isa, source) -> "Engine":
    return Engine(weights, precision, backend, threads, isa, source)


def load(source, precision: str = "fp32", backend: str = "auto", threads: int | None = None,
         isa: str = "auto") -> Engine:
    """An Engine from a model file path or an AutoencoderWeights.

    precision: fp32 | fp16 (half weights, fp32 math) | int8 (per-channel symmetric weights, fp32 activations).
    backend: auto (cpp when the compiled core has a Network, else numba) | cpp | numba.
    threads: None = all cores; 1 = the calling thread only (deterministic). isa: cpp only ("auto", "avx2", "scalar").
    """
    if isinstance(source, AutoencoderWeights):
        return Engine(source, precision, backend, threads, isa)
    if isinstance(source, (str, os.PathLike)):
        return Engine(read_model(source), precision, backend, threads, isa, source=str(source))
    raise TypeError(f"load() takes a model file path or an AutoencoderWeights, got {type(source).__name__}")


_default_lock = threading.Lock()
_default: Engine | None = None


def default_engine() -> Engine:
    """The Engine for the model shipped in the package (aefast/models/default.safetensors), created once."""
    global _default
    if _default is None:
        with _default_lock:
            if _default is None:
                if not DEFAULT_MODEL_PATH.exists():
                    raise ModelFileError(f"{DEFAULT_MODEL_PATH}: the default model is missing from this install; "
                                         "train one (see README) or pass a path to aefast.load()")
                _default = load(DEFAULT_MODEL_PATH)
    return _default


def compress(images) -> np.ndarray:
    """default_engine().compress(images)."""
    return default_engine().compress(images)


def decompress(codes, clip: bool = False) -> np.ndarray:
    """default_engine().decompress(codes)."""
    return default_engine().decompress(codes, clip)


def reconstruct(images, clip: bool = False) -> np.ndarray:
    """default_engine().reconstruct(images)."""
    return default_engine().reconstruct(images, clip)


def score(images) -> np.ndarray:
    """default_engine().score(images)."""
    return default_engine().score(images)
