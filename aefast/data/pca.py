"""PCA baseline: the best linear code of a given size, in closed form (used by the trainer and the study).

One SVD of the centered training matrix gives the principal directions for every number of components at once,
so a whole sweep costs one decomposition. Everything is float64: the baseline must not be hurt by rounding.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class PCA:
    """Principal axes of a training matrix.

    mean: (D,) float64 training mean.  axes: (R, D) float64 right singular vectors, R = min(N, D), rows ordered by
    decreasing singular value, orthonormal.  singular_values: (R,) float64, decreasing.
    """

    mean: np.ndarray
    axes: np.ndarray
    singular_values: np.ndarray

    @property
    def max_components(self) -> int:
        return int(self.axes.shape[0])

    def _axes(self, components: int) -> np.ndarray:
        if not isinstance(components, (int, np.integer)) or isinstance(components, bool):
            raise TypeError(f"components must be an integer, got {components!r}")
        if not 1 <= components <= self.max_components:
            raise ValueError(f"components must be between 1 and {self.max_components}, got {components}")
        return self.axes[:components]

    def encode(self, images: np.ndarray, components: int) -> np.ndarray:
        """(N, D) -> (N, components) float64 coordinates along the first `components` axes."""
        return (_as_matrix(images, self.mean.shape[0]) - self.mean) @ self._axes(components).T

    def decode(self, codes: np.ndarray) -> np.ndarray:
        """(N, k) -> (N, D) float64 reconstruction from the first k axes."""
        codes = np.asarray(codes, dtype=np.float64)
        if codes.ndim != 2:
            raise ValueError(f"codes must be a 2-D (N, components) array, got shape {codes.shape}")
        return codes @ self._axes(codes.shape[1]) + self.mean

    def reconstruct(self, images: np.ndarray, components: int) -> np.ndarray:
        """(N, D) -> (N, D) float64: project onto the first `components` axes and back."""
        return self.decode(self.encode(images, components))


def _as_matrix(images: np.ndarray, width: int | None = None) -> np.ndarray:
    """Any (N, ...) array of pixels in [0, 1] -> (N, D) float64 (uint8 images are scaled by 1/255)."""
    a = np.asarray(images)
    if a.ndim < 2:
        raise ValueError(f"images must be an (N, ...) array with one row per image, got shape {a.shape}")
    m = a.reshape(a.shape[0], -1)
    m = m.astype(np.float64) / 255.0 if m.dtype == np.uint8 else m.astype(np.float64)
    if width is not None and m.shape[1] != width:
        raise ValueError(f"images have {m.shape[1]} values each, the PCA was fitted on {width}")
    if not np.isfinite(m).all():
        raise ValueError("images contain NaN or infinite values")
    return m


def fit_pca(images: np.ndarray) -> PCA:
    """Fit PCA to (N, ...) training images (uint8, or float in [0, 1]) by the SVD of the centered data."""
    x = _as_matrix(images)
    if x.shape[0] < 2:
        raise ValueError(f"PCA needs at least 2 training images, got {x.shape[0]}")
    mean = x.mean(axis=0)
    _, s, vt = np.linalg.svd(x - mean, full_matrices=False)
    return PCA(mean=mean, axes=vt, singular_values=s)


def pca_test_mse(pca: PCA, test_images: np.ndarray, components: list[int]) -> dict[int, dict[str, float]]:
    """Test MSE per pixel of the k-component PCA reconstruction, for each k in `components`.

    Returns {k: {"mse": raw MSE, "mse_clipped": MSE after clipping the reconstruction to [0, 1]}}. Clipping can
    only help (the truth lies in [0, 1]), so mse_clipped <= mse.
    """
    x = _as_matrix(test_images, pca.mean.shape[0])
    centered = x - pca.mean
    coords = centered @ pca.axes.T  # (N, R): all coordinates once; a k-prefix is the k-component code
    out = {}
    for k in components:
        recon = pca.decode(coords[:, :pca._axes(k).shape[0]])
        out[int(k)] = {"mse": float(np.mean((recon - x) ** 2)),
                       "mse_clipped": float(np.mean((np.clip(recon, 0.0, 1.0) - x) ** 2))}
    return out
