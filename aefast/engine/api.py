"""The public inference API: `load` a model file into an `Engine`; compress / decompress / reconstruct / score.

An Engine is immutable after construction and safe to call from several Python threads at once: every call
allocates its own output, and the backend Network (C++ `_core.Network` or the numba one) is thread-safe.
Inputs are checked in Python (aefast/engine/inputs.py) before any compute runs; the caller's arrays are never written.

Threads: `threads=None` is every CPU this process may run on (its affinity mask, `os.sched_getaffinity`); an integer
asks for that many, and the engine uses min(threads, those CPUs): for these compute-bound kernels a pool larger than
the CPUs only adds hand-off and spinning (64 threads on 2 CPUs ran batch 1 15x slower). Counts outside 1..MAX_THREADS
are refused. The same rule holds on both backends (numba is further capped by its NUMBA_NUM_THREADS).

fork(): a forked child inherits copies of the C++ pool's locks in whatever state the parent's threads had them. An
Engine built before the fork therefore rebuilds its backend network from its weights on its first call in the child
(os.register_at_fork below), and the inherited network is kept alive, unused, so none of its copied locks is touched.
"""
from __future__ import annotations

import copy
import dataclasses
import os
import threading
import weakref
from pathlib import Path

import numpy as np
from numpy.typing import ArrayLike

from . import backend as _backend
from .inputs import ImageBatcher, code_batch, decoder_code_limit
from .precisions import PRECISIONS, backend_layers
from ..errors import ModelFileError, UnsupportedModelError
from ..interop.load import read_any
from ..model.activations import parse_activation
from ..model.weights import AutoencoderWeights

BACKENDS = ("auto", "cpp", "numba")
DEFAULT_MODEL_PATH = Path(__file__).resolve().parent.parent / "models" / "default.safetensors"
_FLOAT32 = np.dtype(np.float32)
_empty = np.empty
MAX_THREADS = 256   # = _core.MAX_THREADS (csrc/thread_pool.h): more is a typo or abuse, each one an OS thread
# What a compiled core without an ACTIVATIONS attribute runs (it predates the parametric activations).
_OLD_CORE_ACTIVATIONS = ("linear", "elu", "sigmoid")


def backend_activations(backend: str) -> tuple[tuple[str, ...], bool]:
    """(the activation kinds `backend`'s kernels run, whether they take alpha): the compiled core's ACTIVATIONS, or
    the numba kernels' ACTIVATION_CODES."""
    if backend == "cpp":
        kinds = getattr(_backend.core, "ACTIVATIONS", None)
        return (tuple(kinds), True) if kinds is not None else (_OLD_CORE_ACTIVATIONS, False)
    from .numba_kernels import ACTIVATION_CODES

    return tuple(ACTIVATION_CODES), True


def check_engine_activations(activations: list[str], backend: str, source: str) -> None:
    """UnsupportedModelError naming the first layer whose activation `backend` has no kernel for (a model file may
    name activations an older build lacks: it is refused, never run wrong)."""
    kinds, with_alpha = backend_activations(backend)
    for i, act in enumerate(activations):
        kind, _ = parse_activation(act)
        if kind not in kinds or (not with_alpha and act not in kinds):
            raise UnsupportedModelError(
                f"{source}: layer {i} (dense_{i}): activation {act!r} is not supported by this engine build (the "
                f"{backend} backend runs {', '.join(kinds)}{'' if with_alpha else ', without parameters'}); the "
                "model itself is valid: aefast.engine.reference.reference_forward runs it in float64")


def usable_cpus() -> int:
    """The CPUs this process may run on: its affinity mask (a container or `taskset` may allow fewer than exist)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):   # no sched_getaffinity on this OS
        return max(1, os.cpu_count() or 1)


def resolve_threads(threads) -> int:
    """threads as given to load()/Engine -> the pool size: min(threads or usable_cpus(), usable_cpus())."""
    if threads is None:
        return min(usable_cpus(), MAX_THREADS)
    if isinstance(threads, bool) or not isinstance(threads, (int, np.integer)):
        raise TypeError(f"threads must be None (the CPUs this process may use) or an integer in 1..{MAX_THREADS}, "
                        f"got {type(threads).__name__}")
    if not 1 <= threads <= MAX_THREADS:
        bits = int(threads).bit_length()
        shown = threads if bits <= 64 else f"an integer of {bits} bits"
        raise ValueError(f"threads must be None (the CPUs this process may use) or an integer in 1..{MAX_THREADS}, "
                         f"got {shown}")
    return min(int(threads), usable_cpus())


def _checked_clip(clip) -> bool:
    if clip is True or clip is False or type(clip) is np.bool_:
        return bool(clip)
    raise TypeError(f"clip must be True or False, got {clip!r}")


def _cpp_network_class():
    """The C++ Network class, or None with the reason it is unavailable."""
    if _backend.core is None:
        return None, f"the compiled core did not load ({_backend.core_error})"
    cls = getattr(_backend.core, "Network", None)
    if cls is None:
        return None, "the compiled core has no Network (built from an older source?)"
    return cls, None


def _make_network(layers: list[dict], backend: str, isa: str, threads: int, source: str = "<weights>",
                  tiles: str | list[str] = "builtin"):
    """-> (network, backend name). threads: the pool size, from resolve_threads. An activation the chosen backend
    has no kernel for is an UnsupportedModelError naming `source` and the layer. tiles: the register tiles, a
    setting of aefast.engine.tiles (checked by setting_from) or one tile name per layer (a rebuild's exact tiles);
    only q8, bf16 and f16-weight layers on the cpp backend have a choice."""
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
    cpp, why = _cpp_network_class()
    activations = [layer["activation"] for layer in layers]
    if backend == "cpp" or (backend == "auto" and cpp is not None):
        if cpp is None:
            raise RuntimeError(f"backend='cpp' requested but {why}; use backend='numba' or 'auto'")
        check_engine_activations(activations, "cpp", source)
        isa = _backend.resolve_isa(isa)
        if hasattr(_backend.core, "_time_tiles"):
            layers = _with_tiles(layers, isa, tiles)
        return cpp(layers, isa=isa, threads=threads), "cpp"
    if isa not in ("auto", "numba"):  # numba has one code path
        raise ValueError(f"isa={isa!r} applies to the cpp backend only; the numba backend has isa 'numba'")
    check_engine_activations(activations, "numba", source)
    from .numba_backend import Network  # imports numba: only now

    return Network(layers, threads=threads), "numba"


def _tile_precision(layer: dict) -> str | None:
    """The tile family precision of a backend layer dict ("q8", "bf16", "f16"), None when it has no tile choice."""
    compute = layer.get("compute", "f32")
    if compute in ("q8", "bf16"):
        return compute
    return "f16" if layer["weight"].dtype == np.float16 else None


def _with_tiles(layers: list[dict], isa: str, tiles: str | list[str]) -> list[dict]:
    """The layer dicts with their "tile" key set where the layer has a tile choice (new dicts; the arrays are
    shared). tiles: a setting (aefast.engine.tiles) or one name per layer ("" where there is no choice)."""
    from . import tiles as _tiles

    core = _backend.core
    precisions = [_tile_precision(layer) for layer in layers]
    if isinstance(tiles, list):
        names = tiles
    else:
        names = [""] * len(layers)
        for precision in dict.fromkeys(p for p in precisions if p):
            where = [i for i, p in enumerate(precisions) if p == precision]
            kernel = core.kernel_for(isa, precision)
            chosen = _tiles.choose(core, kernel, [layers[i]["weight"].shape for i in where], tiles, precision)
            for i, name in zip(where, chosen):
                names[i] = name
    return [dict(layer, tile=name) if p and name else layer for layer, p, name in zip(layers, precisions, names)]


def available_backends() -> list[tuple[str, str]]:
    """(backend, isa) pairs usable here, best first: each cpp ISA when the compiled Network exists, then numba."""
    cpp, _ = _cpp_network_class()
    pairs = [("cpp", isa) for isa in _backend.core.isas()] if cpp is not None else []
    return pairs + [("numba", "numba")]


class Engine:
    """A loaded autoencoder ready for inference.

    Attributes: layer_sizes, latent_size, input_shape, pixel_scale, precision, backend ("cpp"/"numba"), isa, kernel,
    threads, nbytes (bytes of weights as the backend holds them), metadata (training, metrics, data_sha256),
    max_code (decompress refuses codes larger in magnitude: beyond it the decoder could overflow float32),
    tiles (per layer, the register tile it runs with on the cpp backend: int8 e.g. ["8x32", ...], bf16 e.g.
    "mixed", fp16 "zmm"; "" where the kernel has no tile choice (fp32); see aefast/engine/tiles.py).
    """

    def __init__(self, weights: AutoencoderWeights, precision: str = "fp32", backend: str = "auto",
                 threads: int | None = None, isa: str = "auto", source: str = "<weights>", tiles: str | None = None):
        if not isinstance(weights, AutoencoderWeights):
            raise TypeError(f"weights must be an AutoencoderWeights, got {type(weights).__name__}")
        if precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
        n_threads = resolve_threads(threads)
        from .tiles import setting_from

        tile_setting = setting_from(tiles)
        weights.validate(source)
        self._pickle_state = _pickle_state(weights, precision, backend, threads, isa, source, tiles)
        self.source = source
        self.precision = precision
        self.layer_sizes = list(weights.layer_sizes)
        self.encoder_layers = int(weights.encoder_layers)
        self.latent_size = weights.latent_size
        self.input_shape = tuple(weights.input_shape)
        self.pixel_scale = float(weights.pixel_scale)
        self.integrity = weights.integrity   # model file digest: verified / absent (not checked) / unchecked
        self.activations = list(weights.activations)
        self.metadata = {"training": dict(weights.training), "metrics": dict(weights.metrics),
                         "data_sha256": dict(weights.data_sha256)}
        layers = backend_layers(weights, precision)
        self._net, self.backend = _make_network(layers, backend, isa, n_threads, source, tile_setting)
        self._weights = self._pickle_state[0]   # to rebuild the network in a forked child
        self.max_code = decoder_code_limit(layers[self.encoder_layers:])
        self.isa = self._net.isa
        self.kernel = self._net.kernel   # what really runs the layers, e.g. "avx512vnni" for int8 on AVX-512 VNNI
        self.threads = int(self._net.threads)
        self.nbytes = int(self._net.nbytes)
        self.tiles = list(getattr(self._net, "tiles", None) or [""] * len(layers))
        # Per-call constants, looked up once (the batch-1 path is a few microseconds of Python around the backend).
        self._images = ImageBatcher(self.input_shape)
        self._forward = self._net.forward
        self._u8_scale = 1.0 / self.pixel_scale   # uint8 pixels: the backend folds this into the first layer
        self._last = len(self.layer_sizes) - 1
        self._output_size = self.layer_sizes[-1]
        if self.backend == "cpp":   # the numba Network holds no native locks (its module lock is reset at fork)
            _cpp_engines.add(self)

    def _after_fork_in_child(self) -> None:
        """In a forked child (one thread, before any other Python code): park the inherited network and make the
        next call rebuild one. The old network is never run, nor freed (its destructor would be safe, see
        csrc/thread_pool.h, but nothing is gained by touching memory whose locks may be held by absent threads)."""
        _inherited_networks.append(self._net)
        self._net = None
        self._rebuild_lock = threading.Lock()
        self._forward = self._rebuild_then_forward

    def _rebuild_then_forward(self, *args) -> None:
        with self._rebuild_lock:
            if self._net is None:
                self._net, _ = _make_network(backend_layers(self._weights, self.precision), self.backend, self.isa,
                                             self.threads, tiles=self.tiles)
                self._forward = self._net.forward
        self._net.forward(*args)

    def __reduce__(self):
        # Pickle (also copy.deepcopy, spawn/forkserver pools, Dask) as weights + settings, never as the backend
        # Network (a C++ object) or a file path the receiving process may not have. The receiver rebuilds with the
        # requested backend/isa/threads: "auto" and threads=None resolve on the receiving machine.
        return (_engine_from_state, self._pickle_state)

    def __repr__(self) -> str:
        sizes = "-".join(map(str, self.layer_sizes))
        return (f"<aefast.Engine {sizes} latent={self.latent_size} precision={self.precision} "
                f"backend={self.backend} isa={self.isa} kernel={self.kernel} tiles={','.join(self.tiles)} "
                f"threads={self.threads} "
                f"nbytes={self.nbytes} source={self.source!r} integrity={self.integrity}>")

    def _run(self, x: np.ndarray, begin: int, end: int, clip: bool = False) -> np.ndarray:
        """x: checked C-contiguous (N, layer_sizes[begin]) uint8 or float32 -> a new (N, layer_sizes[end]) float32."""
        out = _empty((x.shape[0], self.layer_sizes[end]), _FLOAT32)   # per call: nothing shared between threads
        self._forward(x, out, begin, end, clip, self._u8_scale if x.itemsize == 1 else 1.0)
        return out

    def compress(self, images: ArrayLike) -> np.ndarray:
        """images (N, *input_shape) | (N, input_size) | one image -> codes (N, latent_size) float32."""
        x, single = self._images(images)
        out = self._run(x, 0, self.encoder_layers)
        return out[0] if single else out

    def decompress(self, codes: ArrayLike, clip: bool = False) -> np.ndarray:
        """codes (N, latent_size) | (latent_size,) -> images (N, input_size) float32 in [0, 1] scale.

        Codes larger in magnitude than max_code (e.g. 3e38) are a ValueError: below it the decoder provably stays
        within float32, so no NaN/inf is ever returned, nor hidden by clip (the kernels' clip maps NaN into [0, 1])."""
        clip = _checked_clip(clip)
        c, single = code_batch(codes, self.latent_size, self.max_code)
        out = self._run(c, self.encoder_layers, self._last, clip)
        return out[0] if single else out

    def reconstruct(self, images: ArrayLike, clip: bool = False) -> np.ndarray:
        """decoder(encoder(images)) -> (N, input_size) float32; clip=True clamps to [0, 1] in the last layer."""
        clip = _checked_clip(clip)
        x, single = self._images(images)
        out = _empty((x.shape[0], self._output_size), _FLOAT32)
        self._forward(x, out, 0, self._last, clip, self._u8_scale if x.itemsize == 1 else 1.0)
        return out[0] if single else out

    def score(self, images: ArrayLike) -> np.ndarray:
        """Per-image mean squared reconstruction error (N,) float32, pixels in [0, 1] scale (anomaly score), of the
        reconstruction as served: clipped to [0, 1] like reconstruct(clip=True), `aefast reconstruct` and the
        trainer's test MSE (a linear output may overshoot; a sigmoid one is unchanged by the clip)."""
        x, single = self._images(images)
        recon = self._run(x, 0, self._last, clip=True)
        target = x * np.float32(1.0 / self.pixel_scale) if x.dtype == np.uint8 else x
        recon -= target
        err = np.einsum("ij,ij->i", recon, recon, dtype=np.float64) / max(x.shape[1], 1)
        err = err.astype(np.float32)
        return err[0] if single else err


# Every live cpp Engine, so that a forked child can make each rebuild its network; and the networks they inherited.
_cpp_engines: weakref.WeakSet = weakref.WeakSet()
_inherited_networks: list = []


def _after_fork_in_child() -> None:
    global _default_lock
    _default_lock = threading.Lock()   # a parent thread may have held it at the fork
    for engine in list(_cpp_engines):
        engine._after_fork_in_child()


os.register_at_fork(after_in_child=_after_fork_in_child)


def _pickle_state(weights: AutoencoderWeights, precision, backend, threads, isa, source, tiles=None) -> tuple:
    """A private, read-only snapshot of the weights (the caller may mutate theirs later) and the settings."""
    def frozen(a: np.ndarray) -> np.ndarray:
        a = np.array(a, copy=True)
        a.flags.writeable = False
        return a

    snapshot = dataclasses.replace(weights, kernels=[frozen(k) for k in weights.kernels],
                                   biases=[frozen(b) for b in weights.biases], activations=list(weights.activations),
                                   input_shape=tuple(weights.input_shape), training=copy.deepcopy(weights.training),
                                   metrics=copy.deepcopy(weights.metrics),
                                   data_sha256=dict(weights.data_sha256),
                                   input_means=None if weights.input_means is None
                                   else [frozen(m) for m in weights.input_means])
    snapshot.integrity = weights.integrity   # not an init field: replace() would reset it
    return snapshot, precision, backend, threads, isa, source, tiles


def _engine_from_state(weights, precision, backend, threads, isa, source, tiles=None) -> "Engine":
    return Engine(weights, precision, backend, threads, isa, source, tiles)


def load(source: str | os.PathLike | AutoencoderWeights, precision: str = "fp32", backend: str = "auto",
         threads: int | None = None, isa: str = "auto", tiles: str | None = None) -> Engine:
    """An Engine from a model file path (an aefast .safetensors file, or an .onnx chain of dense layers read by
    aefast.interop.read_onnx with its defaults) or an AutoencoderWeights.

    precision: fp32 | fp16 (half weights, fp32 math) | bf16 (bf16 weights and activations, fp32 accumulation)
      | int8 (per-channel symmetric int8 weights, per-row uint8 activations quantized at run time, int32 sums);
      see aefast/engine/precisions.py.
    backend: auto (cpp when the compiled core has a Network, else numba) | cpp | numba.
    threads: None = every CPU this process may use (affinity mask); n in 1..MAX_THREADS = min(n, those CPUs);
    1 = the calling thread only. isa: cpp only: "auto" (the best level this CPU runs) or a level name of
    aefast._core.isas(), e.g. "avx512", "avx2", "scalar".
    tiles: int8, bf16 and fp16 on the cpp backend: which register tile each layer runs with (results are identical,
    speed is not): None = $AEFAST_TILES, else "auto" (measured on this CPU at load, cached per CPU and layer shape);
    "builtin" (the built-in table); a tile name of the family that runs, e.g. "8x32", "fma", "ymm"; or
    "KEY:TILE,..." with KEY a kernel or a precision ("q8:6x32,bf16:fma,f16:ymm"). See aefast/engine/tiles.py.
    """
    if isinstance(source, AutoencoderWeights):
        return Engine(source, precision, backend, threads, isa, tiles=tiles)
    if isinstance(source, (str, os.PathLike)):
        return Engine(read_any(source), precision, backend, threads, isa, source=str(source), tiles=tiles)
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


def compress(images: ArrayLike) -> np.ndarray:
    """default_engine().compress(images)."""
    return default_engine().compress(images)


def decompress(codes: ArrayLike, clip: bool = False) -> np.ndarray:
    """default_engine().decompress(codes)."""
    return default_engine().decompress(codes, clip)


def reconstruct(images: ArrayLike, clip: bool = False) -> np.ndarray:
    """default_engine().reconstruct(images)."""
    return default_engine().reconstruct(images, clip)


def score(images: ArrayLike) -> np.ndarray:
    """default_engine().score(images)."""
    return default_engine().score(images)
