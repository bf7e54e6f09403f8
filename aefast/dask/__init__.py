"""aefast on a Dask cluster: compress / reconstruct / score dask arrays, and .npy / Zarr files too big for memory.

    import dask.array as da, aefast.dask
    codes = aefast.dask.compress(da.from_zarr("images.zarr"), model="model.safetensors")   # lazy dask array
    aefast.dask.process_file("compress", "model.safetensors", "images.npy", "codes.npy", address="tcp://host:8786")

Needs the `dist` extra (dask[distributed], zarr). `import aefast` does not import this package (nor dask).
"""
from __future__ import annotations

from .arrays import compress, reconstruct, score, ship_engine
from .files import OPERATIONS, process_file

__all__ = ["OPERATIONS", "compress", "process_file", "reconstruct", "score", "ship_engine"]
