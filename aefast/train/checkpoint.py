"""The per-epoch checkpoint: model weights, optimizer state, the best epoch's weights and the loop state.

One .npz file written atomically, so a crash or Ctrl-C leaves either the previous epoch's checkpoint or this
one, never a mix. Backend-agnostic: it stores variable values, not a Keras/TF saved model.
  model/{i}      current model variables (model.weights order)
  optimizer/{i}  optimizer variables (optimizer.variables order: step count, moments, loss scale)
  best/{i}       model variables of the best validation epoch so far
  state          JSON: {"epoch": last finished epoch (1-based), "history": [...], "best_epoch": ...}
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .._io import atomic_write

CHECKPOINT_NAME = "checkpoint.npz"


@dataclass
class Checkpoint:
    model: list[np.ndarray]
    optimizer: list[np.ndarray]
    best: list[np.ndarray]
    state: dict


def save_checkpoint(path: str | os.PathLike, ckpt: Checkpoint) -> Path:
    arrays = {f"model/{i}": a for i, a in enumerate(ckpt.model)}
    arrays.update({f"optimizer/{i}": a for i, a in enumerate(ckpt.optimizer)})
    arrays.update({f"best/{i}": a for i, a in enumerate(ckpt.best)})
    arrays["state"] = np.frombuffer(json.dumps(ckpt.state).encode("utf-8"), dtype=np.uint8)
    with atomic_write(path) as f:
        np.savez(f, **arrays)
    return Path(path)


def load_checkpoint(path: str | os.PathLike) -> Checkpoint:
    """Read a checkpoint written by save_checkpoint; ValueError names the file if it is not one."""
    try:
        with np.load(path, allow_pickle=False) as npz:
            arrays = {k: npz[k] for k in npz.files}
        state = json.loads(arrays.pop("state").tobytes().decode("utf-8"))
    except (OSError, ValueError, KeyError) as e:
        raise ValueError(f"{path}: not a readable aefast training checkpoint ({e})") from None

    def group(prefix: str) -> list[np.ndarray]:
        n = sum(1 for k in arrays if k.startswith(prefix + "/"))
        return [arrays[f"{prefix}/{i}"] for i in range(n)]

    return Checkpoint(group("model"), group("optimizer"), group("best"), state)


def assign(variables, values: list[np.ndarray], what: str) -> None:
    """Assign saved `values` to Keras `variables`, refusing a count or shape mismatch."""
    variables = list(variables)
    if len(variables) != len(values):
        raise ValueError(f"checkpoint holds {len(values)} {what} values, the rebuilt run has {len(variables)}")
    for var, value in zip(variables, values):
        if tuple(var.shape) != value.shape:
            raise ValueError(f"checkpoint {what} value for {var.path} has shape {value.shape}, "
                             f"expected {tuple(var.shape)}")
        var.assign(value)
