"""Ship a trained run as a packaged model: float16 storage, test MSE measured before and after.

    python -m aefast.train.ship runs/default aefast/models/default.safetensors [--data-dir DIR]

Reads RUN_DIR/model.safetensors (float32 master weights), measures the test MSE of the float32 weights and of
the float16-rounded weights (both evaluated in float32 by Keras, outputs clipped to [0, 1] as served:
baseline.served_mse), and writes DEST with the weights stored as float16 and both numbers added to its metrics
(`test_mse_float32`, `test_mse_float16_storage`).
"""
from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

import numpy as np

from ..modelfile import read_model, save_model


def _rounded_to_float16(weights):
    return dataclasses.replace(weights, kernels=[k.astype(np.float16) for k in weights.kernels],
                               biases=[b.astype(np.float16) for b in weights.biases])


def ship(run_dir: str | Path, dest: str | Path, data_dir: str | None = None) -> dict:
    from ..data import load_mnist
    from ..keras_io import load_keras
    from .loop import reconstruction_mse

    weights = read_model(Path(run_dir) / "model.safetensors")
    test_x = load_mnist(data_dir).test.x
    half = _rounded_to_float16(weights)
    measured = {"test_mse_float32": reconstruction_mse(load_keras(weights), test_x)[0],
                "test_mse_float16_storage": reconstruction_mse(load_keras(half), test_x)[0],
                "n_test": len(test_x)}
    half.metrics = {**weights.metrics, **measured}
    half.training = {**weights.training, "shipped_from": str(run_dir)}
    save_model(dest, half, dtype="float16")
    return measured


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m aefast.train.ship", description=__doc__.splitlines()[0])
    p.add_argument("run_dir")
    p.add_argument("dest")
    p.add_argument("--data-dir", dest="data_dir")
    args = p.parse_args(argv)
    if not (Path(args.run_dir) / "model.safetensors").is_file():
        p.error(f"{args.run_dir} holds no model.safetensors")
    for key, value in ship(args.run_dir, args.dest, args.data_dir).items():
        print(f"{key}: {value}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
