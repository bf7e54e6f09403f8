"""The baseline in every run: PCA at the code size (plain and clipped) and the mean image, on the run's test images,
checked against a PCA computed here with NumPy's SVD; the final line and the warning, word for word; metrics.json,
the model file's metrics, `aefast info`, `--quiet`; the loss plot's whole-number epochs and its PCA line."""
import json

import numpy as np
import pytest

from aefast.train import baseline
from aefast.train.baseline import baseline_metrics, fit_pca, report_lines, summary_line, warning


def svd_baseline(train, test, k):
    """PCA by NumPy's SVD of the centered training matrix, written out here independently of aefast."""
    train = np.asarray(train, np.float64).reshape(len(train), -1)
    test = np.asarray(test, np.float64).reshape(len(test), -1)
    mean = train.mean(axis=0)
    axes = np.linalg.svd(train - mean, full_matrices=False)[2][:k]
    recon = (test - mean) @ axes.T @ axes + mean
    return {"pca_test_mse": float(np.mean((recon - test) ** 2)),
            "pca_clipped_test_mse": float(np.mean((np.clip(recon, 0, 1) - test) ** 2)),
            "mean_image_test_mse": float(np.mean((test - mean) ** 2))}


def structured_images(n, d, rank, seed=0):
    """(n, d) float32 in [0, 1]: a few strong directions with decaying weights plus noise, some of it clipped."""
    rng = np.random.default_rng(seed)
    directions = rng.standard_normal((rank, d)) / np.sqrt(d)
    weights = rng.standard_normal((n, rank)) * np.linspace(3, 0.3, rank)
    x = 0.5 + 0.25 * weights @ directions + 0.03 * rng.standard_normal((n, d))
    return np.clip(x, 0, 1).astype(np.float32)


@pytest.mark.parametrize("exact_max_dim", [10**6, 0], ids=["eigh", "subspace-iteration"])
def test_baseline_figures_equal_numpy_svd_pca(exact_max_dim, monkeypatch):
    monkeypatch.setattr(baseline, "EXACT_MAX_DIM", exact_max_dim)
    x = structured_images(900, 300, rank=20)
    train, val, test = x[:600], x[600:700], x[700:]
    got = baseline_metrics(train, val, test, latent=12)
    want = svd_baseline(train, test, 12)
    # the iteration converges to rounding on this spectrum; the tolerance leaves it 1000x room
    rel = 1e-10 if exact_max_dim else 1e-7
    for key, value in want.items():
        assert got[key] == pytest.approx(value, rel=rel), key
    assert got["pca_clipped_val_mse"] == pytest.approx(svd_baseline(train, val, 12)["pca_clipped_test_mse"], rel=rel)
    assert got["pca_clipped_test_mse"] < got["pca_test_mse"]   # this data has pixels clipped at 0 and 1
    assert (got["pca_components"], got["pca_fit_images"]) == (12, 600)


def test_flat_spectrum_iteration_reaches_the_optimum_on_the_training_images(monkeypatch):
    """Pure noise images (N, H, W): no gap between eigenvalues, so the iteration's 10 axes are a slightly different
    mix of near-equal directions than the SVD's. What PCA minimises, the training images' reconstruction error,
    still matches to 1e-6; the test figure, any such mix being as good, to 1e-4."""
    rng = np.random.default_rng(1)
    x = (rng.integers(0, 256, (500, 12, 12)) / 255).astype(np.float32)
    pca = fit_pca(x[:400], 10, exact_max_dim=0)
    assert pca.max_components == 10
    train_mse = float(np.mean((pca.reconstruct(x[:400], 10) - x[:400].reshape(400, -1)) ** 2))
    assert train_mse == pytest.approx(svd_baseline(x[:400], x[:400], 10)["pca_test_mse"], rel=1e-6)
    monkeypatch.setattr(baseline, "EXACT_MAX_DIM", 0)
    got = baseline_metrics(x[:400], x[400:450], x[450:], latent=10)
    assert got["pca_test_mse"] == pytest.approx(svd_baseline(x[:400], x[450:], 10)["pca_test_mse"], rel=1e-4)


def test_components_are_capped_at_what_the_training_images_span():
    x = structured_images(30, 50, rank=5)
    got = baseline_metrics(x[:6], x[6:10], x[10:], latent=20)
    assert got["pca_components"] == 5       # 6 centered images span at most 5 directions
    assert got["pca_test_mse"] == pytest.approx(svd_baseline(x[:6], x[10:], 5)["pca_test_mse"], rel=1e-9)


def test_many_training_images_are_subsampled(monkeypatch):
    monkeypatch.setattr(baseline, "MAX_FIT_ROWS", 300)
    x = structured_images(1000, 40, rank=6)
    got = baseline_metrics(x[:900], x[900:950], x[950:], latent=4, seed=3)
    assert got["pca_fit_images"] == 300
    # the PCA of a 300-image subsample is close to the full one, and fitted on exactly that subsample
    rows = np.sort(np.random.default_rng(3).choice(900, 300, replace=False))
    assert got["pca_test_mse"] == pytest.approx(svd_baseline(x[:900][rows], x[950:], 4)["pca_test_mse"], rel=1e-9)
    assert got["mean_image_test_mse"] == pytest.approx(svd_baseline(x[:900], x[950:], 4)["mean_image_test_mse"])


def test_fit_refuses_a_single_image():
    with pytest.raises(ValueError, match="PCA needs at least 2 training images, got 1"):
        fit_pca(np.zeros((1, 4)), 2)


FIGURES = {"pca_test_mse": 0.002894, "pca_clipped_test_mse": 0.00286, "mean_image_test_mse": 0.0726,
           "pca_components": 64}


def test_final_line_when_the_autoencoder_loses_to_pca():
    metrics = {"test_mse": 0.004679, **FIGURES}
    assert report_lines(metrics) == [
        "test MSE: autoencoder 0.004679, PCA 0.002860 (clipped), mean image 0.0726 -> the autoencoder is 1.64x "
        "worse than PCA",
        "warning: the autoencoder does not beat PCA (test MSE 0.004679 against 0.002860): PCA's code of 64 numbers "
        "per image, a linear projection computed in seconds, reconstructs these test images better than this "
        "model's code of the same size, so the model adds nothing over it yet. Try more epochs (--epochs), more "
        "training images or a wider --hidden; if it still loses, use PCA for this data."]


def test_final_line_when_the_autoencoder_beats_pca():
    assert report_lines({"test_mse": 0.002383, **FIGURES}) == [
        "test MSE: autoencoder 0.002383, PCA 0.002860 (clipped), mean image 0.0726 -> the autoencoder is 1.20x "
        "better than PCA"]


def test_final_line_for_a_tie_small_figures_an_exact_pca_and_a_model_worse_than_the_mean():
    tie = {"test_mse": 0.00286, **FIGURES}
    assert summary_line(tie).endswith("-> the autoencoder equals PCA (within 0.1%)")
    assert warning(tie).startswith("warning: the autoencoder does not beat PCA, it equals it (test MSE 0.002860 "
                                   "against 0.002860, within 0.1%): PCA's code of 64 numbers")
    small = {"test_mse": 5.24e-05, "pca_clipped_test_mse": 4.09e-05, "mean_image_test_mse": 0.0672,
             "pca_components": 500}
    assert summary_line(small) == ("test MSE: autoencoder 5.240e-05, PCA 4.090e-05 (clipped), mean image 0.0672 "
                                   "-> the autoencoder is 1.28x worse than PCA")
    exact = {"test_mse": 5.3e-06, "pca_clipped_test_mse": 1e-31, "mean_image_test_mse": 0.0672,
             "pca_components": 784}
    assert summary_line(exact).endswith("-> PCA reconstructs these images exactly at this code size")
    assert warning(exact).startswith("warning: the autoencoder does not beat PCA (test MSE 5.300e-06 against "
                                     "1.000e-31)")
    assert warning({"test_mse": 0.08, **FIGURES}) == (
        "warning: the autoencoder does not even beat the mean image (test MSE 0.08000 against 0.0726): showing "
        "every input the average training image reconstructs them better, so it has not learned these images. "
        "Try more epochs (--epochs), another --lr or more training images; PCA's code of 64 numbers reaches "
        "0.002860.")
    assert report_lines({"test_mse": 0.1}) == []    # nothing to compare with: no line


def test_loss_plot_has_whole_number_epochs_and_the_pca_line():
    pytest.importorskip("matplotlib")
    from aefast.train.artifacts import loss_figure

    history = [{"epoch": e, "train_loss": 0.05 / e, "val_loss": 0.06 / e} for e in (1, 2, 3)]
    fig = loss_figure(history, best_epoch=3, pca_val_mse=0.0123, pca_components=8)
    fig.canvas.draw()
    ax = fig.axes[0]
    lo, hi = ax.get_xlim()
    ticks = [t for t in ax.get_xticks() if lo <= t <= hi]
    assert ticks and all(float(t).is_integer() for t in ticks), ticks
    assert {1, 2, 3} <= set(ticks)
    labels = [text.get_text() for text in ax.get_legend().get_texts()]
    assert "PCA, 8 components (clipped), validation: 0.01230" in labels
    line = next(line for line in ax.get_lines() if line.get_label().startswith("PCA"))
    assert list(line.get_ydata()) == [0.0123, 0.0123]
    # PCA exact (MSE 0) cannot be drawn on the log axis: no line rather than a broken axis
    fig = loss_figure(history, best_epoch=3, pca_val_mse=0.0, pca_components=784)
    assert not any(line.get_label().startswith("PCA") for line in fig.axes[0].get_lines())


def test_info_on_a_file_without_baseline_says_so(capsys):
    from aefast.cli import main

    assert main(["info"]) == 0   # the shipped model was trained before runs stored a baseline
    assert ("baseline     no baseline stored (no PCA figures in the file's metrics: trained before aefast recorded "
            "them, or written by another tool)") in capsys.readouterr().out.splitlines()
    assert main(["info", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["baseline"] is None


# --- whole runs ---------------------------------------------------------------------------------------------------

def _run_data(run_dir):
    from aefast.train.config import TrainConfig
    from aefast.train.data import load_training_data

    config = TrainConfig.from_dict(json.loads((run_dir / "config.json").read_text())["config"])
    return config, load_training_data(config)


def _expected_line(test_mse, want):
    """The final line, built here from the autoencoder's figure and an independently computed PCA."""
    ae, pca = test_mse, want["pca_clipped_test_mse"]
    verdict = (f"the autoencoder is {pca / ae:.2f}x better than PCA" if ae < pca
               else f"the autoencoder is {ae / pca:.2f}x worse than PCA")
    return (f"test MSE: autoencoder {ae:#.4g}, PCA {pca:#.4g} (clipped), mean image "
            f"{want['mean_image_test_mse']:#.3g} -> {verdict}")


@pytest.mark.train
def test_quiet_mnist_run_prints_the_final_line_and_stores_the_baseline(mnist_dir, tmp_path, capsys):
    pytest.importorskip("keras")
    from aefast.cli import main
    from aefast.modelfile import read_model

    argv = ["train", "--hidden", "16", "--latent", "4", "--epochs", "1", "--batch-size", "64", "--train-limit",
            "320", "--val-size", "128", "--test-limit", "128", "--no-xla", "--quiet", "--data-dir", str(mnist_dir),
            "--out", str(tmp_path), "--name", "q"]
    assert main(argv) == 0
    lines = capsys.readouterr().out.splitlines()
    run = tmp_path / "q"
    metrics = json.loads((run / "metrics.json").read_text())
    config, data = _run_data(run)
    want = svd_baseline(data.train, data.test, 4)
    for key, value in want.items():
        assert metrics[key] == pytest.approx(value, rel=1e-9), key
    assert (metrics["pca_components"], metrics["pca_fit_images"], metrics["n_test"]) == (4, 320, 128)
    # the model file holds the same figures
    stored = read_model(run / "model.safetensors").metrics
    assert {k: stored[k] for k in baseline.METRIC_KEYS} == {k: metrics[k] for k in baseline.METRIC_KEYS}
    assert stored["test_mse"] == metrics["test_mse"]
    # --quiet drops the per-epoch lines only: the best epoch, the final line (and the warning when PCA wins), the
    # engine's check, then the model's path
    final = _expected_line(metrics["test_mse"], want)
    assert lines[0].startswith(f"best epoch {metrics['best_epoch']}: val MSE ") and lines[1] == final
    assert lines[-2].startswith("aefast engine ") and lines[-1] == str(run / "model.safetensors")
    assert lines[2:-2] == ([warning(metrics)] if metrics["test_mse"] >= want["pca_clipped_test_mse"] else [])
    assert not any(line.startswith(("epoch ", "training ")) for line in lines)

    # aefast info shows the same line
    assert main(["info", str(run / "model.safetensors")]) == 0
    info = capsys.readouterr().out.splitlines()
    assert f"baseline     {final}" in info
    assert ("baseline     PCA with 4 components fitted on 320 training images; without clipping "
            f"{metrics['pca_test_mse']:#.4g}") in info
    assert main(["info", str(run / "model.safetensors"), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["baseline"] == final


def _edge_images(path, n=1200, seed=0):
    """8x8 images of a soft vertical edge at a random position: a one-number family that no single linear
    direction captures (PCA with 1 component: test MSE 0.039) and a small autoencoder learns in seconds."""
    rng = np.random.default_rng(seed)
    position = rng.uniform(-1, 9, n)
    row = 1 / (1 + np.exp(-(np.arange(8)[None, :] - position[:, None]) * 3))
    np.save(path, np.round(np.repeat(row[:, None, :], 8, axis=1) * 255).astype(np.uint8))
    return path


@pytest.mark.train
def test_run_that_beats_pca_says_so_without_a_warning(tmp_path, capsys):
    """64-16-1-16-64 on the edge images, 6 epochs: test MSE 0.0066 against clipped PCA's 0.039 (5.9x better,
    measured once before writing this test); the assertions need it to beat PCA at all."""
    pytest.importorskip("keras")
    from aefast.cli import main

    data = _edge_images(tmp_path / "edge.npy")
    assert main(["train", "--data", str(data), "--hidden", "16", "--latent", "1", "--epochs", "6", "--batch-size",
                 "32", "--lr", "1e-2", "--no-xla", "--out", str(tmp_path), "--name", "e"]) == 0
    lines = capsys.readouterr().out.splitlines()
    run = tmp_path / "e"
    metrics = json.loads((run / "metrics.json").read_text())
    _, split = _run_data(run)
    want = svd_baseline(split.train, split.test, 1)
    assert metrics["test_mse"] < want["pca_clipped_test_mse"]
    final = _expected_line(metrics["test_mse"], want)
    assert "better than PCA" in final
    # without --quiet: the epoch lines, the best epoch, the final line, the engine's check, the path
    at = lines.index(final)
    assert lines[at - 1].startswith("best epoch ") and lines[at + 1].startswith("aefast engine ")
    assert not any(line.startswith("warning:") for line in lines)
    # the PCA start is "epoch 0 (PCA start, ...)", then one line per trained epoch
    assert [line.split()[1] for line in lines if line.startswith("epoch ")] == ["0", *(f"{e}/6" for e in range(1, 7))]
