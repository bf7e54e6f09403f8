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
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .._io import atomic_write
from .artifacts import HISTORY_FIELDS
from .config import RunDirError

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


_ZIP_MAGICS = (b"PK\x03\x04", b"PK\x05\x06")   # an .npz is a zip archive (the second: an empty one)
_GROUPS = ("model", "optimizer", "best")


def load_checkpoint(path: str | os.PathLike) -> Checkpoint:
    """Read a checkpoint written by save_checkpoint; RunDirError names the file and the defect if it is not one.

    Structure only (a zip of numeric arrays, groups numbered 0..n-1, a JSON object as state); check_checkpoint
    compares it with the run's config."""
    def bad(why: str) -> RunDirError:
        return RunDirError(f"{path}: not a readable aefast training checkpoint ({why})")

    try:
        with open(path, "rb") as f:
            if f.read(4) not in _ZIP_MAGICS:
                raise bad("not an .npz zip archive: damaged, or some other file")
        with np.load(path, allow_pickle=False) as npz:
            arrays = {k: npz[k] for k in npz.files}
    except RunDirError:
        raise
    except ValueError as e:
        if "allow_pickle" in str(e):   # NumPy's advice to allow pickles is the wrong advice for a checkpoint
            raise bad("it holds a pickled object array, which no checkpoint contains; refused, not loaded") from None
        raise bad(f"{type(e).__name__}: {e}") from None
    except (OSError, KeyError, EOFError, zipfile.BadZipFile, zlib.error) as e:
        raise bad(f"{type(e).__name__}: {e}") from None
    state = arrays.pop("state", None)
    if state is None or state.dtype != np.uint8 or state.ndim != 1:
        raise bad("no 'state' entry of JSON bytes")
    try:
        state = json.loads(state.tobytes().decode("utf-8"))
    except ValueError as e:
        raise bad(f"its state is not JSON: {e}") from None
    if not isinstance(state, dict):
        raise bad("its state is not a JSON object")
    groups: dict[str, list[np.ndarray]] = {}
    for prefix in _GROUPS:
        names = [k for k in arrays if k.startswith(prefix + "/")]
        wanted = [f"{prefix}/{i}" for i in range(len(names))]
        if sorted(names) != sorted(wanted):
            raise bad(f"its {prefix}/* arrays are not numbered 0..{len(names) - 1}: {sorted(names)[:5]}")
        groups[prefix] = [arrays.pop(k) for k in wanted]
        if not all(a.dtype.kind in "fiu" for a in groups[prefix]):
            raise bad(f"its {prefix}/* arrays must be numeric")
    if arrays:
        raise bad(f"unexpected entries {sorted(arrays)[:5]}")
    return Checkpoint(groups["model"], groups["optimizer"], groups["best"], state)


def _is_number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def check_checkpoint(ckpt: Checkpoint, layer_sizes: list[int], epochs: int, path) -> None:
    """Refuse (RunDirError naming `path`) a checkpoint that does not fit the run: state fields and types, history
    rows, the best epoch, and the shapes of the model and best weights (kernel (in, out), bias (out,) per layer).
    Optimizer shapes depend on Keras and are checked by `assign`."""
    def bad(why: str) -> RunDirError:
        return RunDirError(f"{path}: checkpoint does not fit this run ({why})")

    state = ckpt.state
    missing = sorted({"epoch", "history", "best_epoch", "best_val"} - set(state))
    if missing:
        raise bad(f"its state lacks {missing}")
    epoch, history, best_epoch, best_val = (state[k] for k in ("epoch", "history", "best_epoch", "best_val"))
    if not (isinstance(epoch, int) and not isinstance(epoch, bool) and 1 <= epoch <= epochs):
        raise bad(f"state epoch must be an integer 1..{epochs}, got {epoch!r:.100}")
    if not (isinstance(history, list) and len(history) == epoch):
        raise bad(f"state history must list {epoch} epochs, got {str(history)[:100]}")
    for i, row in enumerate(history, 1):
        if not (isinstance(row, dict) and set(row) >= set(HISTORY_FIELDS) and row["epoch"] == i
                and all(_is_number(row[k]) for k in HISTORY_FIELDS)):
            raise bad(f"history row {i} must hold numbers {HISTORY_FIELDS} for epoch {i}, got {str(row)[:150]}")
    # best_epoch 0: the starting model (init "pca"), whose validation loss is state["initial_val"]
    first = 0 if _is_number(state.get("initial_val")) else 1
    if not (isinstance(best_epoch, int) and not isinstance(best_epoch, bool) and first <= best_epoch <= epoch):
        raise bad(f"best_epoch must be an integer {first}..{epoch}, got {best_epoch!r:.100}")
    best_val_then = state["initial_val"] if best_epoch == 0 else history[best_epoch - 1]["val_loss"]
    if not (_is_number(best_val) and best_val == best_val_then):
        raise bad(f"best_val {best_val!r:.40} is not epoch {best_epoch}'s validation loss")
    shapes = [s for a, b in zip(layer_sizes, layer_sizes[1:]) for s in ((a, b), (b,))]
    for group, values in (("model", ckpt.model), ("best", ckpt.best)):
        got = [tuple(v.shape) for v in values]
        if got != shapes:
            raise bad(f"its {group}/* arrays have shapes {got[:8]}, expected {shapes[:8]} for layers {layer_sizes}")
    if not ckpt.optimizer:
        raise bad("it holds no optimizer/* arrays")


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
