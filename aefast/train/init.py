"""PCA start: initial weights under which the autoencoder reconstructs like PCA with as many components as its code.

The model is pixels D -> hidden h_1 .. h_m (ELU) -> code K (linear) -> h_m .. h_1 (ELU) -> D (sigmoid or linear).
A linear code contains PCA; the hidden layers carry it through the linear half of their ELU:

    p = min(K, h_1, .., h_m, rank): the components carried (p = K unless a hidden layer is narrower than the code)
    P: (p, D) the first p principal axes, mu: (D,) the training mean, sigma: (p,) the training std of each coordinate
    u = (x - mu) @ P.T / sigma        (N, p) unit-variance PCA coordinates
    off: (p,) = 1 - min over the training set of u, so u + off >= 1 > 0 on every training image

    encoder layer 1     kernel[:, :p] = P.T / sigma, bias[:p] = off - (mu @ P.T) / sigma   -> units 0..p-1 hold u + off
    encoder layers 2..m kernel[:p, :p] = identity, bias[:p] = 0                              -> still u + off
    code layer          kernel[:p, :p] = diag(sigma), bias[:p] = -sigma * off               -> code[:p] = PCA code c
    decoder layer 1     kernel[:p, :p] = diag(1 / sigma), bias[:p] = off                    -> u + off
    decoder layers 2..m identity, as in the encoder                                          -> u + off
    output (linear)     kernel[:p, :] = diag(sigma) @ P, bias = mu - (sigma * off) @ P      -> mu + c @ P = PCA
    output (sigmoid)    the same pre-activation as y = c @ P (the centred PCA reconstruction), scaled per pixel:
                        sigmoid(alpha * y + beta), alpha and beta (D,) fitted per pixel by least squares on the
                        training images (a soft clip of PCA into (0, 1); starts from the tangent at the mean pixel)

ELU is the identity on positive inputs, so on the training images the network computes exactly that (validation and
test images whose coordinates fall below the training minimum meet the ELU's curved half, a small effect). With an
ELU code layer the code holds u + off (identity kernels) and decoder layer 1 passes it on. Every other unit keeps its
random (Glorot) incoming weights, and no path unit and no output reads it (those weights are zero): it does not
change the start, and the output's weights from the last hidden layer's other units get gradients from the first
step on. Training may still leave the start behind for the worse; the trainer keeps the start as "epoch 0" of its
best-epoch selection (aefast/train/loop.py), so the exported model is never worse than it on validation.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# The per-pixel sigmoid fit: at most this many training images, this many Levenberg-Marquardt iterations.
SIGMOID_FIT_IMAGES = 2000
SIGMOID_FIT_ITERATIONS = 20
# The smallest path scale, relative to the largest component's standard deviation (pca_start).
SCALE_FLOOR = 1e-2
# Logit range of the starting output bias (as model.output_bias: a mean pixel of 0 or 1 is clipped to 1e-3).
_EPS = 1e-3


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * z))


def fit_soft_clip(y: np.ndarray, x: np.ndarray, mean: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per pixel d, (alpha_d, beta_d) minimising sum_n (sigmoid(alpha_d y_nd + beta_d) - x_nd)^2.

    y: (N, D) centred linear reconstructions, x: (N, D) the images, mean: (D,) the mean image. Starts at the tangent
    of the sigmoid at the mean pixel (beta = logit(mean), alpha = 1 / sigmoid'(beta)); Levenberg-Marquardt steps per
    pixel, each kept only where it lowers that pixel's error, so the fit never ends worse than its start.
    Returns float64 (D,) arrays.
    """
    m = np.clip(mean, _EPS, 1 - _EPS)
    beta = np.log(m / (1 - m))
    alpha = 1.0 / (m * (1 - m))
    damping = np.full_like(alpha, 1e-3)

    def loss(a, b):
        return np.sum((_sigmoid(y * a + b) - x) ** 2, axis=0)

    current = loss(alpha, beta)
    for _ in range(SIGMOID_FIT_ITERATIONS):
        s = _sigmoid(y * alpha + beta)
        r = s - x
        g = s * (1 - s)                       # d sigmoid / dz
        ja, jb = g * y, g                     # Jacobian columns for alpha and beta, (N, D) each
        aa, ab, bb = np.sum(ja * ja, 0), np.sum(ja * jb, 0), np.sum(jb * jb, 0)
        ga, gb = np.sum(ja * r, 0), np.sum(jb * r, 0)
        aa_d, bb_d = aa * (1 + damping) + 1e-12, bb * (1 + damping) + 1e-12
        det = aa_d * bb_d - ab * ab
        step_a = (bb_d * ga - ab * gb) / det
        step_b = (aa_d * gb - ab * ga) / det
        a_new, b_new = alpha - step_a, beta - step_b
        trial = loss(a_new, b_new)
        better = np.isfinite(trial) & (trial < current)
        alpha, beta = np.where(better, a_new, alpha), np.where(better, b_new, beta)
        current = np.where(better, trial, current)
        damping = np.where(better, damping / 3, damping * 10)
    return alpha, beta


def pca_start(weights: list[np.ndarray], layer_sizes: list[int], output: str, train_x: np.ndarray, *,
              latent_activation: str = "linear", pca=None, soft_clip=None) -> list[np.ndarray]:
    """The PCA start (see the module docstring) written over `weights`, the model's freshly initialised
    [kernel_0, bias_0, kernel_1, bias_1, ...] (kernel_i (in, out), bias_i (out,)), which supply the random incoming
    weights of the units outside the PCA path. layer_sizes: [D, h_1..h_m, K, h_m..h_1, D]; output: "linear" or
    "sigmoid"; latent_activation: "linear" (the code is the PCA code c) or "elu" (the code
    holds u + off, in the ELU's linear half, and decoder layer 1 is an identity on it); train_x: (N, D) float training images in [0, 1]; pca: an aefast.data.pca.PCA of train_x (fitted here
    when None); soft_clip: fit_soft_clip's (alpha, beta) for this PCA when already computed. Returns new float32 arrays in the same order."""
    from ..data.pca import fit_pca

    n_layers = len(layer_sizes) - 1
    m = n_layers // 2 - 1                          # hidden layers per side
    D, K, hidden = layer_sizes[0], layer_sizes[m + 1], layer_sizes[1:m + 1]
    if len(weights) != 2 * n_layers or n_layers % 2 or layer_sizes[-1] != D:
        raise ValueError(f"pca_start needs a symmetric autoencoder's weights; got {len(weights)} arrays for layer "
                         f"sizes {layer_sizes}")
    x = np.asarray(train_x, np.float64).reshape(len(train_x), -1)
    if pca is None:
        pca = fit_pca(x)
    p = min(K, *hidden, pca.max_components)
    axes, mu = pca.axes[:p], pca.mean                         # (p, D), (D,)
    c = (x - mu) @ axes.T                                     # (N, p) PCA codes of the training images
    sigma = c.std(axis=0)
    # The path's scale per component. Any positive scale gives the same start (it cancels between the code layer and
    # decoder layer 1), but training does not forgive a tiny one: Adam moves each weight by about the learning rate
    # per step whatever its size, so a code weight of sigma ~ 1e-7 (MNIST's last components) is thrown far from its
    # value and decoder layer 1's 1/sigma ~ 1e7 turns that into NaN within an epoch. Scales below SCALE_FLOOR times
    # the largest are raised to it.
    sigma = np.maximum(sigma, SCALE_FLOOR * float(sigma.max()))
    sigma = np.where(sigma > 1e-12, sigma, 1.0)               # no direction has variance: any scale works
    off = 1.0 - (c / sigma).min(axis=0)                       # (p,) u + off >= 1 on every training image

    w = [np.array(a, dtype=np.float64) for a in weights]
    kernels, biases = w[0::2], w[1::2]
    # path units (0..p-1) read only the path units below them; the units outside the path keep their random
    # incoming weights and feed no path unit (and, in the last hidden layer, not the output either)
    for kernel in kernels[1:]:
        kernel[p:, :p] = 0.0
    kernels[-1][p:, :] = 0.0
    blocks = [(axes.T / sigma, off - (mu @ axes.T) / sigma)]                  # encoder layer 1: u + off
    blocks += [(np.eye(p), np.zeros(p))] * (m - 1)                            # encoder layers 2..m: u + off
    if latent_activation == "linear":
        blocks += [(np.diag(sigma), -sigma * off)]                            # code layer: c
        blocks += [(np.diag(1.0 / sigma), off)]                               # decoder layer 1: u + off
    else:
        blocks += [(np.eye(p), np.zeros(p))] * 2                              # code and decoder layer 1: u + off
    blocks += [(np.eye(p), np.zeros(p))] * (m - 1)                            # decoder layers 2..m: u + off
    for layer, (kernel_block, bias_block) in enumerate(blocks):
        rows = kernels[layer].shape[0] if layer == 0 else p
        kernels[layer][:rows, :p] = kernel_block
        biases[layer][:p] = bias_block

    out_kernel = sigma[:, None] * axes                        # (p, D)
    out_bias = mu - (sigma * off) @ axes
    if output == "sigmoid":
        alpha, beta = soft_clip if soft_clip is not None else fit_pca_soft_clip(pca, x, p)
        out_kernel = out_kernel * alpha
        out_bias = beta - alpha * ((sigma * off) @ axes)
    elif output != "linear":
        raise ValueError(f"output must be linear or sigmoid, got {output!r}")
    kernels[-1][:p, :] = out_kernel
    biases[-1][:] = out_bias
    return [a.astype(np.float32) for pair in zip(kernels, biases) for a in pair]



def fit_pca_soft_clip(pca, train_x: np.ndarray, components: int) -> tuple[np.ndarray, np.ndarray]:
    """fit_soft_clip on the `components`-component PCA reconstructions of up to SIGMOID_FIT_IMAGES training images
    (a seeded sample)."""
    x = np.asarray(train_x, np.float64).reshape(len(train_x), -1)
    pick = np.random.default_rng(0).choice(len(x), size=min(len(x), SIGMOID_FIT_IMAGES), replace=False)
    x = x[pick]
    return fit_soft_clip(pca.reconstruct(x, components) - pca.mean, x, pca.mean)


@dataclass(frozen=True)
class StartPlan:
    """What the run starts from: the output activation it uses and what both PCA starts score on validation."""

    output: str                      # "linear" or "sigmoid": the output activation the model is built with
    pca: object                      # baseline.fit_pca of the training images (code-size axes), or None
    components: int                  # p: the components the PCA path carries
    soft_clip: tuple | None          # (alpha, beta) of the sigmoid start, when fitted
    val_mse: dict                    # {"linear": clipped PCA's validation MSE, "sigmoid": the soft clip's}


def plan_start(config, train_x: np.ndarray, val_x: np.ndarray) -> StartPlan:
    """Resolve output "auto" and prepare the PCA start. output "auto": sigmoid when the sigmoid PCA start (the soft
    clip of PCA) reconstructs the validation images better than the linear one (PCA, served clipped), else linear; a
    sigmoid output is needed for loss "bce". Needs PCA only for init "pca" or output "auto": the run's baseline
    PCA (baseline.fit_pca with the code size and the run's seed), which the end of the run reuses for its figures."""
    from .baseline import fit_pca, served_mse

    sizes = config.layer_sizes
    m = (len(sizes) - 1) // 2 - 1
    output = "sigmoid" if config.output == "auto" and config.loss == "bce" else config.output
    if config.init != "pca" and output != "auto":
        return StartPlan(output, None, 0, None, {})
    pca = fit_pca(train_x, config.latent, seed=config.seed)
    p = min(sizes[m + 1], *sizes[1:m + 1], pca.max_components)
    val = np.asarray(val_x, np.float64).reshape(len(val_x), -1)
    val_y = pca.reconstruct(val, p)
    scores = {"linear": served_mse(val_y, val)}    # PCA as a linear output is served: clipped to [0, 1]
    soft_clip = None
    if output in ("auto", "sigmoid"):
        soft_clip = fit_pca_soft_clip(pca, train_x, p)
        alpha, beta = soft_clip
        scores["sigmoid"] = float(np.mean((_sigmoid((val_y - pca.mean) * alpha + beta) - val) ** 2))
    if output == "auto":
        output = "sigmoid" if scores["sigmoid"] < scores["linear"] else "linear"
    return StartPlan(output, pca, p, soft_clip, scores)
