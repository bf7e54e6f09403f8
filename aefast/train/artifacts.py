"""What a run leaves in its directory besides the model and the checkpoint, each file written atomically.

  config.json          the TrainConfig (what --resume rebuilds the run from)
  history.csv          epoch, train_loss, val_loss, lr, seconds (one row per finished epoch); val_loss is the
                       validation MSE of the outputs clipped to [0, 1], as served (baseline.served_mse)
  metrics.json         test MSE/PSNR beside the baseline (PCA at the code size, the mean image), compression
                       ratio, epochs, wall time, precision, XLA, device, ...; test_mse is served (clipped) like
                       pca_clipped_test_mse beside it, test_mse_unclipped the raw outputs' figure
  loss.png             train and validation loss per epoch, PCA's validation MSE as a reference line
  reconstructions.png  test images (top row) above their reconstructions (bottom row), in the images' shape
"""
from __future__ import annotations

import csv
import io
import json
import math
import os
from pathlib import Path

import numpy as np

from .._io import write_bytes_atomic, write_text_atomic

HISTORY_FIELDS = ("epoch", "train_loss", "val_loss", "lr", "seconds")
CONFIG_NAME = "config.json"
HISTORY_NAME = "history.csv"
METRICS_NAME = "metrics.json"
LOSS_PLOT_NAME = "loss.png"
RECONSTRUCTIONS_NAME = "reconstructions.png"


def write_json(path: str | os.PathLike, obj: dict) -> Path:
    return write_text_atomic(path, json.dumps(obj, indent=2, sort_keys=True) + "\n")


def read_json(path: str | os.PathLike) -> dict:
    return json.loads(Path(path).read_text(encoding="utf-8"))


def write_history(path: str | os.PathLike, history: list[dict]) -> Path:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=HISTORY_FIELDS, lineterminator="\n")
    writer.writeheader()
    for row in history:
        writer.writerow({k: row[k] for k in HISTORY_FIELDS})
    return write_text_atomic(path, buf.getvalue())


def psnr(mse: float, peak: float = 1.0) -> float:
    """Peak signal-to-noise ratio in dB for pixels in [0, peak]."""
    return math.inf if mse <= 0 else 10.0 * math.log10(peak * peak / mse)


def _save_figure(fig, path: str | os.PathLike) -> Path:
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100, bbox_inches="tight")
    plt.close(fig)
    return write_bytes_atomic(path, buf.getvalue())


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")  # files only, never a window
    import matplotlib.pyplot as plt

    return plt


def loss_figure(history: list[dict], best_epoch: int | None, pca_val_mse: float | None = None,
                pca_components: int | None = None):
    """The loss plot as a matplotlib Figure: train loss and validation MSE per epoch (whole-number epoch ticks),
    the best epoch, and PCA's clipped validation MSE at the same code size as a horizontal line (the validation
    curve's scale: the same images and the same per-pixel MSE). The line is left out when it is 0 on the log
    axis (PCA exact)."""
    from matplotlib.ticker import MaxNLocator

    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 4))
    epochs = [row["epoch"] for row in history]
    ax.plot(epochs, [row["train_loss"] for row in history], marker=".", label="train loss")
    ax.plot(epochs, [row["val_loss"] for row in history], marker=".", label="validation MSE")
    if best_epoch is not None:
        ax.axvline(best_epoch, color="gray", linestyle=":", label=f"best epoch {best_epoch}")
    finite = [v for row in history for v in (row["train_loss"], row["val_loss"]) if math.isfinite(v) and v > 0]
    log = bool(finite)
    if log:
        ax.set_yscale("log")
    if pca_val_mse is not None and math.isfinite(pca_val_mse) and (pca_val_mse > 0 or not log):
        components = "" if pca_components is None else f", {pca_components} components"
        ax.axhline(pca_val_mse, color="tab:red", linestyle="--",
                   label=f"PCA{components} (clipped), validation: {pca_val_mse:#.4g}")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("epoch")
    ax.set_ylabel("mean squared error (pixels in [0, 1])")
    ax.legend()
    ax.grid(True, which="both", alpha=0.3)
    return fig


def plot_loss(path: str | os.PathLike, history: list[dict], best_epoch: int | None,
              pca_val_mse: float | None = None, pca_components: int | None = None) -> Path:
    """loss.png: `loss_figure` written atomically."""
    return _save_figure(loss_figure(history, best_epoch, pca_val_mse, pca_components), path)


def plot_reconstructions(path: str | os.PathLike, images: np.ndarray, reconstructions: np.ndarray,
                         image_shape: tuple[int, ...] = (28, 28)) -> Path:
    """images, reconstructions: (n, prod(image_shape)) in [0, 1]; top row originals, bottom row outputs.
    image_shape (H, W) is shown in grayscale, (H, W, 3) in colour, (H, W, 1) as (H, W)."""
    if len(image_shape) == 3 and image_shape[2] == 1:
        image_shape = tuple(image_shape[:2])
    colour = len(image_shape) == 3
    plt = _pyplot()
    n = len(images)
    fig, axes = plt.subplots(2, n, figsize=(1.2 * n, 2.6), squeeze=False)
    for col in range(n):
        for row, source in enumerate((images, reconstructions)):
            ax = axes[row][col]
            pixels = np.clip(source[col].reshape(image_shape), 0, 1)
            if colour:
                ax.imshow(pixels, interpolation="nearest")
            else:
                ax.imshow(pixels, cmap="gray", vmin=0, vmax=1, interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
    axes[0][0].set_ylabel("input")
    axes[1][0].set_ylabel("output")
    return _save_figure(fig, path)
