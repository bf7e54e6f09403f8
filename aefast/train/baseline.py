"""The baseline every run is judged against: PCA at the run's code size and the mean training image.

A dense autoencoder whose code is `latent` numbers competes with the best linear code of the same size, PCA with
`latent` components fitted on the same training images. `baseline_metrics` measures both on the run's test images
(the ones its test MSE uses), `summary_line` puts them beside the autoencoder's figure, and `warning` says in plain
words what it means when the autoencoder does not beat clipped PCA.

Both sides are scored as they are served: `served_mse` clips reconstructions to [0, 1] as `Engine.reconstruct(
clip=True)` and `aefast reconstruct` do, so a linear-output model (whose outputs may leave [0, 1]) is compared with
clipped PCA like with like, and a linear model that is PCA (the PCA start) scores what clipped PCA scores.

The fit, float64 throughout: the covariance of the training images in one pass over chunks of rows (N x D^2
multiply-adds), then its top eigenvectors: from numpy.linalg.eigh up to EXACT_MAX_DIM values per image, above it
from a subspace iteration on the covariance (each step one D x D by D x l product, l = 2 * latent + 16), since
eigh's D^3 would dominate (3072 x 3072: 28 s on one thread, 50 s on two of a loaded machine). Training images
beyond MAX_FIT_ROWS are subsampled (seeded); the number used is stored as pca_fit_images. Measured with
`baseline_metrics` on the 2-core Sapphire-Rapids-class KVM guest while 6 other jobs ran (load 11-16, so upper
bounds): MNIST, 55,000 x 784 training images and latent 100: 9-12 s (3.4e10 multiply-adds for the covariance,
the rest converting to float64 and projecting the 15,000 validation and test images); 10,000 x 3072 (32x32 RGB)
and latent 64: 20 s (the covariance is 1.9e11 float64 operations; one epoch of the default 1000-wide model on
those images is 3.7e11 float32 operations).
"""
from __future__ import annotations

import contextlib

import numpy as np

from ..data.pca import PCA, pca_test_mse

EXACT_MAX_DIM = 1024     # image sizes (values) up to which the eigenvectors come from a full eigh
MAX_FIT_ROWS = 60_000    # training images the PCA is fitted on, at most (a seeded subsample beyond)
CHUNK_VALUES = 1 << 23   # float64 values converted at once while accumulating the covariance (64 MiB)
ITERATIONS = 16          # subspace iteration steps (see _top_eigenvectors for how fast they converge)
EXACT_BELOW = 1e-12      # a PCA test MSE below this is PCA reconstructing the images exactly (rounding only)
# Two MSEs whose ratio is within this of 1 are level: a linear-output model that is the PCA start differs from
# clipped PCA by float32 rounding and by the few test coordinates that meet the ELU's curved half (about 2e-4
# relative at MNIST latent 500).
LEVEL_WITHIN = 1e-3

METRIC_KEYS = ("pca_test_mse", "pca_clipped_test_mse", "pca_clipped_val_mse", "mean_image_test_mse",
               "pca_components", "pca_fit_images")


def _chunks(images: np.ndarray):
    """(N, ...) images as successive (rows, D) float64 blocks of at most CHUNK_VALUES values."""
    n, d = len(images), int(np.prod(images.shape[1:]))
    step = max(1, CHUNK_VALUES // d)
    for start in range(0, n, step):
        yield np.asarray(images[start:start + step], dtype=np.float64).reshape(-1, d)


def mean_image(images: np.ndarray) -> np.ndarray:
    """The (D,) float64 mean of (N, ...) images (NumPy converts to float64 in small buffers, without a copy)."""
    return np.asarray(images).reshape(len(images), -1).mean(axis=0, dtype=np.float64)


def covariance(images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(mean (D,), scatter matrix (D, D)) of (N, ...) images in float64: the sum over images of
    (x - mean)(x - mean)^T, as sum(x x^T) - N mean mean^T in one pass over chunks of rows (each row converted to
    float64 once; at most CHUNK_VALUES float64 values besides the D x D matrix). For pixels in [0, 1] the
    subtraction costs a few of float64's 16 digits: a pixel of mean 0.5 and variance 1e-6 keeps about 10."""
    d = int(np.prod(images.shape[1:]))
    total, scatter = np.zeros(d), np.zeros((d, d))
    for block in _chunks(images):
        total += block.sum(axis=0)
        scatter += block.T @ block
    mean = total / len(images)
    scatter -= len(images) * np.outer(mean, mean)
    return mean, scatter


def _one_blas_thread():
    """A context in which NumPy's BLAS/LAPACK run on one thread, when threadpoolctl is installed (it comes with
    scikit-learn; without it nothing changes but the speed). LAPACK's eigh of a 784 x 784 matrix took 5-7 s in
    the multithreaded OpenBLAS of a loaded 2-core VM, after a TensorFlow run, and 0.3 s on one thread."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        return contextlib.nullcontext()
    return threadpool_limits(limits=1, user_api="blas")


def _orthonormal(y: np.ndarray) -> np.ndarray:
    """An orthonormal basis (D, <= l) of the span of the (D, l) columns of y: classical Gram-Schmidt with a second
    projection per column (orthogonal to rounding), dropping a column with nothing left after projection. Only
    matrix-vector products: LAPACK's QR and even a 144 x 144 eigh took about 0.4-1.4 s each in the multithreaded
    OpenBLAS of a loaded 2-core VM, against 0.06 s for this on a 1500 x 144 matrix."""
    basis = np.empty_like(y)
    m = 0
    for j in range(y.shape[1]):
        v = y[:, j].copy()
        start = np.sqrt(v @ v)
        for _ in range(2):
            if m:
                v -= basis[:, :m] @ (basis[:, :m].T @ v)
        norm = np.sqrt(v @ v)
        if norm > 1e-10 * start:
            basis[:, m] = v / norm
            m += 1
    return basis[:, :m]


def _top_eigenvectors(scatter: np.ndarray, k: int, seed: int, exact_max_dim: int) -> tuple[np.ndarray, np.ndarray]:
    """The (at most) k largest eigenvalues of the symmetric (D, D) scatter matrix, decreasing, and their
    eigenvectors as rows. Full eigh up to exact_max_dim values, or when k is over a third of D; else subspace
    iteration on l = min(D, 2k + 16) columns started from a seeded random basis, then Rayleigh-Ritz on the
    subspace found. The variance the k axes miss converges like (lambda_(l+1) / lambda_k)^ITERATIONS, and where
    that ratio is near 1 the axes' variances are near each other, so any mix of them reconstructs about as well."""
    with _one_blas_thread():
        return _top_eigenvectors_here(scatter, k, seed, exact_max_dim)


def _top_eigenvectors_here(scatter: np.ndarray, k: int, seed: int, exact_max_dim: int):
    d = scatter.shape[0]
    if d <= exact_max_dim or 3 * k > d:
        values, vectors = np.linalg.eigh(scatter)
    else:
        q = _orthonormal(np.random.default_rng(seed).standard_normal((d, min(d, 2 * k + 16))))
        for _ in range(ITERATIONS):
            q = _orthonormal(scatter @ q)
        small_values, small_vectors = np.linalg.eigh(q.T @ scatter @ q)
        values, vectors = small_values, q @ small_vectors
    order = np.argsort(values)[::-1][:k]
    return np.clip(values[order], 0.0, None), vectors[:, order].T


def fit_pca(train: np.ndarray, components: int, *, seed: int = 0, max_rows: int | None = None,
            exact_max_dim: int | None = None) -> PCA:
    """PCA with `components` axes (at most the N - 1 directions N centered images span) of (N, ...) training
    images in [0, 1], fitted in float64 on at most max_rows of them (a subsample seeded by `seed` beyond).
    max_rows and exact_max_dim default to MAX_FIT_ROWS and EXACT_MAX_DIM as they are at the call."""
    max_rows = MAX_FIT_ROWS if max_rows is None else max_rows
    exact_max_dim = EXACT_MAX_DIM if exact_max_dim is None else exact_max_dim
    if len(train) < 2:
        raise ValueError(f"PCA needs at least 2 training images, got {len(train)}")
    if len(train) > max_rows:
        train = train[np.sort(np.random.default_rng(seed).choice(len(train), max_rows, replace=False))]
    mean, scatter = covariance(train)
    k = min(components, len(train) - 1, scatter.shape[0])
    values, axes = _top_eigenvectors(scatter, k, seed, exact_max_dim)
    return PCA(mean=mean, axes=axes, singular_values=np.sqrt(values))


def served_mse(reconstructions: np.ndarray, images: np.ndarray) -> float:
    """Mean squared pixel error (float64 accumulation) of reconstructions as aefast serves them: clipped to [0, 1],
    as `Engine.reconstruct(clip=True)`, `aefast reconstruct` and every saved picture are. (N, D) or (N, ...) arrays
    of the same size, images in [0, 1]. A sigmoid output lies in [0, 1] already, so for it this is the plain MSE;
    a linear output may overshoot, and clipping can only lower its error (the images lie in [0, 1])."""
    return unclipped_mse(np.clip(reconstructions, 0.0, 1.0), images)


def unclipped_mse(reconstructions: np.ndarray, images: np.ndarray) -> float:
    """Mean squared pixel error (float64 accumulation) of reconstructions taken as they are (see served_mse)."""
    recon = np.asarray(reconstructions)
    diff = recon.reshape(len(recon), -1).astype(np.float64) - np.asarray(images).reshape(len(recon), -1)
    return float(np.mean(np.square(diff)))


def mean_image_mse(train: np.ndarray, test: np.ndarray) -> float:
    """MSE of predicting every test image as the mean training image (float64)."""
    mean = mean_image(train)
    return float(np.mean((np.asarray(test, np.float64).reshape(len(test), -1) - mean) ** 2))


def baseline_metrics(train: np.ndarray, validation: np.ndarray, test: np.ndarray, latent: int,
                     seed: int = 0, pca: PCA | None = None) -> dict:
    """The baseline figures stored with a run (keys METRIC_KEYS): PCA with `latent` components fitted on `train`,
    its test MSE plain and with the reconstruction clipped to [0, 1] (pixels cannot leave it, so clipping only
    helps), its clipped validation MSE (the scale of the loss plot's validation curve), and the mean training
    image's test MSE. pca_components is below `latent` only when there are fewer training images than that.
    pca: fit_pca(train, latent, seed=seed) when the caller has it already (the PCA start fits it), else fitted here."""
    if pca is None:
        pca = fit_pca(train, latent, seed=seed)
    k = pca.max_components
    on_test = pca_test_mse(pca, test, [k])[k]
    return {"pca_test_mse": on_test["mse"], "pca_clipped_test_mse": on_test["mse_clipped"],
            "pca_clipped_val_mse": pca_test_mse(pca, validation, [k])[k]["mse_clipped"],
            "mean_image_test_mse": mean_image_mse(train, test), "pca_components": k,
            "pca_fit_images": min(len(train), MAX_FIT_ROWS)}


def has_baseline(metrics: dict) -> bool:
    return all(isinstance(metrics.get(key), (int, float)) for key in ("test_mse", "pca_clipped_test_mse",
                                                                       "mean_image_test_mse"))


def standing(ae: float, pca: float) -> str:
    """The autoencoder's served MSE against clipped PCA's: "exact" (PCA reconstructs the images exactly), "better",
    "level" (the ratio within LEVEL_WITHIN of 1) or "worse"."""
    if pca < EXACT_BELOW:
        return "exact"
    if ae < pca * (1 - LEVEL_WITHIN):
        return "better"
    return "level" if ae <= pca * (1 + LEVEL_WITHIN) else "worse"


def beats_pca(metrics: dict) -> bool:
    return standing(metrics["test_mse"], metrics["pca_clipped_test_mse"]) == "better"


def _verdict(ae: float, pca: float) -> str:
    where = standing(ae, pca)
    if where == "exact":
        return "PCA reconstructs these images exactly at this code size"
    if ae <= 0:
        return "the autoencoder reconstructs these images exactly"
    if where == "level":
        return f"the autoencoder equals PCA (within {LEVEL_WITHIN:.1%})"
    ratio = ae / pca
    return (f"the autoencoder is {1 / ratio:.2f}x better than PCA" if where == "better"
            else f"the autoencoder is {ratio:.2f}x worse than PCA")


def summary_line(metrics: dict) -> str:
    """"test MSE: autoencoder 0.004679, PCA 0.002860 (clipped), mean image 0.0726 -> the autoencoder is 1.64x worse
    than PCA" from a run's metrics (test_mse and the baseline_metrics keys). test_mse is the served figure
    (served_mse: clipped to [0, 1]), so both sides are clipped."""
    ae, pca = metrics["test_mse"], metrics["pca_clipped_test_mse"]
    return (f"test MSE: autoencoder {ae:#.4g}, PCA {pca:#.4g} (clipped), mean image "
            f"{metrics['mean_image_test_mse']:#.3g} -> {_verdict(ae, pca)}")


def warning(metrics: dict) -> str | None:
    """None when the autoencoder beats clipped PCA on the test images; else what that means and what to try."""
    if beats_pca(metrics):
        return None
    ae, pca, mean = metrics["test_mse"], metrics["pca_clipped_test_mse"], metrics["mean_image_test_mse"]
    k = metrics["pca_components"]
    if ae >= mean:
        return (f"warning: the autoencoder does not even beat the mean image (test MSE {ae:#.4g} against "
                f"{mean:#.3g}): showing every input the average training image reconstructs them better, so it "
                "has not learned these images. Try more epochs (--epochs), another --lr or more training images; "
                f"PCA's code of {k} numbers reaches {pca:#.4g}.")
    if standing(ae, pca) == "level":
        start = ("no trained epoch improved on the PCA start (best epoch 0), so the model computes PCA; "
                 if metrics.get("best_epoch") == 0 else "")
        return (f"warning: the autoencoder does not beat PCA, it equals it (test MSE {ae:#.4g} against {pca:#.4g}, "
                f"within {LEVEL_WITHIN:.1%}): {start}PCA's code of {k} numbers per image, a linear projection "
                "computed in seconds, reconstructs these test images as well, so the model adds nothing over it "
                "yet. Try more epochs (--epochs), more training images or a wider --hidden; if it stays level, use "
                "PCA for this data.")
    return (f"warning: the autoencoder does not beat PCA (test MSE {ae:#.4g} against {pca:#.4g}): PCA's code of "
            f"{k} numbers per image, a linear projection computed in seconds, reconstructs these test images "
            "better than this model's code of the same size, so the model adds nothing over it yet. Try more "
            "epochs (--epochs), more training images or a wider --hidden; if it still loses, use PCA for this "
            "data.")


def report_lines(metrics: dict) -> list[str]:
    """What a run prints at its end: the summary line, then the warning when there is one."""
    if not has_baseline(metrics):
        return []
    note = warning(metrics)
    return [summary_line(metrics), *([note] if note else [])]
