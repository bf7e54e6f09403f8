"""`aefast info [MODEL]`: what a model file holds (shapes, storage precision, size, metrics, training record)."""
from __future__ import annotations

import json
import math
from pathlib import Path


def add_subcommand(sub) -> None:
    """Register `info` on an argparse subparsers object."""
    p = sub.add_parser("info", help="what a model file holds: shapes, precision, size, metadata",
                       description="Describe a model file (default: the model shipped with aefast).")
    p.add_argument("model", nargs="?", help="a model file (default: the shipped model)")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of text")
    p.set_defaults(run=run_info, parser=p)


def describe_shape(shape: tuple[int, ...]) -> str:
    """(28, 28) -> "28x28 grayscale", (32, 32, 3) -> "32x32x3 (RGB)"."""
    if len(shape) == 2 or (len(shape) == 3 and shape[2] == 1):
        return f"{shape[0]}x{shape[1]} grayscale"
    if len(shape) == 3:
        return f"{shape[0]}x{shape[1]}x{shape[2]} ({'RGB' if shape[2] == 3 else f'{shape[2]} channels'})"
    return f"{math.prod(shape)}-value"


def model_info(path: str) -> dict:
    """What `aefast info` prints, as a dict."""
    from ..interop.load import read_any

    weights = read_any(path)   # an aefast model file or an .onnx chain of dense layers
    storage = sorted({str(k.dtype) for k in weights.kernels})
    return {"path": str(path), "bytes": Path(path).stat().st_size, "storage": storage,
            "layer_sizes": weights.layer_sizes, "activations": list(weights.activations),
            "encoder_layers": weights.encoder_layers, "latent": weights.latent_size,
            "input_shape": list(weights.input_shape), "pixel_scale": weights.pixel_scale,
            "compression_ratio": weights.input_size / weights.latent_size,
            "metrics": weights.metrics, "training": weights.training, "data_sha256": weights.data_sha256}


def run_info(args) -> int:
    from ..engine import DEFAULT_MODEL_PATH

    info = model_info(args.model or str(DEFAULT_MODEL_PATH))
    if args.json:
        print(json.dumps(info, indent=2, sort_keys=True))
        return 0
    shape = tuple(info["input_shape"])
    print(f"model        {info['path']} ({info['bytes']:,} bytes, weights {'/'.join(info['storage'])})")
    print(f"layers       {'-'.join(map(str, info['layer_sizes']))} ({', '.join(info['activations'])})")
    print(f"input        {describe_shape(shape)} images {shape}, pixel_scale {info['pixel_scale']:g}")
    print(f"latent       {info['latent']} values (compression {info['compression_ratio']:.2f}x, "
          f"encoder {info['encoder_layers']} layers)")
    for key in ("metrics", "data_sha256"):
        for name, value in sorted(info[key].items()):
            print(f"{key:12s} {name} = {value:.6g}" if isinstance(value, float) else f"{key:12s} {name} = {value}")
    training = info["training"]
    picked = {k: training[k] for k in ("data", "data_dir", "epochs", "epochs_run", "best_epoch", "lr", "seed",
                                      "precision_used", "device") if training.get(k) is not None}
    for name, value in picked.items():
        print(f"training     {name} = {value}")
    return 0
