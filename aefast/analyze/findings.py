"""Written findings computed from the study's numbers: every sentence is chosen and filled in by a comparison.

Nothing here is a typed conclusion: which configurations win, by how much, and which reason applies all follow from
the results passed in.
"""
from __future__ import annotations

from ..train.baseline import EXACT_BELOW, LEVEL_WITHIN, standing
from .results import ConfigResult

# A PCA error below this is rounding noise: PCA with that many components reconstructs exactly (the trainer's rule).
EXACT_MSE = EXACT_BELOW


def _fmt_latents(rs: list[ConfigResult]) -> str:
    return ", ".join(_name(r) for r in sorted(rs, key=lambda r: -r.latent))


def _name(r: ConfigResult) -> str:
    return f"{r.latent}" if r.hidden == [1000] else f"{r.latent} (hidden {'-'.join(map(str, r.hidden))})"


def _factor_range(values: list[float]) -> str:
    lo, hi = min(values), max(values)
    return f"{lo:.2f}x" if abs(hi - lo) < 0.005 else f"{lo:.2f}x to {hi:.2f}x"


def _split(results: list[ConfigResult], reference) -> tuple[list[ConfigResult], list[ConfigResult]]:
    """(results whose test MSE is below reference(r), the others)."""
    below = [r for r in results if r.test_mse < reference(r)]
    return below, [r for r in results if r not in below]


def versus_pca(results: list[ConfigResult], test_variance: float | None) -> list[str]:
    """Where the autoencoder beats the stronger PCA baseline (clipped), where it equals it and where not, and the
    reason that applies. Both figures are clipped to [0, 1] (test_mse as served); the trainer's rule decides
    (aefast.train.baseline.standing: level within LEVEL_WITHIN)."""
    where = {r.name: standing(r.test_mse, r.pca_mse_clipped) for r in results}
    wins = [r for r in results if where[r.name] == "better"
            or (where[r.name] == "exact" and r.test_mse < r.pca_mse_clipped)]
    level = [r for r in results if where[r.name] == "level"]
    losses = [r for r in results if r not in wins and r not in level]
    out = []
    if wins:
        out.append(f"The autoencoder beats PCA (clipped to [0, 1]) at latent size {_fmt_latents(wins)}: its test "
                   f"MSE is {_factor_range([r.pca_mse_clipped / r.test_mse for r in wins])} lower.")
    if level:
        start = (" (best epoch 0: no trained epoch improved on the PCA start, so the model computes PCA)"
                 if all(r.train_metrics.get("best_epoch") == 0 for r in level) else "")
        out.append(f"The autoencoder equals PCA (clipped to [0, 1]) at latent size {_fmt_latents(level)}: its test "
                   f"MSE is within {LEVEL_WITHIN:.1%} of PCA's{start}.")
    if losses:
        exact = [r for r in losses if r.pca_mse_clipped < EXACT_MSE]
        ratios = [r.test_mse / r.pca_mse_clipped for r in losses if r not in exact]
        text = f"PCA is better at latent size {_fmt_latents(losses)}"
        if ratios:
            text += f" (the autoencoder's MSE is {_factor_range(ratios)} PCA's"
            text += "; PCA is exact at " + _fmt_latents(exact) + ")" if exact else ")"
        elif exact:
            text += " (PCA with as many components as pixels reconstructs exactly)"
        out.append(text + ".")
    if wins and (losses or level):
        small_win = max(r.latent for r in wins) < min(r.latent for r in losses + level)
        if small_win:
            out.append("The crossover follows code size: with few values per image a linear code must drop most "
                       "directions of variation, while the nonlinear decoder can map a small code onto curved digit "
                       "shapes; with many values PCA keeps almost all the variance and is the optimal linear code, "
                       "so the autoencoder's remaining error is its training error, not its code size.")
        else:
            out.append("The wins and losses do not split by code size, so at this training budget the difference "
                       "is set by how far each autoencoder trained rather than by its code size.")
    if test_variance and test_variance > 0:
        kept = ", ".join(f"{r.latent}: {100 * (1 - r.pca_mse / test_variance):.1f}%"
                         for r in sorted({r.latent: r for r in results}.values(), key=lambda r: -r.latent))
        out.append(f"Share of the test images' variance that PCA keeps per latent size: {kept}.")
    # Sizes where PCA is exact would make its gain infinite: compare over the sizes where both err.
    ae = sorted((r for r in results if r.hidden == [1000] and r.pca_mse_clipped >= EXACT_MSE), key=lambda r: r.latent)
    if len(ae) >= 2:
        lo, hi = ae[0], ae[-1]
        ae_gain = lo.test_mse / hi.test_mse
        pca_gain = lo.pca_mse_clipped / hi.pca_mse_clipped
        out.append(f"From latent {lo.latent} to {hi.latent} (hidden 1000) the autoencoder's MSE falls "
                   f"{ae_gain:.1f}x, PCA's {pca_gain:.3g}x: " +
                   ("PCA profits more from extra code size." if pca_gain > ae_gain
                    else "the autoencoder profits more from extra code size."))
    return out


def versus_tutorial(results: list[ConfigResult]) -> list[str]:
    rs = [r for r in results if r.tutorial_mse is not None]
    if not rs:
        return []
    better, worse = _split(rs, lambda r: r.tutorial_mse)
    out = []
    if better:
        out.append(f"Against the tutorial's mean validation loss, this study's autoencoder is lower at latent "
                   f"{_fmt_latents(better)} ({_factor_range([r.tutorial_mse / r.test_mse for r in better])} lower).")
    if worse:
        out.append(f"This study's autoencoder is higher than the tutorial at latent {_fmt_latents(worse)} "
                   f"({_factor_range([r.test_mse / r.tutorial_mse for r in worse])} the tutorial's figure), "
                   f"after {_factor_range_int([r.epochs for r in worse])} epochs here.")
    pca_below = [r for r in rs if r.pca_mse_clipped < r.tutorial_mse]
    if pca_below:
        out.append(f"Clipped PCA alone is below the tutorial's figure at latent {_fmt_latents(pca_below)}.")
    return out


def _factor_range_int(values: list[int]) -> str:
    return str(min(values)) if min(values) == max(values) else f"{min(values)}-{max(values)}"


def versus_width(results: list[ConfigResult]) -> list[str]:
    """Same latent size, different hidden layout: what the extra width or depth buys and costs."""
    out = []
    by_latent: dict[int, list[ConfigResult]] = {}
    for r in results:
        by_latent.setdefault(r.latent, []).append(r)
    for latent, rs in sorted(by_latent.items(), reverse=True):
        base = next((r for r in rs if r.hidden == [1000]), None)
        for r in rs:
            if base is None or r is base:
                continue
            change = base.test_mse / r.test_mse
            cost = r.train_seconds / base.train_seconds if base.train_seconds > 0 else float("nan")
            verdict = f"{change:.2f}x lower" if change > 1 else f"{1 / change:.2f}x higher"
            out.append(f"At latent {latent}, hidden {'-'.join(map(str, r.hidden))} gives a test MSE {verdict} than "
                       f"hidden 1000, for {cost:.1f}x the training time ({r.epochs} vs {base.epochs} epochs).")
    return out


def generalisation(results: list[ConfigResult]) -> list[str]:
    """The largest gap between final validation and training loss: where a model fits its training set best."""
    gaps = []
    for r in results:
        last = r.history[-1] if r.history else {}
        if last.get("train_loss", 0) > 0 and "val_loss" in last:
            gaps.append((last["val_loss"] / last["train_loss"], r))
    if not gaps:
        return []
    ratio, r = max(gaps, key=lambda g: g[0])
    return [f"The widest final gap between validation and training loss is at latent {_name(r)}: validation "
            f"loss is {ratio:.2f}x training loss" + (" (a sign of overfitting)." if ratio > 1.2 else
                                                     "; no configuration overfits noticeably.")]


def findings(results: list[ConfigResult], test_variance: float | None = None) -> list[str]:
    if not results:
        return ["No configuration has finished yet."]
    out = versus_pca(results, test_variance) + versus_tutorial(results) + versus_width(results)
    out += generalisation(results)
    fast = max(results, key=lambda r: r.compress_images_per_s)
    slow = min(results, key=lambda r: r.compress_images_per_s)
    out.append(f"Engine compress throughput at batch 256 ranges from {slow.compress_images_per_s:,.0f} images/s "
               f"(latent {_name(slow)}) to {fast.compress_images_per_s:,.0f} images/s (latent {_name(fast)}).")
    return out
