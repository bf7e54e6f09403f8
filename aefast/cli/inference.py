"""`aefast compress | reconstruct | score`: a model file applied to an image set from the command line.

MODEL may be left out: the default model shipped in the package is used. INPUT is anything aefast.data.open_images
reads (a folder of PNG/JPEG, .npy, .npz, an IDX image file); its images must have the model's shape.
"""
from __future__ import annotations

import argparse
import csv
import io
import math
import sys
from pathlib import Path
from typing import Callable

import numpy as np

from .._io import write_text_atomic
from ..data.images import IMAGE_SUFFIXES, FolderScan, ImageSet, open_images, read_scanned, scan_folder
from .argtypes import image_size, positive_int
from .info import check_model_file, describe_shape, looks_like_safetensors
from .pictures import save_pairs_grid
from .streaming import DEFAULT_CHUNK, apply_in_chunks, npy_output
from ..errors import UsageError  # noqa: F401 (defined in aefast/errors.py)

GRID_COUNT = 20   # images shown by reconstruct --png
TABLE_COLUMNS = ("rank", "index", "name", "score")   # score's table and its --csv, in the same order


def _add_engine_options(p: argparse.ArgumentParser) -> None:
    from ..engine.precisions import PRECISIONS

    p.add_argument("paths", nargs="+", metavar="[MODEL] INPUT",
                   help="a model file (default: the model shipped with aefast) and the images: a folder of "
                        "PNG/JPEG files, an .npy/.npz array (N, H, W[, C]), or (N, pixels) with the model's pixel "
                        "count, or an IDX image file")
    p.add_argument("--precision", choices=PRECISIONS, default="fp32", help="engine precision (default fp32)")
    p.add_argument("--threads", type=positive_int, help="compute threads (default: all cores)")
    p.add_argument("--batch-size", type=positive_int, default=DEFAULT_CHUNK, dest="chunk",
                   help=f"images per chunk streamed through the engine (default {DEFAULT_CHUNK})")
    p.add_argument("--resize", type=image_size, metavar="HxW", help="resize the images of a folder to HxW")
    p.add_argument("--skip-unreadable", action="store_true", help="leave out the images of a folder that "
                   "cannot be read, listing them (default: stop at the first, naming it)")
    p.add_argument("--quiet", action="store_true", help="no progress bar, no summary")
    p.add_argument("--dask", metavar="ADDRESS", help="run on the Dask cluster at ADDRESS (e.g. tcp://10.0.0.5:8786) "
                   "over an .npy / Zarr INPUT, writing -o (.npy, or Zarr for any other name) chunk by chunk; "
                   "needs the dist extra (see docs/scale.md)")


def add_subcommands(sub) -> None:
    """Register compress, reconstruct and score on an argparse subparsers object."""
    usage = "%(prog)s [options] [MODEL] INPUT"
    p = sub.add_parser("compress", usage=usage, help="images -> latent codes (.npy)",
                       description="Encode every image of INPUT into its latent code; writes an (N, latent) "
                       "float32 .npy.")
    _add_engine_options(p)
    p.add_argument("-o", "--output", required=True, type=Path, help="the .npy file to write")
    p.set_defaults(run=run_compress, parser=p)

    p = sub.add_parser("reconstruct", usage=usage, help="images -> reconstructed images (.npy, optional PNG grid)",
                       description="Run every image of INPUT through the autoencoder; writes the reconstructions "
                       "shaped like the inputs, float32 in [0, 1] (or uint8 with --uint8).")
    _add_engine_options(p)
    p.add_argument("-o", "--output", required=True, type=Path, help="the .npy file to write")
    p.add_argument("--uint8", action="store_true", help="write uint8 pixels 0..255 instead of float32")
    p.add_argument("--png", type=Path, help=f"also save the first {GRID_COUNT} images above their reconstructions, "
                   "with their names")
    p.set_defaults(run=run_reconstruct, parser=p)

    p = sub.add_parser("score", usage=usage, help="rank images by reconstruction error (anomaly score)",
                       description="Score every image of INPUT by its reconstruction MSE (pixels in [0, 1]) and "
                       "list the K worst-reconstructed ones: the likeliest anomalies.")
    _add_engine_options(p)
    p.add_argument("--top", type=positive_int, default=10, metavar="K", help="how many of the worst to show "
                   "(default 10)")
    p.add_argument("--png", type=Path, help="save the K worst images (worst first) above their reconstructions, "
                   "with rank, score and name")
    p.add_argument("--csv", type=Path, help="write rank, index, name, score for every image, worst first (the "
                   "table's columns)")
    p.add_argument("-o", "--output", type=Path, help="write the (N,) float32 scores, in input order, as .npy")
    p.set_defaults(run=run_score, parser=p)



def _model_and_input(args) -> tuple[str, str]:
    from ..engine import DEFAULT_MODEL_PATH

    if len(args.paths) > 2:
        raise UsageError(f"expected [MODEL] INPUT, got {len(args.paths)} paths: {' '.join(args.paths)}")
    return (str(DEFAULT_MODEL_PATH), args.paths[0]) if len(args.paths) == 1 else tuple(args.paths)


def _image_shape_hwc(shape: tuple[int, ...]) -> tuple[int, ...] | None:
    """A model's input_shape as (H, W, C), or None when it is not an image shape."""
    return (shape + (1,))[:3] if len(shape) in (2, 3) else None


def _refuse_shape(source: str, model: str, hwc: tuple[int, int, int], model_shape: tuple[int, ...],
                  scan: FolderScan | None) -> None:
    """UsageError when images of (H, W, C) `hwc` do not fit the model; silent when they do."""
    model_hwc = _image_shape_hwc(model_shape)
    fits = hwc == model_hwc if model_hwc is not None else math.prod(hwc) == math.prod(model_shape)
    if fits:
        return
    hint = ""
    if scan is not None and model_hwc is not None:
        if hwc[2] != model_hwc[2] and scan.colour_file is not None:
            hint = (f"; {scan.colour_file} is a colour image (it makes the folder RGB), the model takes "
                    "grayscale: convert it or leave it out")
        elif hwc[2] == model_hwc[2]:
            hint = (f"; resize the folder's images with --resize {model_hwc[0]}x{model_hwc[1]} (height x width)")
    raise UsageError(f"{source} holds {describe_shape(hwc)} images, but {model} takes "
                     f"{describe_shape(model_shape)} images{hint}")


def _open(args):
    """-> (engine, images) with the images' shape checked against the model's; a folder is checked from its
    image headers before any image is decoded."""
    from .. import load

    model, source = _model_and_input(args)
    check_model_file(model, source if len(args.paths) == 2 else None)
    if len(args.paths) == 1 and Path(source).is_file() and looks_like_safetensors(source):
        raise UsageError(f"{source} is a model file, not images; expected [MODEL] INPUT (INPUT is missing)")
    engine = load(model, precision=args.precision, threads=args.threads)
    model_shape = tuple(engine.input_shape)
    folder = Path(source).expanduser()
    if folder.is_dir():
        scan = scan_folder(folder, resize=args.resize, skip_unreadable=args.skip_unreadable)
        _refuse_shape(source, model, (scan.height, scan.width, scan.channels), model_shape, scan)
        images = read_scanned(scan, resized=args.resize is not None, progress=not args.quiet)
    else:
        images = open_images(source, resize=args.resize, progress=not args.quiet,
                             flat_shape=_image_shape_hwc(model_shape))
        _refuse_shape(source, model, images.x.shape[1:], model_shape, None)
    if images.skipped:
        print(f"skipped {len(images.skipped)} unreadable image(s):\n  " + "\n  ".join(images.skipped),
              file=sys.stderr)
    if images.other_files:
        print(f"note: {images.other_files} file(s) in {source} are not {'/'.join(IMAGE_SUFFIXES)} images "
              "and were not read", file=sys.stderr)
    return engine, images


def _run_on_dask(args, operation: str) -> int:
    """The same operation over a cluster (aefast.dask.files.process_file): the engine travels to each worker once,
    every block of --batch-size rows is computed there, and -o is written chunk by chunk, atomically, with the
    local command's shape and dtype (reconstruct: (N, *input_shape), float32 or --uint8); score then ranks the
    written scores as the local command does (--top). A cluster that cannot be reached, or fails mid-job, is
    reported as one `error:` line, exit status 1, with nothing written."""
    local_only = [flag for flag, value in (("--png", getattr(args, "png", None)), ("--csv", getattr(args, "csv", None)),
                                           ("--resize", args.resize)) if value]
    if local_only:
        raise UsageError(f"{', '.join(local_only)} cannot be combined with --dask (the images stay on the cluster)")
    if args.output is None:
        raise UsageError("--dask needs -o/--output: the scores are written there, chunk by chunk")
    try:
        from ..dask.files import process_file
    except ImportError as e:
        raise UsageError(f"--dask needs the dist extra (pip install 'aefast[dist]'): {e}") from None
    from ..errors import ClusterError, DiskFullError

    model, source = _model_and_input(args)
    try:
        dest = process_file(operation, model, source, args.output, address=args.dask, chunk_rows=args.chunk,
                            precision=args.precision, threads=args.threads or 1, clip=operation == "reconstruct",
                            uint8=getattr(args, "uint8", False))
    except (ClusterError, DiskFullError) as e:
        print(f"{args.parser.prog}: error: {e}", file=sys.stderr)
        return 1
    except (ValueError, TypeError, OSError) as e:
        raise UsageError(str(e)) from None
    if operation == "score":
        scores = _read_back(dest)
        _print_ranking(scores, np.argsort(-scores, kind="stable")[: args.top], lambda i: f"#{i}", args.quiet)
    _say(args, f"wrote {dest} ({operation} on the Dask cluster at {args.dask})")
    return 0


def _read_back(path: Path) -> np.ndarray:
    """The (N,) scores a Dask job wrote to PATH (.npy, or a Zarr directory)."""
    if path.suffix == ".npy":
        return np.load(path, allow_pickle=False)
    import zarr

    return zarr.open_array(str(path), mode="r")[:]


def run_compress(args) -> int:
    if args.dask:
        return _run_on_dask(args, "compress")
    engine, images = _open(args)
    with npy_output(args.output, (len(images), engine.latent_size), np.float32) as codes:
        apply_in_chunks(engine.compress, images, codes, args.chunk, progress=not args.quiet, desc="compress")
    _say(args, f"wrote {len(images)} codes of {engine.latent_size} values to {args.output}")
    return 0


def _image_view(flat: np.ndarray, images: ImageSet) -> np.ndarray:
    """(k, pixels) -> (k, H, W, C), the input images' layout."""
    return flat.reshape(len(flat), *images.x.shape[1:])


def run_reconstruct(args) -> int:
    if args.dask:
        return _run_on_dask(args, "reconstruct")
    engine, images = _open(args)
    shape = (len(images), *engine.input_shape)
    dtype = np.uint8 if args.uint8 else np.float32

    def rebuild(block):
        out = engine.reconstruct(block, clip=True)
        return np.round(out * 255).astype(np.uint8) if args.uint8 else out

    with npy_output(args.output, shape, dtype) as out:
        apply_in_chunks(rebuild, images, out.reshape(len(images), -1), args.chunk, progress=not args.quiet,
                        desc="reconstruct")
        if args.png:
            k = min(GRID_COUNT, len(images))
            save_pairs_grid(args.png, images.x[:k], _image_view(np.asarray(out[:k]).reshape(k, -1), images),
                            captions=[("name", [images.name(i) for i in range(k)])])
    _say(args, f"wrote {len(images)} reconstructions {shape[1:]} {np.dtype(dtype).name} to {args.output}"
               + (f" and {args.png}" if args.png else ""))
    return 0


def run_score(args) -> int:
    if args.dask:
        return _run_on_dask(args, "score")
    engine, images = _open(args)
    scores = apply_in_chunks(engine.score, images, np.empty(len(images), np.float32), args.chunk,
                             progress=not args.quiet, desc="score")
    order = np.argsort(-scores, kind="stable")   # worst first; ties keep input order
    if args.output:
        with npy_output(args.output, scores.shape, np.float32) as out:
            out[:] = scores
    if args.csv:
        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator="\n")
        writer.writerow(TABLE_COLUMNS)
        for rank, i in enumerate(order, 1):
            writer.writerow([rank, int(i), images.name(int(i)), f"{scores[i]:.8g}"])
        write_text_atomic(args.csv, buf.getvalue())
    top = order[: args.top]
    if args.png:
        worst = np.stack([np.asarray(images.x[i]) for i in top])
        recon = engine.reconstruct(worst.reshape(len(worst), -1), clip=True)
        save_pairs_grid(args.png, worst, _image_view(recon, images),
                        captions=[("rank", [str(r) for r in range(1, len(top) + 1)]),
                                  ("score", [f"{scores[i]:.4g}" for i in top]),
                                  ("name", [images.name(int(i)) for i in top])])
    _print_ranking(scores, top, images.name, args.quiet)
    written = [str(p) for p in (args.output, args.csv, args.png) if p]
    _say(args, f"wrote {', '.join(written)}" if written else "")
    return 0


def _print_ranking(scores: np.ndarray, top: np.ndarray, name: Callable[[int], str], quiet: bool) -> None:
    """The summary line (unless quiet), then the table: always its header (--quiet too), then one line per index of
    `top`; its columns are the CSV's (TABLE_COLUMNS), in the same order."""
    if not quiet:
        print(f"{len(scores)} images scored: mean {scores.mean():.6g}, median {np.median(scores):.6g}, "
              f"max {scores.max():.6g} (reconstruction MSE, pixels in [0, 1])")
    names = [name(int(i)) for i in top]
    width = max(len(TABLE_COLUMNS[2]), *map(len, names))
    print(f"{TABLE_COLUMNS[0]:>4}  {TABLE_COLUMNS[1]:>7}  {TABLE_COLUMNS[2]:<{width}}  {TABLE_COLUMNS[3]:>12}")
    for rank, (i, label) in enumerate(zip(top, names), 1):
        print(f"{rank:>4}  {int(i):>7}  {label:<{width}}  {scores[i]:>12.6g}")


def _say(args, text: str) -> None:
    if text and not args.quiet:
        print(text, file=sys.stderr)
