"""The trainer: model builder, a short run, the run directory, best-epoch export, NaN, Ctrl-C and --resume.

Runs are tiny (hundreds of images, hidden width 32) so the file stays well under two minutes on 2 cores.
"""
import csv
import json
import math
import re

import numpy as np
import pytest

keras = pytest.importorskip("keras")

from aefast.keras_io import load_keras  # noqa: E402
from aefast.modelfile import read_model  # noqa: E402
from aefast.train import ConfigError, TrainConfig, resume, train  # noqa: E402
from aefast.train.checkpoint import CHECKPOINT_NAME, load_checkpoint  # noqa: E402
from aefast.train.cli import main  # noqa: E402
from aefast.train.loop import TrainingError, epoch_order  # noqa: E402
from aefast.train.model import Device, build_autoencoder, resolve_precision  # noqa: E402
from aefast.engine.reference import reference_forward  # noqa: E402

pytestmark = pytest.mark.train

RUN_FILES = {"config.json", "model.safetensors", "history.csv", "metrics.json", "loss.png", "reconstructions.png",
             "checkpoint.npz"}


class FitHook(keras.callbacks.Callback):
    """Runs `action(model, fit_index)` at a given point of the fit_index-th fit (the loop fits once per epoch)."""

    def __init__(self, when, action):
        super().__init__()
        self.when, self.action, self.fits = when, action, 0

    def on_train_begin(self, logs=None):
        if self.when == "begin":
            self.action(self.model, self.fits)

    def on_train_end(self, logs=None):
        if self.when == "end":
            self.action(self.model, self.fits)
        self.fits += 1


def _dense(model):
    return [layer for layer in model.layers if isinstance(layer, keras.layers.Dense)]


def reference_mse(weights, x):
    """The reconstruction MSE of saved weights on x by aefast's float64 NumPy reference (independent of Keras)."""
    return float(np.mean((reference_forward(weights, x) - x) ** 2))


def test_builder_mirrors_hidden_layers():
    config = TrainConfig(hidden=(1000, 500, 250), latent=30, output="sigmoid", l2=1e-4)
    model = build_autoencoder(config)
    dense = _dense(model)
    assert [d.units for d in dense] == [1000, 500, 250, 30, 250, 500, 1000, 784]
    assert config.layer_sizes == [784, 1000, 500, 250, 30, 250, 500, 1000, 784]
    assert [d.get_config()["activation"] for d in dense] == ["elu"] * 3 + ["linear"] + ["elu"] * 3 + ["sigmoid"]
    assert dense[3].name == "latent" and dense[-1].name == "output"
    assert all(d.kernel_regularizer is not None for d in dense)
    assert model.output_shape == (None, 784)


def test_builder_keeps_output_float32_under_mixed_precision():
    model = build_autoencoder(TrainConfig(output="sigmoid"), "mixed_float16")
    dense = _dense(model)
    assert dense[0].compute_dtype == "float16" and dense[-1].compute_dtype == "float32"
    assert dense[-1].get_config()["activation"] == "sigmoid"
    assert dense[0].kernel_regularizer is None


def test_auto_precision_picks_fp16_only_on_a_capable_gpu():
    assert resolve_precision("auto", Device("cpu", "cpu", None)) == "float32"
    assert resolve_precision("auto", Device("gpu", "old", (6, 1))) == "float32"
    assert resolve_precision("auto", Device("gpu", "a100", (8, 0))) == "mixed_float16"
    assert resolve_precision("mixed_bfloat16", Device("cpu", "cpu", None)) == "mixed_bfloat16"


def test_epoch_order_gives_whole_batches_reproducibly():
    a = epoch_order(1000, 64, seed=3, epoch=0)
    assert len(a) == 960 and len(set(a.tolist())) == 960
    np.testing.assert_array_equal(a, epoch_order(1000, 64, seed=3, epoch=0))
    assert not np.array_equal(a, epoch_order(1000, 64, seed=3, epoch=1))


@pytest.mark.parametrize("field, value, message", [
    ("latent", 0, "latent must be a positive integer"),
    ("epochs", -1, "epochs must be a positive integer"),
    ("precision", "fp8", "precision must be one of"),
    ("hidden", (), "hidden must list at least one"),
    ("lr", float("nan"), "lr must be a positive number"),
    ("data_dir", "/no/such/dir", "is not a directory"),
])
def test_bad_config_names_the_field(field, value, message):
    with pytest.raises(ConfigError, match=message):
        TrainConfig(**{field: value}).validate()


def test_short_run_lowers_loss_and_leaves_every_file(tiny_config, mnist_dir):
    result = train(tiny_config(epochs=3, xla=True), verbose=False)
    assert {p.name for p in result.run_dir.iterdir()} == RUN_FILES
    assert [row["epoch"] for row in result.history] == [1, 2, 3]
    assert result.history[-1]["val_loss"] < result.history[0]["val_loss"]
    assert result.stopped == "completed" and result.best_epoch == 3

    with open(result.run_dir / "history.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == ["epoch", "train_loss", "val_loss", "lr", "seconds"]
    assert [float(r["val_loss"]) for r in rows] == [r["val_loss"] for r in result.history]
    lrs = [float(r["lr"]) for r in rows]
    assert lrs[0] == pytest.approx(3e-3) and lrs[0] > lrs[1] > lrs[2]  # cosine decay

    metrics = json.loads((result.run_dir / "metrics.json").read_text())
    assert metrics == result.metrics
    assert metrics["compression_ratio"] == 98.0 and metrics["xla"] is True and metrics["precision"] == "float32"
    assert metrics["test_psnr_db"] == pytest.approx(10 * math.log10(1 / metrics["test_mse"]))

    saved = read_model(result.model_path)
    assert saved.layer_sizes == [784, 32, 8, 32, 784] and saved.encoder_layers == 2
    assert saved.metrics["test_mse"] == metrics["test_mse"]
    assert saved.training["latent"] == 8 and saved.training["best_epoch"] == 3
    assert set(saved.data_sha256) >= {"train_images", "test_images"}
    # The reported test MSE is the exported model's, recomputed here independently of Keras.
    from aefast.data import load_mnist
    test_x = load_mnist(mnist_dir).test.x[:256]
    assert reference_mse(saved, test_x) == pytest.approx(metrics["test_mse"], rel=1e-4)
    for name in ("loss.png", "reconstructions.png"):
        assert (result.run_dir / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_the_best_epoch_is_exported_not_the_last(tiny_config):
    def wreck(model, fit_index):  # after the last epoch's training, before its validation
        if fit_index == 2:
            for layer in _dense(model):
                layer.set_weights([w + 0.5 for w in layer.get_weights()])

    result = train(tiny_config(epochs=3), verbose=False, callbacks=[FitHook("end", wreck)])
    val = [row["val_loss"] for row in result.history]
    assert val[2] > val[1] and result.best_epoch == 2
    saved = read_model(result.model_path)
    best = load_checkpoint(result.run_dir / CHECKPOINT_NAME).best
    np.testing.assert_array_equal(saved.kernels[0], best[0])
    assert saved.metrics["val_mse"] == val[1]
    exported = load_keras(saved)
    np.testing.assert_array_equal(_dense(exported)[0].get_weights()[0], best[0])


def test_nan_loss_stops_and_keeps_the_best_epoch(tiny_config):
    def poison(model, fit_index):
        if fit_index == 1:
            layer = _dense(model)[0]
            layer.set_weights([np.full_like(w, np.nan) for w in layer.get_weights()])

    result = train(tiny_config(epochs=4), verbose=False, callbacks=[FitHook("begin", poison)])
    assert result.stopped == "nan" and result.best_epoch == 1 and len(result.history) == 2
    assert math.isnan(result.history[1]["train_loss"])
    saved = read_model(result.model_path)  # validates: all weights finite
    assert saved.metrics["val_mse"] == result.history[0]["val_loss"]
    assert json.loads((result.run_dir / "metrics.json").read_text())["stopped"] == "nan"


def test_nan_from_the_first_epoch_is_a_clear_error(tiny_config):
    def poison(model, fit_index):
        layer = _dense(model)[0]
        layer.set_weights([np.full_like(w, np.nan) for w in layer.get_weights()])

    # init random: no starting model to fall back on (init pca exports its start: tests/test_train_init.py)
    with pytest.raises(TrainingError, match="no epoch produced a finite loss"):
        train(tiny_config(init="random"), verbose=False, callbacks=[FitHook("begin", poison)])


def test_interrupt_leaves_a_consistent_run_and_resume_matches_an_uninterrupted_run(tiny_config):
    def interrupt(model, fit_index):
        if fit_index == 1:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train(tiny_config(epochs=3, name="cut"), verbose=False, callbacks=[FitHook("begin", interrupt)])
    cut = tiny_config(name="cut")
    run_dir = tiny_config().out + "/cut"
    metrics = json.loads(open(run_dir + "/metrics.json").read())
    assert metrics["stopped"] == "interrupted" and metrics["epochs_run"] == 1
    assert len(open(run_dir + "/history.csv").read().splitlines()) == 2  # header + epoch 1
    assert read_model(run_dir + "/model.safetensors").training["best_epoch"] == 1
    assert cut.name == "cut"

    resumed = resume(run_dir, verbose=False)
    whole = train(tiny_config(epochs=3, name="whole"), verbose=False)
    assert [r["epoch"] for r in resumed.history] == [1, 2, 3]
    for a, b in zip(resumed.history, whole.history):
        assert a["train_loss"] == pytest.approx(b["train_loss"], rel=1e-4)
        assert a["val_loss"] == pytest.approx(b["val_loss"], rel=1e-4)
        assert a["lr"] == pytest.approx(b["lr"], rel=1e-6)
    for ka, kb in zip(read_model(resumed.model_path).kernels, read_model(whole.model_path).kernels):
        np.testing.assert_allclose(ka, kb, atol=1e-4)


@pytest.mark.parametrize("precision", ["mixed_float16", "mixed_bfloat16"])
def test_mixed_precision_run_exports_float32_master_weights(tiny_config, precision):
    result = train(tiny_config(epochs=1, precision=precision), verbose=False)
    assert result.metrics["precision"] == precision
    assert result.history[0]["lr"] == pytest.approx(3e-3)
    saved = read_model(result.model_path)
    assert saved.kernels[0].dtype == np.float32 and math.isfinite(result.metrics["test_mse"])


@pytest.mark.parametrize("argv, message", [
    (["--latent", "0"], "latent must be a positive integer"),
    (["--epochs", "-3"], "epochs must be a positive integer"),
    (["--precision", "fp8"], "invalid choice"),
    (["--hidden", "100,abc"], "comma-separated integers"),
    (["--data-dir", "/no/such/dir"], "is not a directory"),
    (["--resume", "/tmp", "--epochs", "3"], "drop epochs"),
])
def test_cli_bad_arguments_exit_nonzero_with_a_message(argv, message, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err


def test_cli_trains_and_refuses_to_overwrite_a_run(mnist_dir, tmp_path, capsys):
    argv = ["--hidden", "16", "--latent", "4", "--epochs", "1", "--batch-size", "64", "--train-limit", "256",
            "--val-size", "128", "--test-limit", "128", "--no-xla", "--quiet", "--data-dir", str(mnist_dir),
            "--out", str(tmp_path), "--name", "cli"]
    assert main(argv) == 0
    # --quiet drops the per-epoch lines only: best epoch, the final test-MSE line (a warning), engine check, path
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("best epoch 1: ") and lines[1].startswith("test MSE: autoencoder ")
    assert lines[-2].startswith("aefast engine ") and lines[-1] == str(tmp_path / "cli" / "model.safetensors")
    assert not any(line.startswith(("epoch ", "training ")) for line in lines)
    assert read_model(tmp_path / "cli" / "model.safetensors").training["extra"]["command"].startswith(
        "python -m aefast.train")
    with pytest.raises(SystemExit):
        main(argv)
    assert "already exists" in capsys.readouterr().err


def test_resume_refuses_a_directory_that_is_not_a_run(tmp_path):
    with pytest.raises(ConfigError, match="not an aefast run directory"):
        resume(tmp_path, verbose=False)


@pytest.mark.slow
def test_quick_preset_reaches_its_promise(mnist_dir, tmp_path):
    """--quick (default model, 5000 images, 5 epochs): test MSE < 0.02 (its wall time is measured in docs)."""
    result = train(TrainConfig(data_dir=str(mnist_dir), out=str(tmp_path), name="quick").quick(), verbose=False)
    assert result.metrics["test_mse"] < 0.02


def test_ship_stores_float16_and_measures_both_precisions(tiny_config, mnist_dir, tmp_path):
    from aefast.train.ship import ship

    run = train(tiny_config(epochs=1, name="to_ship"), verbose=False)
    measured = ship(run.run_dir, tmp_path / "shipped.safetensors", str(mnist_dir))
    shipped = read_model(tmp_path / "shipped.safetensors")
    assert all(k.dtype == np.float16 for k in shipped.kernels)
    assert shipped.metrics["test_mse_float16_storage"] == measured["test_mse_float16_storage"]
    assert measured["n_test"] == 10000
    assert measured["test_mse_float16_storage"] == pytest.approx(measured["test_mse_float32"], rel=0.01)
    from aefast.data import load_mnist
    assert reference_mse(shipped, load_mnist(mnist_dir).test.x) == pytest.approx(
        measured["test_mse_float16_storage"], rel=1e-4)


def test_cli_serves_the_exported_model_from_the_engine(mnist_dir, tmp_path, capsys):
    """Without --quiet the CLI ends by running the file through aefast's engine: its MSE must equal Keras's."""
    argv = ["--hidden", "16", "--latent", "4", "--epochs", "1", "--batch-size", "64", "--train-limit", "256",
            "--val-size", "128", "--test-limit", "128", "--no-xla", "--data-dir", str(mnist_dir),
            "--out", str(tmp_path), "--name", "engine"]
    assert main(argv) == 0
    line = next(l for l in capsys.readouterr().out.splitlines() if l.startswith("aefast engine"))
    engine_mse, keras_mse = map(float, re.search(r"test MSE ([0-9.]+) \(Keras ([0-9.]+)\)", line).groups())
    assert "reconstructed 128 images" in line
    assert engine_mse == pytest.approx(keras_mse, rel=1e-4, abs=1e-7)
