"""compress / reconstruct / score over a dask array: map_blocks over row chunks, the model shipped once per worker.

The Engine is one node of the graph (a dask.delayed value): the scheduler places it on a worker, and every other
worker that runs a block fetches it once and keeps it, so the weights travel once per worker (an Engine pickles as
weights + settings, never as a file path the worker may not have). Each block is one Engine call, so the results are
the local Engine's, row for row.
"""
from __future__ import annotations

import math
import uuid

import dask
import dask.array as da
import numpy as np

from ..engine.api import DEFAULT_MODEL_PATH, Engine, load
from ..modelfile import AutoencoderWeights

IMAGE_DTYPES = (np.uint8, np.float16, np.float32, np.float64)


def engine_for(model=None, precision: str = "fp32", backend: str = "auto", threads: int | None = 1,
               isa: str = "auto") -> Engine:
    """model: None (the packaged default), a path, an AutoencoderWeights or an Engine (returned as is: its own
    precision/backend/threads) -> the Engine, loaded here on the client."""
    if isinstance(model, Engine):
        return model
    if model is None:
        return load(DEFAULT_MODEL_PATH, precision, backend, threads, isa)
    if isinstance(model, (str, AutoencoderWeights)) or hasattr(model, "__fspath__"):
        return load(model, precision, backend, threads, isa)
    raise TypeError(f"model must be None, a model file path, an AutoencoderWeights or an Engine, "
                    f"got {type(model).__name__}")


def ship_engine(model=None, precision: str = "fp32", backend: str = "auto", threads: int | None = 1,
                isa: str = "auto") -> "dask.delayed":
    """The model (see engine_for) as one graph node. threads=1: a worker runs as many blocks at once as it has
    threads, so one core per block avoids oversubscription."""
    engine = engine_for(model, precision, backend, threads, isa)
    return dask.delayed(engine, name=f"aefast-engine-{uuid.uuid4().hex}")


def image_rows(images: da.Array, engine: Engine) -> da.Array:
    """images (N, *input_shape) or (N, input_size) -> (N, input_size), one chunk across the columns."""
    if not isinstance(images, da.Array):
        raise TypeError(f"images must be a dask.array.Array (wrap NumPy arrays with dask.array.from_array), "
                        f"got {type(images).__name__}")
    if images.dtype.type not in IMAGE_DTYPES:
        raise TypeError(f"images must be uint8 pixels (0..{engine.pixel_scale:g}) or floating point in [0, 1], "
                        f"got dtype {images.dtype}")
    if not images.dtype.isnative:   # big-endian floats from a file: the engine takes native byte order
        images = images.astype(images.dtype.newbyteorder("="))
    size = math.prod(engine.input_shape)
    if images.ndim < 2 or images.shape[1:] not in (tuple(engine.input_shape), (size,)):
        raise ValueError(f"images have shape {images.shape}; expected (N, {', '.join(map(str, engine.input_shape))})"
                         f" or (N, {size})")
    if images.ndim > 2:
        images = images.rechunk({axis: -1 for axis in range(1, images.ndim)}).reshape(images.shape[0], size)
    return images.rechunk({1: -1})


def _block(x: np.ndarray, engine: Engine, op: str, clip: bool) -> np.ndarray:
    if op == "compress":
        return engine.compress(x)
    if op == "reconstruct":
        return engine.reconstruct(x, clip)
    return engine.score(x)


def _apply(op: str, images: da.Array, model, precision, backend, threads, isa, clip=False) -> da.Array:
    shipped = ship_engine(model, precision, backend, threads, isa)
    engine = shipped.compute(scheduler="sync")   # the local object, for shapes and checks (no copy made)
    rows = image_rows(images, engine)
    if op == "score":
        return da.map_blocks(_block, rows, shipped, op, clip, drop_axis=1, chunks=(rows.chunks[0],),
                             dtype=np.float32, meta=np.empty((0,), np.float32))
    width = engine.latent_size if op == "compress" else engine.layer_sizes[-1]
    return da.map_blocks(_block, rows, shipped, op, clip, chunks=(rows.chunks[0], (width,)), dtype=np.float32,
                         meta=np.empty((0, 0), np.float32))


def compress(images: da.Array, model=None, precision: str = "fp32", backend: str = "auto",
             threads: int | None = 1, isa: str = "auto") -> da.Array:
    """images (N, *input_shape) | (N, input_size) dask array -> codes (N, latent_size) float32 dask array."""
    return _apply("compress", images, model, precision, backend, threads, isa)


def reconstruct(images: da.Array, model=None, precision: str = "fp32", backend: str = "auto",
                threads: int | None = 1, isa: str = "auto", clip: bool = False) -> da.Array:
    """images -> reconstructions (N, input_size) float32 dask array (clip=True clamps to [0, 1])."""
    return _apply("reconstruct", images, model, precision, backend, threads, isa, clip)


def score(images: da.Array, model=None, precision: str = "fp32", backend: str = "auto",
          threads: int | None = 1, isa: str = "auto") -> da.Array:
    """images -> per-image mean squared reconstruction error (N,) float32 dask array."""
    return _apply("score", images, model, precision, backend, threads, isa)
