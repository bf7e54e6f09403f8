"""report.md and its figures, built from finished configurations' results (atomic writes)."""
from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np

from .._io import write_text_atomic
from .findings import findings
from .plots import plot_loss_curves, plot_mse_vs_latent, plot_reconstruction_grid
from .results import ConfigResult

FIGURES = {"mse": "mse_vs_latent.png", "grid": "reconstructions.png", "loss": "loss_curves.png"}

_COLUMNS = ("configuration", "latent", "ratio (dims)", "ratio (bytes)", "test MSE", "PSNR (dB)", "PCA MSE",
            "PCA MSE clipped", "tutorial", "epochs", "train time", "compress img/s @256")


def _sci(x: float | None) -> str:
    if x is None:
        return "-"
    return "0" if x == 0 else f"{x:.3g}" if 1e-3 <= abs(x) < 1e4 else f"{x:.2e}"


def _duration(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds < 120 else f"{seconds / 60:.1f} min"


def _row(r: ConfigResult) -> list[str]:
    psnr = r.psnr_db
    return [f"`{r.name}`", str(r.latent), f"{r.ratio_dims:.2f}", f"{r.ratio_bytes:.2f}", _sci(r.test_mse),
            "inf" if math.isinf(psnr) else f"{psnr:.2f}", _sci(r.pca_mse), _sci(r.pca_mse_clipped),
            _sci(r.tutorial_mse), str(r.epochs), _duration(r.train_seconds), f"{r.compress_images_per_s:,.0f}"]


def results_table(results: list[ConfigResult]) -> str:
    """A markdown table, one row per configuration, largest latent first."""
    lines = ["| " + " | ".join(_COLUMNS) + " |", "|" + "---|" * len(_COLUMNS)]
    for r in sorted(results, key=lambda r: (-r.latent, r.hidden)):
        lines.append("| " + " | ".join(_row(r)) + " |")
    return "\n".join(lines)


def write_report(out_dir: str | os.PathLike, results: list[ConfigResult], sample_images: np.ndarray,
                 context: dict) -> Path:
    """Write report.md and the three figures into `out_dir`; returns the report's path.

    sample_images: (n, 784) uint8 test digits that each result's sample_reconstructions reproduce.
    context: "train_images", "test_images" (counts), "test_variance" (MSE of predicting the training mean,
    optional), "command" (how the study was run), "pending" (names of configurations not finished, optional).
    """
    out_dir = Path(out_dir)
    if not results:
        raise ValueError("no finished configuration to report on")
    plot_mse_vs_latent(results, out_dir / FIGURES["mse"])
    plot_reconstruction_grid(results, sample_images, out_dir / FIGURES["grid"])
    plot_loss_curves(results, out_dir / FIGURES["loss"])
    pending = context.get("pending") or []
    parts = [
        "# Compression study: autoencoder latent size against reconstruction quality",
        "",
        f"Trained on {context['train_images']:,} MNIST training images, scored on {context['test_images']:,} test "
        f"images (pixels scaled to [0, 1]). Command: `{context.get('command', 'python -m aefast.analyze')}`.",
        "",
        "Test MSE is the mean squared error per pixel of the exported model run by the aefast engine, its outputs "
        "clipped to [0, 1] as `aefast reconstruct` serves them (a linear output can leave [0, 1]); PSNR is "
        "10 log10(1 / test MSE). Ratio (dims) is 784 / latent; ratio (bytes) compares the 784-byte uint8 image "
        "with its latent code stored as float16 (2 bytes per value; below 1 the code is larger than the image). "
        "PCA uses as many components as the latent size, fitted on the same training images (SVD, float64); "
        "'clipped' clips its reconstruction to [0, 1]. 'tutorial' is the tutorial's reported mean validation loss. "
        "Train time is the sum of aefast.train's per-epoch seconds; throughput is `aefast.load(model).compress` on batches of 256.",
        "",
        results_table(results),
        "",
    ]
    unclipped = [r for r in sorted(results, key=lambda r: (-r.latent, r.hidden))
                 if r.test_mse_unclipped is not None and r.test_mse_unclipped != r.test_mse]
    if unclipped:
        parts += ["Test MSE of the unclipped outputs (linear output layers): " + ", ".join(
            f"`{r.name}` {_sci(r.test_mse_unclipped)}" for r in unclipped) + ".", ""]
    if pending:
        parts += [f"Not finished yet (rerun the same command to resume): {', '.join(pending)}.", ""]
    parts += ["## Findings", ""] + [f"- {f}" for f in findings(results, context.get("test_variance"))] + [""]
    parts += [
        "## Figures", "",
        f"![test MSE against latent size]({FIGURES['mse']})", "",
        f"![the same test digits at every latent size]({FIGURES['grid']})", "",
        f"![training and validation loss per configuration]({FIGURES['loss']})", "",
    ]
    return write_text_atomic(out_dir / "report.md", "\n".join(parts))
