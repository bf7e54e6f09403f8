"""The study's three figures, drawn with matplotlib (Agg) and written atomically as PNG."""
from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np

# One figure helper for the whole package: the trainer's (Agg backend, atomic PNG write).
from ..train.artifacts import _pyplot
from ..train.artifacts import _save_figure as _save
from .findings import EXACT_MSE
from .results import ConfigResult


def _label(r: ConfigResult) -> str:
    return f"latent {r.latent}, hidden {'-'.join(map(str, r.hidden))}"


def plot_mse_vs_latent(results: list[ConfigResult], path: str | os.PathLike) -> Path:
    """Test MSE against latent size (log-log): autoencoder by hidden layout, PCA raw and clipped, the tutorial."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 4.5))
    layouts = sorted({tuple(r.hidden) for r in results}, key=lambda h: (len(h), h))
    for hidden, marker in zip(layouts, "osD^v<>ph*"):
        rs = sorted((r for r in results if tuple(r.hidden) == hidden), key=lambda r: r.latent)
        ax.plot([r.latent for r in rs], [r.test_mse for r in rs], marker=marker,
                label=f"autoencoder, hidden {'-'.join(map(str, hidden))}")
    by_latent = {r.latent: r for r in sorted(results, key=lambda r: r.latent)}
    for key, style, label in (("pca_mse", "k--", "PCA"), ("pca_mse_clipped", "k:", "PCA clipped to [0, 1]")):
        pts = [(k, getattr(r, key)) for k, r in by_latent.items() if getattr(r, key) > EXACT_MSE]
        if pts:
            ax.plot(*zip(*pts), style, marker="x", label=label)
    tut = [(r.latent, r.tutorial_mse, tuple(r.hidden)) for r in results if r.tutorial_mse is not None]
    if tut:
        ax.scatter([t[0] for t in tut], [t[1] for t in tut], marker="*", s=120, c="tab:red", zorder=5,
                   label="tutorial (mean validation loss)")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xticks(sorted(by_latent), [str(k) for k in sorted(by_latent)], fontsize=8)
    ax.set_xticks([], minor=True)
    exact = [k for k, r in by_latent.items() if r.pca_mse_clipped <= EXACT_MSE]
    if exact:
        ax.set_title(f"Reconstruction error against code size (PCA is exact at {', '.join(map(str, exact))})",
                     fontsize=10)
    else:
        ax.set_title("Reconstruction error against code size")
    ax.set_xlabel("latent size (values per image)")
    ax.set_ylabel("test MSE per pixel (pixels in [0, 1])")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    return _save(fig, path)


def plot_reconstruction_grid(results: list[ConfigResult], originals: np.ndarray,
                             path: str | os.PathLike) -> Path:
    """Rows: the original test digits, then each configuration (largest latent first); one column per digit.

    originals: (n_samples, 784) uint8, the digits each result's sample_reconstructions were made from.
    """
    plt = _pyplot()
    originals = np.asarray(originals, dtype=np.uint8).reshape(len(originals), 28, 28)
    rows = [("original", originals)] + [
        (_label(r), np.asarray(r.sample_reconstructions, dtype=np.uint8).reshape(-1, 28, 28))
        for r in sorted(results, key=lambda r: (-r.latent, r.hidden))]
    n_cols = len(originals)
    fig, axes = plt.subplots(len(rows), n_cols, figsize=(n_cols * 0.8 + 2.2, len(rows) * 0.85), squeeze=False)
    for (label, images), row in zip(rows, axes):
        if len(images) != n_cols:
            raise ValueError(f"{label}: {len(images)} sample reconstructions, expected {n_cols}")
        for img, ax in zip(images, row):
            ax.imshow(img, cmap="gray", vmin=0, vmax=255)
            ax.set_xticks([])
            ax.set_yticks([])
        row[0].set_ylabel(label, rotation=0, ha="right", va="center", fontsize=7)
    fig.suptitle("The same test digits reconstructed at every latent size", fontsize=10)
    return _save(fig, path)


def plot_loss_curves(results: list[ConfigResult], path: str | os.PathLike) -> Path:
    """One panel per configuration: training and validation loss per epoch (log y)."""
    plt = _pyplot()
    n = len(results)
    cols = min(n, 3)
    rows = math.ceil(n / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 2.9 * rows), squeeze=False)
    for ax, r in zip(axes.flat, sorted(results, key=lambda r: (-r.latent, r.hidden))):
        epochs = np.arange(1, len(r.history) + 1)
        for key, color in (("train_loss", "tab:red"), ("val_loss", "tab:blue")):
            values = [h.get(key) for h in r.history]
            if values and all(isinstance(v, (int, float)) and v > 0 for v in values):
                ax.plot(epochs, values, color=color, marker=".", label={"train_loss": "train", "val_loss": "validation"}[key])
        ax.set_yscale("log")
        ax.set_title(_label(r), fontsize=9)
        ax.set_xlabel("epoch")
        ax.set_ylabel("MSE")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=7)
    for ax in list(axes.flat)[n:]:
        ax.axis("off")
    fig.tight_layout()
    return _save(fig, path)
