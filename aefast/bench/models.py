"""What the benchmark runs: the model weights, the operations on them, their cost, and the input images.

An operation is a prefix of the network: "reconstruct" runs every layer, "compress" only the encoder.
"""
from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from ..data import DATA_DIR_ENV, load_mnist
from ..errors import DataFileError
from ..modelfile import AutoencoderWeights, read_model

OPERATIONS = ("reconstruct", "compress")
DEFAULT_SIZES = (784, 1000, 100, 1000, 784)
WIDE_SIZES = (784, 10000, 100, 10000, 784)
# The shipped trained model (written by the training task); random weights of DEFAULT_SIZES stand in without it.
DEFAULT_MODEL_PATH = Path(__file__).resolve().parent.parent / "models" / "default.safetensors"
# Where a source checkout of the project finds MNIST (the repository's sibling shared/ folder).
SHARED_MNIST_DIR = Path(__file__).resolve().parents[3] / "shared" / "data" / "mnist"


@dataclass
class BenchModel:
    """A named model under test; `source` says where its weights came from (a path or "random ...")."""

    name: str
    weights: AutoencoderWeights
    source: str

    @property
    def trained(self) -> bool:
        return not self.source.startswith("random")


def random_weights(sizes: tuple[int, ...] = DEFAULT_SIZES, seed: int = 0) -> AutoencoderWeights:
    """Glorot-uniform kernels (limit sqrt(6 / (in + out)), the Keras default), zero biases, float32.

    Activations follow the project's autoencoder: ELU on every layer but the last, which is linear;
    the encoder is the first half of the layers.
    """
    rng = np.random.default_rng(seed)
    kernels, biases = [], []
    for n_in, n_out in zip(sizes[:-1], sizes[1:]):
        limit = np.sqrt(6.0 / (n_in + n_out))
        kernels.append(rng.uniform(-limit, limit, size=(n_in, n_out)).astype(np.float32))
        biases.append(np.zeros(n_out, np.float32))
    n_layers = len(sizes) - 1
    side = int(round(np.sqrt(sizes[0])))
    shape = (side, side) if side * side == sizes[0] else (sizes[0],)
    return AutoencoderWeights(kernels, biases, ["elu"] * (n_layers - 1) + ["linear"],
                              encoder_layers=max(1, n_layers // 2), input_shape=shape).validate("random weights")


def load_bench_model(name: str, path: str | os.PathLike | None, sizes: tuple[int, ...],
                     data_dir: str | os.PathLike | None = None) -> BenchModel:
    """The model file at `path` when given and present, else random weights of `sizes` (seeded, reproducible).

    Random weights get int8 calibration (aefast.engine.calibration) from MNIST *training* images, as a model trained
    by aefast carries it; the benchmark's inputs and error figures come from the test images.
    """
    if path is not None and Path(path).exists():
        return BenchModel(name, read_model(path), str(path))
    from ..engine.calibration import calibrated

    images, where = calibration_images(sizes[0], data_dir)
    return BenchModel(name, calibrated(random_weights(sizes), images),
                      f"random Glorot-uniform weights, zero biases, seed 0; int8 calibration on {where}")


def calibration_images(width: int, data_dir: str | os.PathLike | None = None) -> tuple[np.ndarray, str]:
    """2000 MNIST training images (float32 [0, 1]) when width is 784 and MNIST is found (never downloaded),
    else seeded uniform noise (seed 2, not the benchmark's input seed)."""
    if data_dir is None and not os.environ.get(DATA_DIR_ENV) and SHARED_MNIST_DIR.is_dir():
        data_dir = SHARED_MNIST_DIR
    if width == 784:
        try:
            return load_mnist(data_dir, download=False).train.x[:2000], "MNIST training images (2000)"
        except DataFileError:
            pass
    return np.random.default_rng(2).random((1000, width), np.float32), "uniform random pixels (seed 2)"


def op_end(weights: AutoencoderWeights, op: str) -> int:
    """The number of layers operation `op` runs from the input (the `end` of engine and reference calls)."""
    if op not in OPERATIONS:
        raise ValueError(f"unknown operation {op!r}, expected one of {OPERATIONS}")
    return weights.encoder_layers if op == "compress" else len(weights.kernels)


def op_layers(weights: AutoencoderWeights, op: str) -> list[tuple[np.ndarray, np.ndarray, str]]:
    """The (kernel float32 (in, out), bias float32 (out,), activation) layers that operation `op` runs."""
    n = op_end(weights, op)
    return [(np.asarray(k, np.float32), np.asarray(b, np.float32), a)
            for k, b, a in zip(weights.kernels[:n], weights.biases[:n], weights.activations[:n])]


def flops_per_image(weights: AutoencoderWeights, op: str) -> int:
    """Floating-point operations of one image through `op`: 2 * sum(in * out) (one multiply + one add per weight)."""
    return sum(2 * k.shape[0] * k.shape[1] for k, _, _ in op_layers(weights, op))


def weight_count(weights: AutoencoderWeights, op: str) -> int:
    """Kernel entries `op` reads once per batch (biases are negligible and left out)."""
    return sum(k.size for k, _, _ in op_layers(weights, op))


def input_images(width: int, count: int, data_dir: str | os.PathLike | None = None) -> tuple[np.ndarray, str]:
    """float32 (count, width) pixels in [0, 1] and a description of where they came from.

    MNIST test images (repeated if count > 10000) when width is 784, from `data_dir`, else AEFAST_DATA_DIR, else the
    shared folder beside a source checkout, else the user cache (never downloaded); otherwise, or without the files,
    seeded uniform noise, so every contender still gets the same input.
    """
    if data_dir is None and not os.environ.get(DATA_DIR_ENV) and SHARED_MNIST_DIR.is_dir():
        data_dir = SHARED_MNIST_DIR
    if width == 784:
        try:
            test = load_mnist(data_dir, download=False).test.x
        except DataFileError as e:
            reason = f"MNIST not found ({e})"
        else:
            rows = np.resize(np.arange(len(test)), count)
            return np.ascontiguousarray(test[rows]), f"MNIST test images ({len(test)})"
    else:
        reason = f"the model takes {width} inputs, not 784"
    rng = np.random.default_rng(1)
    return rng.random((count, width), np.float32), f"uniform random pixels (seed 1): {reason}"


def your_torch_models(model: BenchModel, data_dir: str | os.PathLike | None = None) -> list[BenchModel]:
    """The "your PyTorch model" pair: `model`'s weights as they are (ELU, the project's default) and the same
    kernels and biases with ReLU in place of every ELU, each recalibrated for aefast's int8 on the calibration
    images (the layer input means depend on the activations). The bench's PyTorch contenders build the
    nn.Sequential from these weights; the "aefast from_torch" ones read that module back with aefast.from_torch."""
    from ..engine.calibration import calibrated

    images, where = calibration_images(model.weights.input_size, data_dir)
    relu = replace(model.weights, input_means=None,
                               activations=["relu" if a.startswith("elu") else a for a in model.weights.activations])
    return [BenchModel("pytorch-elu", model.weights, f"{model.source} (as a PyTorch nn.Sequential)"),
            BenchModel("pytorch-relu", calibrated(relu.validate("ReLU model"), images),
                       f"{model.source}, ReLU in place of ELU (as a PyTorch nn.Sequential); int8 calibration "
                       f"on {where}")]
