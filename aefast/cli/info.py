"""`aefast info [MODEL]`: what a model file holds (shapes, storage precision, size, metrics, training record)."""
from __future__ import annotations

import json
import math
import os
import struct
from pathlib import Path

from ..errors import UsageError


def add_subcommand(sub) -> None:
    """Register `info` on an argparse subparsers object."""
    p = sub.add_parser("info", help="what a model file holds: shapes, precision, size, metadata",
                       description="Describe a model file (default: the model shipped with aefast).")
    p.add_argument("model", nargs="?", help="a model file (default: the shipped model)")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of text")
    p.set_defaults(run=run_info, parser=p)


def describe_shape(shape: tuple[int, ...]) -> str:
    """An image shape (H, W[, C]) as people read image sizes, width first: (28, 28) -> "28x28 (width x height)
    grayscale", (32, 48, 3) -> "48x32 (width x height) RGB"; other shapes by their value count."""
    if len(shape) in (2, 3):
        h, w = shape[:2]
        c = shape[2] if len(shape) == 3 else 1
        kind = "grayscale" if c == 1 else "RGB" if c == 3 else f"{c}-channel"
        return f"{w}x{h} (width x height) {kind}"
    return f"{math.prod(shape)}-value"


def looks_like_safetensors(path: str) -> bool:
    """Whether `path` starts as a safetensors file does: a little-endian u64 header length that fits the file,
    then a JSON object. A missing file or a folder counts as a model here (the model reader names those)."""
    p = Path(path).expanduser()
    if not p.is_file():
        return True
    try:
        with open(p, "rb") as f:
            head = f.read(9)
            size = os.fstat(f.fileno()).st_size
    except OSError:
        return True
    if len(head) < 9:
        return False
    (n,) = struct.unpack("<Q", head[:8])
    return 0 < n <= size - 8 and head[8:9] == b"{"


def check_model_file(model: str, other: str | None = None) -> None:
    """UsageError "X is not an aefast model file" when `model` is plainly something else (an image array, a
    PNG ...), pointing out a swapped MODEL and INPUT when `other` is the model."""
    if looks_like_safetensors(model) or Path(model).suffix.lower() == ".onnx":   # .onnx: read by aefast.interop
        return
    swapped = other is not None and Path(other).is_file() and looks_like_safetensors(other)
    raise UsageError(f"{model} is not an aefast model file (a safetensors file)"
                     + (f"; {other} is one: the order is [MODEL] INPUT" if swapped else ""))


def model_info(path: str) -> dict:
    """What `aefast info` prints, as a dict."""
    from ..interop.load import read_any

    weights = read_any(path)   # an aefast model file or an .onnx chain of dense layers
    storage = sorted({str(k.dtype) for k in weights.kernels})
    return {"path": str(path), "bytes": Path(path).stat().st_size, "storage": storage,
            "layer_sizes": weights.layer_sizes, "activations": list(weights.activations),
            "encoder_layers": weights.encoder_layers, "latent": weights.latent_size,
            "input_shape": list(weights.input_shape), "pixel_scale": weights.pixel_scale,
            "compression_ratio": weights.input_size / weights.latent_size,   # values in / code values out
            # bytes: an image of uint8 pixels (1 byte each) -> its code of float32 values (4 bytes each)
            "compression_ratio_bytes": weights.input_size / (4 * weights.latent_size),
            "metrics": weights.metrics, "training": weights.training, "data_sha256": weights.data_sha256,
            "baseline": _baseline_summary(weights.metrics)}


def _baseline_summary(metrics: dict) -> str | None:
    """The trainer's final line (test MSE beside PCA's and the mean image's), when the file holds the figures."""
    from ..train.baseline import has_baseline, summary_line

    return summary_line(metrics) if has_baseline(metrics) else None


def baseline_lines(metrics: dict) -> list[str]:
    """What `aefast info` says about the baseline stored with the model (aefast.train.baseline), or that there is
    none."""
    summary = _baseline_summary(metrics)
    if summary is None:
        return ["no baseline stored (no PCA figures in the file's metrics: trained before aefast recorded them, "
                "or written by another tool)"]
    lines = [summary]
    if isinstance(metrics.get("pca_test_mse"), (int, float)):
        raw = metrics.get("test_mse_unclipped")   # a linear output's figure before the served clip to [0, 1]
        model = (f" (autoencoder {raw:#.4g})" if isinstance(raw, (int, float)) and raw != metrics["test_mse"]
                 else "")
        lines.append(f"PCA with {metrics.get('pca_components', '?')} components fitted on "
                     f"{metrics.get('pca_fit_images', '?')} training images; without clipping "
                     f"{metrics['pca_test_mse']:#.4g}{model}")
    return lines


def run_info(args) -> int:
    from ..engine import DEFAULT_MODEL_PATH

    model = args.model or str(DEFAULT_MODEL_PATH)
    check_model_file(model)
    info = model_info(model)
    if args.json:
        print(json.dumps(info, indent=2, sort_keys=True))
        return 0
    shape = tuple(info["input_shape"])
    print(f"model        {info['path']} ({info['bytes']:,} bytes, weights {'/'.join(info['storage'])})")
    print(f"layers       {'-'.join(map(str, info['layer_sizes']))} ({', '.join(info['activations'])})")
    pixels = math.prod(shape)
    print(f"input        {describe_shape(shape)} images, input_shape {shape} (height, width[, channels]), "
          f"pixel_scale {info['pixel_scale']:g}")
    print(f"latent       {info['latent']} float32 values ({info['encoder_layers']} encoder layers)")
    print(f"compression  {info['compression_ratio_bytes']:.3g}x in bytes: {pixels:,} uint8 pixels ({pixels:,} bytes) "
          f"-> {info['latent']} float32 values ({4 * info['latent']:,} bytes); "
          f"{info['compression_ratio']:.3g}x in values")
    for line in baseline_lines(info["metrics"]):
        print(f"baseline     {line}")
    for key in ("metrics", "data_sha256"):
        for name, value in sorted(info[key].items()):
            print(f"{key:12s} {name} = {value:.6g}" if isinstance(value, float) else f"{key:12s} {name} = {value}")
    training = info["training"]
    picked = {k: training[k] for k in ("data", "data_dir", "epochs", "epochs_run", "best_epoch", "lr", "seed",
                                      "precision_used", "device") if training.get(k) is not None}
    for name, value in picked.items():
        print(f"training     {name} = {value}")
    return 0
