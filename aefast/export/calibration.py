"""int8 calibration at export: each layer's mean input over training images, stored in the model file.

The int8 engine subtracts E[x] . (dequantized - float weights) from each layer's bias (aefast.engine.precisions.
corrected_bias). On the default model and the MNIST test set this takes the int8 relative RMS error against fp32
from 5.87e-3 to 5.54e-3 (docs/performance.md). The means come from the training images (never the test set),
computed with the float64 reference forward pass: `python -m aefast.export.calibration MODEL` adds them to an
existing model file.
"""
from __future__ import annotations

import argparse
import dataclasses

import numpy as np

from ..engine.reference import reference_forward
from ..model.file import read_model, save_model
from ..model.weights import AutoencoderWeights

MAX_CALIBRATION_IMAGES = 10000
_CHUNK = 1000


def layer_input_means(weights: AutoencoderWeights, images: np.ndarray,
                      max_images: int = MAX_CALIBRATION_IMAGES) -> list[np.ndarray]:
    """[mean input of layer i for i in layers] over the first `max_images` images (N, input_size) or
    (N, *input_shape): uint8 pixels (divided by pixel_scale) or floats in [0, 1]."""
    x = np.asarray(images)[:max_images]
    if len(x) == 0:
        raise ValueError("calibration needs at least one image")
    x = x.reshape(len(x), -1)
    if x.shape[1] != weights.input_size:
        raise ValueError(f"calibration images have {x.shape[1]} values each, the model takes {weights.input_size}")
    scale = 1.0 / weights.pixel_scale if x.dtype == np.uint8 else 1.0
    sums = [np.zeros(w, np.float64) for w in weights.layer_sizes[:-1]]
    for start in range(0, len(x), _CHUNK):
        h = x[start:start + _CHUNK].astype(np.float64) * scale
        for i in range(len(weights.kernels)):
            sums[i] += h.sum(axis=0)
            h = reference_forward(weights, h, i, i + 1)
    return [(s / len(x)).astype(np.float32) for s in sums]


def calibrated(weights: AutoencoderWeights, images: np.ndarray) -> AutoencoderWeights:
    """A copy of `weights` carrying the layer input means of `images` (see layer_input_means)."""
    return dataclasses.replace(weights, input_means=layer_input_means(weights, images)).validate("calibrated model")


def main(argv: list[str] | None = None, prog: str = "python -m aefast.export.calibration") -> int:
    parser = argparse.ArgumentParser(prog=prog,
                                     description="Add int8 calibration (each layer's mean input over the MNIST "
                                                 "training images) to a model file.")
    parser.add_argument("model", help="model file (.safetensors)")
    parser.add_argument("--out", help="where to write (default: replace MODEL, atomically)")
    parser.add_argument("--data-dir", help="MNIST folder (default: as aefast.data.load_mnist finds it)")
    parser.add_argument("--dtype", default=None, choices=["float32", "float16", "bf16"],
                        help="storage dtype (default: float16 if the weights are float16, else float32)")
    args = parser.parse_args(argv)
    from ..data import load_mnist

    weights = read_model(args.model)
    dtype = args.dtype or ("float16" if weights.kernels[0].dtype == np.float16 else "float32")
    out = save_model(args.out or args.model, calibrated(weights, load_mnist(args.data_dir).train.x), dtype=dtype)
    print(out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
