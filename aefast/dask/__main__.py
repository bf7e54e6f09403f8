"""python -m aefast.dask compress|reconstruct|score MODEL INPUT OUTPUT [--dask ADDRESS]: exit status 0 done, 1 the
cluster failed or the disk is full (nothing written), 2 bad usage or input."""
from __future__ import annotations

import argparse
import sys
import time

from ..engine.precisions import PRECISIONS
from ..errors import ClusterError, DiskFullError
from .files import DEFAULT_CHUNK_ROWS, OPERATIONS


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m aefast.dask",
        description="Run a model over a .npy / Zarr image array too big for memory, on a Dask cluster or local "
                    "threads, writing a .npy (OUTPUT ending in .npy) or Zarr output chunk by chunk, atomically.")
    p.add_argument("operation", choices=OPERATIONS)
    p.add_argument("model", help="model file (.safetensors), or 'default' for the packaged model")
    p.add_argument("input", help="(N, 28, 28) or (N, 784) images: uint8 pixels or floats in [0, 1]; .npy or Zarr")
    p.add_argument("output", help="a new .npy file, or a new Zarr directory for any other name")
    p.add_argument("--dask", metavar="ADDRESS", help="Dask scheduler address, e.g. tcp://10.0.0.5:8786 "
                   "(default: local threads)")
    p.add_argument("--chunk-rows", type=int, default=DEFAULT_CHUNK_ROWS, help=f"images per block "
                   f"(default {DEFAULT_CHUNK_ROWS})")
    p.add_argument("--precision", choices=PRECISIONS, default="fp32")
    p.add_argument("--clip", action="store_true", help="reconstruct: clamp outputs to [0, 1]")
    p.add_argument("--uint8", action="store_true", help="reconstruct: write uint8 pixels 0..255 (clipped), as "
                   "`aefast reconstruct --uint8` does")
    return p


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.chunk_rows < 1:
        parser.error(f"--chunk-rows must be a positive integer, got {args.chunk_rows}")
    from .files import process_file

    model = None if args.model == "default" else args.model
    start = time.perf_counter()
    try:
        dest = process_file(args.operation, model, args.input, args.output, address=args.dask,
                            chunk_rows=args.chunk_rows, precision=args.precision, clip=args.clip, uint8=args.uint8)
    except (ClusterError, DiskFullError) as e:   # not a usage error: exit status 1
        print(f"{parser.prog}: error: {e}", file=sys.stderr)
        return 1
    except (ValueError, TypeError, OSError) as e:
        parser.error(str(e))
    print(f"{dest} ({time.perf_counter() - start:.1f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
