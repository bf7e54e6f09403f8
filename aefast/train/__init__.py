"""Training: `python -m aefast.train` or `train(TrainConfig(...))`. Keras/TensorFlow load only when training starts.

    from aefast.train import TrainConfig, train
    result = train(TrainConfig(hidden=(1000,), latent=100, epochs=40))
    result.run_dir, result.model_path, result.metrics, result.history
"""
from __future__ import annotations

import os
from typing import TYPE_CHECKING, Sequence

from .config import PRECISIONS, ConfigError, TrainConfig

if TYPE_CHECKING:
    from .loop import TrainResult


def train(config: TrainConfig, *, verbose: bool = True, callbacks: Sequence = ()) -> "TrainResult":
    """Train a new run; see aefast.train.loop.train."""
    from . import loop

    return loop.train(config, verbose=verbose, callbacks=callbacks)


def resume(run_dir: str | os.PathLike, *, verbose: bool = True, callbacks: Sequence = (),
           distribute: str | None = None) -> "TrainResult":
    """Continue a run from its last checkpoint; see aefast.train.loop.resume."""
    from . import loop

    return loop.resume(run_dir, verbose=verbose, callbacks=callbacks, distribute=distribute)


__all__ = ["PRECISIONS", "ConfigError", "TrainConfig", "resume", "train"]
