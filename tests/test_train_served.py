"""A linear-output model is ranked, exported and reported on what aefast serves: its outputs clipped to [0, 1]
(`Engine.reconstruct(clip=True)`, `aefast reconstruct`), the way clipped PCA beside it is. The best epoch is chosen
by the clipped validation MSE, the PCA start's "epoch 0" scores clipped PCA's figure, metrics.json and the model
file hold both the served and the unclipped test MSE, and the final line and the engine's check print the served
one. Checked against PCA computed here with NumPy's SVD."""
import json

import numpy as np
import pytest

from aefast.train import baseline
from aefast.train.baseline import served_mse, standing, summary_line, unclipped_mse, warning

# The PCA start computes PCA in float32, and validation or test images whose coordinates fall below the training
# minimum meet the ELU's curved half: its figure agrees with float64 NumPy PCA to this relative tolerance.
START_RTOL = 1e-3


def svd_pca_reconstruction(train, images, k):
    """(N, D) float64 reconstructions of `images` by k-component PCA of `train`, from NumPy's SVD (independent of
    aefast's eigen-solver)."""
    train = np.asarray(train, np.float64).reshape(len(train), -1)
    images = np.asarray(images, np.float64).reshape(len(images), -1)
    mean = train.mean(axis=0)
    axes = np.linalg.svd(train - mean, full_matrices=False)[2][:k]
    return (images - mean) @ axes.T @ axes + mean


def test_served_mse_clips_to_the_unit_interval_and_the_unclipped_one_does_not():
    images = np.array([[0.0, 1.0, 0.5, 0.2]], np.float32)
    recon = np.array([[-0.5, 1.5, 0.5, 0.4]], np.float32)
    assert served_mse(recon, images) == pytest.approx(0.04 / 4)
    assert unclipped_mse(recon, images) == pytest.approx((0.25 + 0.25 + 0 + 0.04) / 4)
    inside = np.array([[0.1, 0.9, 0.5, 0.2]], np.float32)   # a sigmoid's outputs: both figures are the same
    assert served_mse(inside, images) == unclipped_mse(inside, images)


def test_level_figures_read_as_equal_not_worse():
    figures = {"pca_clipped_test_mse": 4.093e-05, "mean_image_test_mse": 0.0672, "pca_components": 500}
    level = {**figures, "test_mse": 4.0934e-05, "best_epoch": 0}
    assert standing(level["test_mse"], figures["pca_clipped_test_mse"]) == "level"
    assert summary_line(level) == ("test MSE: autoencoder 4.093e-05, PCA 4.093e-05 (clipped), mean image 0.0672 "
                                   "-> the autoencoder equals PCA (within 0.1%)")
    assert warning(level) == (
        "warning: the autoencoder does not beat PCA, it equals it (test MSE 4.093e-05 against 4.093e-05, within "
        "0.1%): no trained epoch improved on the PCA start (best epoch 0), so the model computes PCA; PCA's code "
        "of 500 numbers per image, a linear projection computed in seconds, reconstructs these test images as "
        "well, so the model adds nothing over it yet. Try more epochs (--epochs), more training images or a wider "
        "--hidden; if it stays level, use PCA for this data.")
    # just outside the band on either side: better (no warning) and worse
    better = {**figures, "test_mse": 4.093e-05 * (1 - 2 * baseline.LEVEL_WITHIN)}
    assert summary_line(better).endswith("-> the autoencoder is 1.00x better than PCA") and warning(better) is None
    worse = {**figures, "test_mse": 4.093e-05 * (1 + 2 * baseline.LEVEL_WITHIN)}
    assert summary_line(worse).endswith("-> the autoencoder is 1.00x worse than PCA")
    assert warning(worse).startswith("warning: the autoencoder does not beat PCA (test MSE")


# --- through the trainer ------------------------------------------------------------------------------------------

keras = pytest.importorskip("keras")


class _OverreachFromTheStart(keras.callbacks.Callback):
    """After every epoch's training, the model becomes the start with its output stretched about 0.4 by 1.2:
    out = 0.4 + 1.2 (start - 0.4) (the output layer's kernel and bias changed, every other layer the start's). On
    MNIST this pushes background pixels below 0 and strokes above 1: the clipped validation MSE falls (1.2% with 8
    components, measured) while the unclipped one rises (14%), so the two figures rank this epoch and the start
    oppositely. Records both unclipped validation MSEs to show it."""

    def __init__(self, val_x):
        super().__init__()
        self.val_x, self.start, self.unclipped = val_x, None, {}

    def _unclipped(self):
        return unclipped_mse(self.model.predict(self.val_x, verbose=0), self.val_x)

    def on_train_begin(self, logs=None):
        if self.start is None:
            self.start = [np.array(w) for w in self.model.get_weights()]
            self.unclipped["start"] = self._unclipped()

    def on_train_end(self, logs=None):
        *inner, kernel, bias = self.start
        self.model.set_weights([*inner, 1.2 * kernel, 0.4 + 1.2 * (bias - 0.4)])
        self.unclipped["stretched"] = self._unclipped()


@pytest.mark.train
def test_linear_output_best_epoch_is_chosen_by_the_clipped_validation_mse(tiny_config):
    from aefast.train import train
    from aefast.train.data import load_training_data

    config = tiny_config(output="linear")
    val_x = load_training_data(config).validation
    overreach = _OverreachFromTheStart(val_x)
    result = train(config, verbose=False, callbacks=[overreach])
    # the construction: unclipped, the start is better; a selection on unclipped outputs would keep epoch 0
    assert overreach.unclipped["stretched"] > 1.05 * overreach.unclipped["start"]
    # served (clipped), the stretched epoch 1 is better than the start, and it is the one exported
    import aefast
    from aefast.modelfile import read_model

    start_val = read_model(result.model_path).training["initial_val_mse"]
    assert result.history[0]["val_loss"] < 0.995 * start_val
    metrics = json.loads((result.run_dir / "metrics.json").read_text())
    assert result.best_epoch == 1 and metrics["best_epoch"] == 1
    assert metrics["val_mse"] == result.history[0]["val_loss"]
    served = served_mse(aefast.load(result.model_path).reconstruct(val_x, clip=True), val_x)
    assert served == pytest.approx(metrics["val_mse"], rel=1e-5)


@pytest.mark.train
def test_linear_output_run_reports_served_figures_beside_clipped_pca(tiny_config, capsys):
    """`aefast train --output linear --quiet` on 640 MNIST images: epoch 0 (the PCA start) scores clipped PCA's
    validation MSE; metrics.json and the model file hold the served test MSE and the unclipped one; the final
    line and the engine's check print the served one."""
    import aefast
    from aefast.cli import main
    from aefast.modelfile import read_model
    from aefast.train.data import load_training_data

    config = tiny_config(output="linear")
    argv = ["train", "--hidden", "32", "--latent", "8", "--epochs", "1", "--batch-size", "64", "--lr", "3e-3",
            "--train-limit", "640", "--val-size", "256", "--test-limit", "256", "--no-xla", "--output", "linear",
            "--data-dir", config.data_dir, "--out", config.out, "--name", "lin", "--quiet"]
    assert main(argv) == 0
    lines = capsys.readouterr().out.splitlines()
    run = config.out + "/lin"
    metrics = json.loads(open(run + "/metrics.json").read())
    saved = read_model(run + "/model.safetensors")
    data = load_training_data(tiny_config(output="linear", name="lin"))

    # epoch 0: the PCA start's validation MSE is clipped PCA's
    clipped_pca_val = served_mse(svd_pca_reconstruction(data.train, data.validation, 8), data.validation)
    assert saved.training["initial_val_mse"] == pytest.approx(clipped_pca_val, rel=START_RTOL)
    assert saved.training["pca_start_val_mse"]["linear"] == pytest.approx(clipped_pca_val, rel=1e-9)
    assert metrics["val_mse"] <= saved.training["initial_val_mse"]

    # both test figures, the served one from the engine's clipped output, the unclipped one from its raw output
    engine = aefast.load(run + "/model.safetensors")
    raw = engine.reconstruct(data.test)
    assert metrics["test_mse"] == pytest.approx(served_mse(raw, data.test), rel=1e-5)
    assert metrics["test_mse_unclipped"] == pytest.approx(unclipped_mse(raw, data.test), rel=1e-5)
    assert metrics["test_mse"] < metrics["test_mse_unclipped"]       # this model's outputs leave [0, 1]
    assert {k: saved.metrics[k] for k in ("test_mse", "test_mse_unclipped")} == \
        {k: metrics[k] for k in ("test_mse", "test_mse_unclipped")}

    # the best epoch's line (4 significant digits: figures near 1e-5 and below stay readable), the final line and
    # the engine's check: the served figure
    assert lines[0].startswith(f"best epoch {metrics['best_epoch']}: val MSE {metrics['val_mse']:#.4g}, test PSNR ")
    assert lines[1] == summary_line(metrics) and f"autoencoder {metrics['test_mse']:#.4g}," in lines[1]
    check = next(line for line in lines if line.startswith("aefast engine "))
    assert f"(Keras {metrics['test_mse']:.6f})" in check
    engine_mse = float(check.split("test MSE ")[1].split()[0])
    assert engine_mse == pytest.approx(metrics["test_mse"], abs=2e-6)

    # aefast info: the same served line, and the unclipped figures of both beside each other
    assert main(["info", run + "/model.safetensors"]) == 0
    info = capsys.readouterr().out.splitlines()
    assert f"baseline     {lines[1]}" in info
    assert ("baseline     PCA with 8 components fitted on 640 training images; without clipping "
            f"{metrics['pca_test_mse']:#.4g} (autoencoder {metrics['test_mse_unclipped']:#.4g})") in info
