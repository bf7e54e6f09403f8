"""The recipe knobs (docs/analysis.md, "Recipe search"): warm-up, AdamW weight decay, the BCE loss; the legacy reading of old run folders;
and the recipe runner's bookkeeping (aefast.analyze.recipes)."""
import json
import math

import numpy as np
import pytest

keras = pytest.importorskip("keras")

from aefast.analyze import recipes  # noqa: E402
from aefast.engine.reference import reference_forward  # noqa: E402
from aefast.modelfile import read_model  # noqa: E402
from aefast.train import ConfigError, TrainConfig, train  # noqa: E402
from aefast.train.cli import main  # noqa: E402
from aefast.train.config import LEGACY_DEFAULTS  # noqa: E402
from aefast.train.data import load_training_data  # noqa: E402
from aefast.train.model import learning_rate, make_optimizer  # noqa: E402

pytestmark = pytest.mark.train


@pytest.mark.parametrize("field, value, message", [
    ("warmup", 40, "0 <= warmup < epochs"),
    ("warmup", -1, "0 <= warmup < epochs"),
    ("warmup", 1.5, "warmup must be an integer"),
    ("weight_decay", -1e-4, "weight_decay must be a number in"),
    ("weight_decay", float("inf"), "weight_decay must be a number in"),
    ("loss", "l1", "loss must be one of"),
    ("latent_activation", "relu", "latent_activation must be one of"),
    ("output_bias_init", "random", "output_bias_init must be one of"),
])
def test_bad_recipe_knob_names_the_field(field, value, message):
    with pytest.raises(ConfigError, match=message):
        TrainConfig(**{field: value}).validate()


def test_latent_activation_sets_the_code_layer_only():
    from aefast.train.model import build_autoencoder

    model = build_autoencoder(TrainConfig(hidden=(64, 32), latent=8, latent_activation="linear", output="sigmoid"))
    dense = [layer for layer in model.layers if isinstance(layer, keras.layers.Dense)]
    assert [d.get_config()["activation"] for d in dense] == ["elu", "elu", "linear", "elu", "elu", "sigmoid"]
    assert dense[2].name == "latent"


@pytest.mark.parametrize("output", ["sigmoid", "linear"])
def test_the_untrained_model_draws_the_mean_training_image(output):
    """output_bias_init="mean": with the kernels zeroed, the fresh model's output is the mean image (through the
    sigmoid for a sigmoid output, clipped where a pixel is always 0); "zero" keeps Keras's zero bias."""
    from aefast.train.model import build_autoencoder, output_bias

    rng = np.random.default_rng(0)
    x = (rng.random((50, 784)) * rng.random(784)).astype(np.float32)
    x[:, :10] = 0.0                                     # a pixel that is always background
    config = TrainConfig(hidden=(16,), latent=4, output=output)
    model = build_autoencoder(config, start_bias=output_bias(config, x))
    for layer in model.layers:
        if isinstance(layer, keras.layers.Dense) and layer.name != "output":
            layer.kernel.assign(np.zeros(layer.kernel.shape, np.float32))
    model.get_layer("output").kernel.assign(np.zeros((16, 784), np.float32))
    drawn = np.asarray(model(x[:2]))
    mean = x.mean(axis=0)
    expected = np.clip(mean, 1e-3, 1 - 1e-3) if output == "sigmoid" else mean
    np.testing.assert_allclose(drawn, np.broadcast_to(expected, drawn.shape), rtol=1e-5, atol=1e-7)
    assert output_bias(TrainConfig(output=output, output_bias_init="zero"), x) is None


def test_bce_needs_a_sigmoid_output():
    with pytest.raises(ConfigError, match="loss bce needs output sigmoid"):
        TrainConfig(loss="bce", output="linear").validate()
    TrainConfig(loss="bce", output="sigmoid").validate()


def test_a_run_folder_written_before_the_knobs_existed_reads_as_it_was_trained():
    """config.json from before warm-up/weight decay/loss existed: those runs used none of them, whatever the
    defaults are now (resume must not change an old run's recipe)."""
    old = TrainConfig().to_dict()
    for key in LEGACY_DEFAULTS:
        del old[key]
    config = TrainConfig.from_dict(old)
    assert (config.warmup, config.weight_decay, config.loss, config.latent_activation, config.output_bias_init) == \
        (0, 0.0, "mse", "elu", "zero")


def _lr_at(schedule, step):
    return float(schedule(step)) if callable(schedule) else float(schedule)


@pytest.mark.parametrize("schedule", ["cosine", "constant"])
def test_warmup_rises_linearly_from_zero_then_follows_the_schedule(schedule):
    steps, epochs, warmup, peak = 10, 8, 2, 2e-3
    lr = learning_rate(TrainConfig(epochs=epochs, warmup=warmup, lr=peak, schedule=schedule), steps)
    assert _lr_at(lr, 0) == 0.0
    assert _lr_at(lr, 10) == pytest.approx(peak / 2)          # half-way through the warm-up
    assert _lr_at(lr, 20) == pytest.approx(peak)              # its end: the peak
    decay = (epochs - warmup) * steps
    if schedule == "cosine":
        mid = 20 + decay // 2
        assert _lr_at(lr, mid) == pytest.approx(peak * 0.5 * (1 + math.cos(math.pi * 0.5)), rel=1e-5)
        assert _lr_at(lr, 20 + decay) == pytest.approx(0.0, abs=1e-12)
    else:
        assert _lr_at(lr, 20 + decay // 2) == pytest.approx(peak)
        assert _lr_at(lr, 20 + decay) == pytest.approx(peak)


def test_without_warmup_the_schedules_are_unchanged():
    assert learning_rate(TrainConfig(schedule="constant", lr=5e-4), 10) == 5e-4
    cosine = learning_rate(TrainConfig(epochs=4, lr=1e-3), 10)
    assert _lr_at(cosine, 0) == pytest.approx(1e-3) and _lr_at(cosine, 20) == pytest.approx(5e-4)


def test_weight_decay_selects_adamw():
    assert type(make_optimizer(TrainConfig(), 10, "float32")).__name__ == "Adam"
    adamw = make_optimizer(TrainConfig(weight_decay=1e-4), 10, "float32")
    assert type(adamw).__name__ == "AdamW" and adamw.weight_decay == pytest.approx(1e-4)


def test_bce_warmup_weight_decay_run_selects_by_validation_mse(mnist_dir, tmp_path):
    """A run with every new knob on: the warm-up's first epoch starts at lr 0, the history's val_loss is the MSE
    (not the BCE being minimised), and the exported model is the best MSE epoch."""
    config = TrainConfig(hidden=(32,), latent=8, epochs=4, warmup=1, batch_size=64, lr=3e-3, output="sigmoid",
                         loss="bce", weight_decay=1e-4, train_limit=640, val_size=256, test_limit=256, xla=False,
                         data_dir=str(mnist_dir), out=str(tmp_path), name="recipe")
    result = train(config, verbose=False)
    lrs = [row["lr"] for row in result.history]
    assert lrs[0] == 0.0 and lrs[1] == pytest.approx(3e-3)
    best = min(result.history, key=lambda row: row["val_loss"])
    assert result.best_epoch == best["epoch"] and result.metrics["val_mse"] == best["val_loss"]
    saved = read_model(result.model_path)
    val_x = load_training_data(config).validation
    reference_mse = float(np.mean((reference_forward(saved, val_x) - val_x) ** 2))
    assert reference_mse == pytest.approx(best["val_loss"], rel=1e-4)        # MSE, not the BCE minimised
    assert best["train_loss"] > 2 * best["val_loss"]                         # BCE >= its MSE; here far above
    assert saved.activations[-1] == "sigmoid" and saved.training["loss"] == "bce"
    assert saved.input_means is not None    # the final export is calibrated for int8


def test_cli_passes_the_recipe_flags(mnist_dir, tmp_path, capsys):
    argv = ["--hidden", "16", "--latent", "4", "--latent-activation", "elu", "--output-bias-init", "zero", "--epochs",
            "2", "--warmup", "1", "--weight-decay", "1e-3",
            "--output", "sigmoid", "--loss", "bce", "--batch-size", "64", "--train-limit", "256", "--val-size",
            "128", "--test-limit", "128", "--no-xla", "--quiet", "--data-dir", str(mnist_dir), "--out",
            str(tmp_path), "--name", "flags"]
    assert main(argv) == 0
    saved = json.loads((tmp_path / "flags" / "config.json").read_text())["config"]
    assert (saved["warmup"], saved["weight_decay"], saved["loss"], saved["latent_activation"],
            saved["output_bias_init"]) == (1, 1e-3, "bce", "elu", "zero")
    with pytest.raises(SystemExit) as exit_info:
        main(["--loss", "bce", "--output", "linear"])
    assert exit_info.value.code == 2 and "loss bce needs output sigmoid" in capsys.readouterr().err


def _record(name, arch, test_mse, changes):
    return {"name": name, "arch": arch, "epochs": 3, "changes": changes, "test_mse": test_mse, "best_epoch": 3,
            "epochs_run": 3, "stopped": "completed", "train_seconds": 12.5, "device": "cpu", "precision": "float32",
            "backend": "keras", "val_curve": [0.1, 0.05, 0.04], "epoch_seconds": [5, 4, 3.5]}


def test_recipe_table_sorts_each_architecture_by_test_mse(tmp_path):
    results = tmp_path / "results"
    results.mkdir()
    for rec in (_record("deep-b", "deep", 0.007, {}), _record("deep-a", "deep", 0.005, {"loss": "bce"}),
                _record("l200-a", "l200", 0.002, {"lr": 3e-3, "warmup": 2})):
        (results / f"{rec['name']}.json").write_text(json.dumps(rec))
    rows = recipes.table(tmp_path).splitlines()[2:]
    assert [r.split("|")[1].strip() for r in rows] == ["deep-a", "deep-b", "l200-a"]
    assert "784-1000-500-250-30" in rows[0] and "loss=bce" in rows[0] and "0.005000" in rows[0]
    assert "baseline" in rows[1] and "lr=0.003, warmup=2" in rows[2]


def test_recipe_runner_skips_finished_recipes_and_refuses_unknown_ones(tmp_path, monkeypatch, capsys):
    trained = []
    monkeypatch.setattr(recipes, "RECIPES", {"done": recipes._recipe("l100", 1), "todo": recipes._recipe("l100", 1)})
    (tmp_path / "results").mkdir()
    (tmp_path / "results" / "done.json").write_text("{}")

    class Pool:   # in-process stand-in for the process pool: records what would be trained
        def __init__(self, *a, **k): pass
        def __enter__(self): return self
        def __exit__(self, *a): return False

        def submit(self, fn, name, *args):
            trained.append(name)
            from concurrent.futures import Future
            f = Future()
            f.set_result(_record(name, "l100", 0.004, {}))
            return f

    monkeypatch.setattr(recipes, "ProcessPoolExecutor", Pool)
    recipes.run(["done", "todo"], tmp_path, 1, None, "float32")
    assert trained == ["todo"] and "todo: test MSE 0.004000" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        recipes.main(["--out", str(tmp_path), "--only", "nosuch"])
    assert "unknown recipes ['nosuch']" in capsys.readouterr().err
