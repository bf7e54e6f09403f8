"""The PCA start (aefast/train/init.py): the model before its first step reconstructs like PCA with as many
components as its code, and the exported best epoch is never worse than that start on the validation images.

NumPy checks run the network with a NumPy forward pass; the training checks are tiny runs (hidden 32, 640 images).
"""
import json

import numpy as np
import pytest

from aefast.data.pca import fit_pca
from aefast.train import TrainConfig
from aefast.train.init import fit_soft_clip, pca_start, plan_start


def _elu(z):
    return np.where(z > 0, z, np.expm1(np.minimum(z, 0)))


ACTIVATIONS = {"elu": _elu, "linear": lambda z: z, "sigmoid": lambda z: 1 / (1 + np.exp(-z))}


def _forward(weights, x, activations):
    h = np.asarray(x, np.float64)
    for i, act in enumerate(activations):
        h = ACTIVATIONS[act](h @ weights[2 * i].astype(np.float64) + weights[2 * i + 1])
    return h


def _glorot(sizes, rng):
    weights = []
    for a, b in zip(sizes, sizes[1:]):
        weights += [(rng.uniform(-1, 1, (a, b)) * np.sqrt(6 / (a + b))).astype(np.float32), np.zeros(b, np.float32)]
    return weights


def _random_images(rng, n=1200, d=64):
    return rng.uniform(0, 1, (n, d))


def _real_looking_images(rng, n=1200, side=8):
    """Smooth blobs on a dark background, clipped to [0, 1]: low-rank structure, saturated pixels, some noise."""
    yy, xx = np.mgrid[:side, :side] / side
    cx, cy, r = rng.uniform(0.2, 0.8, (3, n, 1, 1))
    blob = np.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / (0.02 + 0.05 * r))
    x = 1.3 * blob + rng.normal(0, 0.05, blob.shape)
    return np.clip(x, 0, 1).reshape(n, -1)


DATA = {"random": _random_images, "real-looking": _real_looking_images}
# (hidden, latent, latent activation): one hidden layer, a deep stack, a hidden layer narrower than the code
LAYOUTS = [((100,), 16, "linear"), ((100, 60), 16, "linear"), ((100,), 16, "elu"), ((10,), 16, "linear")]


@pytest.mark.parametrize("data", DATA)
@pytest.mark.parametrize("hidden,latent,latent_act", LAYOUTS)
def test_linear_output_start_is_pca_on_validation(data, hidden, latent, latent_act):
    rng = np.random.default_rng(0)
    x = DATA[data](rng)
    train_x, val_x = x[:1000], x[1000:]
    sizes = [x.shape[1], *hidden, latent, *reversed(hidden), x.shape[1]]
    start = pca_start(_glorot(sizes, rng), sizes, "linear", train_x, latent_activation=latent_act)
    acts = ["elu"] * len(hidden) + [latent_act] + ["elu"] * len(hidden) + ["linear"]
    recon = _forward(start, val_x, acts)
    components = min(latent, *hidden)   # a hidden layer narrower than the code carries fewer components
    pca_recon = fit_pca(train_x).reconstruct(val_x, components)
    model_mse, pca_mse = np.mean((recon - val_x) ** 2), np.mean((pca_recon - val_x) ** 2)
    assert model_mse == pytest.approx(pca_mse, rel=1e-3)
    # and on the training images the path stays in the ELU's linear half, so it is PCA to float32 rounding
    np.testing.assert_allclose(_forward(start, train_x, acts), fit_pca(train_x).reconstruct(train_x, components),
                               atol=1e-4)


def test_near_degenerate_components_get_a_bounded_scale_and_the_start_stays_pca():
    """MNIST's border pixels are almost constant, so its last principal components have standard deviations near
    1e-7: scaled by 1/sigma, decoder layer 1 held weights near 1e7 and the first epoch from the full-size PCA start
    (latent 784) ended in NaN. Here 16 of 64 pixels vary by 1e-7 only, and the code keeps all 64 components."""
    rng = np.random.default_rng(0)
    x = _real_looking_images(rng)
    x[:, 48:] = 0.5 + rng.normal(0, 1e-7, (len(x), 16))
    train_x, val_x = x[:1000], x[1000:]
    sizes = [64, 100, 64, 100, 64]
    start = pca_start(_glorot(sizes, rng), sizes, "linear", train_x)
    pca = fit_pca(train_x)
    sigma_max = ((train_x - pca.mean) @ pca.axes[0]).std()
    # decoder layer 1 (kernel 2) scales the code by 1/sigma on the path: at most 100 / sigma_max (init.SCALE_FLOOR)
    assert np.abs(start[4][:64, :64]).max() <= 100.01 / sigma_max
    recon = _forward(start, val_x, ["elu", "linear", "elu", "linear"])
    assert np.mean((recon - val_x) ** 2) == pytest.approx(np.mean((pca.reconstruct(val_x, 64) - val_x) ** 2),
                                                          rel=1e-3, abs=1e-9)


@pytest.mark.parametrize("data", DATA)
def test_auto_output_start_is_never_worse_than_pca(data):
    rng = np.random.default_rng(1)
    x = DATA[data](rng)
    train_x, val_x = x[:1000], x[1000:]
    config = TrainConfig(hidden=(50,), latent=12, input_shape=(8, 8), output="auto")
    plan = plan_start(config, train_x, val_x)
    sizes = config.layer_sizes
    start = pca_start(_glorot(sizes, rng), sizes, plan.output, train_x, pca=plan.pca, soft_clip=plan.soft_clip)
    recon = _forward(start, val_x, ["elu", "linear", "elu", plan.output])
    # both starts as served: outputs clipped to [0, 1] (a no-op for the sigmoid)
    pca_mse = np.mean((np.clip(fit_pca(train_x).reconstruct(val_x, 12), 0, 1) - val_x) ** 2)
    assert plan.val_mse["linear"] == pytest.approx(pca_mse, rel=1e-9)
    assert plan.output == min(plan.val_mse, key=plan.val_mse.get)
    assert np.mean((np.clip(recon, 0, 1) - val_x) ** 2) <= pca_mse * (1 + 1e-3)


def test_the_soft_clip_fit_never_ends_above_its_tangent_start():
    rng = np.random.default_rng(2)
    x = _real_looking_images(rng, n=500)
    pca = fit_pca(x)
    y = pca.reconstruct(x, 6) - pca.mean
    alpha, beta = fit_soft_clip(y, x, pca.mean)
    m = np.clip(pca.mean, 1e-3, 1 - 1e-3)
    tangent_alpha, tangent_beta = 1 / (m * (1 - m)), np.log(m / (1 - m))

    def per_pixel(a, b):
        return np.sum((1 / (1 + np.exp(-(y * a + b))) - x) ** 2, axis=0)

    fitted, tangent = per_pixel(alpha, beta), per_pixel(tangent_alpha, tangent_beta)
    assert np.all(fitted <= tangent) and fitted.sum() < tangent.sum()


# --- through the trainer --------------------------------------------------------------------------------------

keras = pytest.importorskip("keras")


class _WreckAfterEveryFit(keras.callbacks.Callback):
    """Adds 0.5 to every weight after each epoch's training: no epoch can beat the start."""

    def on_train_end(self, logs=None):
        for layer in self.model.layers:
            if isinstance(layer, keras.layers.Dense):
                layer.set_weights([w + 0.5 for w in layer.get_weights()])


def _val_mse(model_path, val_x):
    """The validation MSE of the exported model as served (clipped to [0, 1]), the trainer's selection figure."""
    import aefast

    recon = aefast.load(model_path).reconstruct(val_x, clip=True)
    return float(np.mean((np.asarray(recon, np.float64).reshape(len(val_x), -1) - val_x) ** 2))


@pytest.mark.train
@pytest.mark.parametrize("output", ["linear", "sigmoid"])
def test_training_starts_at_pca_and_the_export_is_never_worse(tiny_config, output):
    from aefast.modelfile import read_model
    from aefast.train import train
    from aefast.train.data import load_training_data

    config = tiny_config(output=output)
    result = train(config, verbose=False)
    data = load_training_data(config)
    training = read_model(result.model_path).training
    pca_val = _pca_val(config)
    assert training["init"] == "pca" and training["pca_components"] == 8
    if output == "linear":   # the start is PCA itself, served clipped
        assert training["initial_val_mse"] == pytest.approx(pca_val, rel=1e-3)
    else:                    # the soft clip of PCA
        assert training["initial_val_mse"] == pytest.approx(training["pca_start_val_mse"]["sigmoid"], rel=1e-3)
    assert result.metrics["val_mse"] <= training["initial_val_mse"]
    assert _val_mse(result.model_path, data.validation) <= training["initial_val_mse"] * (1 + 1e-5)


@pytest.mark.train
def test_when_no_epoch_beats_the_start_the_start_is_exported(tiny_config):
    from aefast.modelfile import read_model
    from aefast.train import resume, train
    from aefast.train.checkpoint import CHECKPOINT_NAME, load_checkpoint
    from aefast.train.data import load_training_data

    config = tiny_config(output="linear")
    result = train(config, verbose=False, callbacks=[_WreckAfterEveryFit()])
    assert result.best_epoch == 0 and all(row["val_loss"] > result.metrics["val_mse"] for row in result.history)
    saved = read_model(result.model_path)
    assert saved.training["best_epoch"] == 0 and saved.metrics["val_mse"] == saved.training["initial_val_mse"]
    data = load_training_data(config)
    assert _val_mse(result.model_path, data.validation) == pytest.approx(_pca_val(config), rel=1e-3)
    # a checkpoint whose best epoch is the start is accepted by --resume (here: nothing left to train)
    ckpt = load_checkpoint(result.run_dir / CHECKPOINT_NAME)
    assert ckpt.state["best_epoch"] == 0 and ckpt.state["best_val"] == ckpt.state["initial_val"]
    assert json.loads((result.run_dir / "metrics.json").read_text())["best_epoch"] == 0
    resumed = resume(result.run_dir, verbose=False)
    assert resumed.best_epoch == 0


@pytest.mark.train
def test_a_nan_first_epoch_exports_the_pca_start(tiny_config):
    from aefast.train import train

    class Poison(keras.callbacks.Callback):
        def on_train_begin(self, logs=None):
            layer = [d for d in self.model.layers if isinstance(d, keras.layers.Dense)][0]
            layer.set_weights([np.full_like(w, np.nan) for w in layer.get_weights()])

    result = train(tiny_config(output="linear"), verbose=False, callbacks=[Poison()])
    assert result.stopped == "nan" and result.best_epoch == 0
    assert result.metrics["val_mse"] == pytest.approx(_pca_val(tiny_config(output="linear")), rel=1e-3)


def _pca_val(config):
    """Clipped PCA's validation MSE: what the linear start scores as served."""
    from aefast.train.data import load_training_data

    data = load_training_data(config)
    recon = fit_pca(data.train).reconstruct(data.validation, config.latent)
    return np.mean((np.clip(recon, 0, 1) - data.validation) ** 2)


@pytest.mark.train
def test_init_random_still_trains_from_glorot(tiny_config):
    from aefast.modelfile import read_model
    from aefast.train import train

    result = train(tiny_config(init="random", output="sigmoid"), verbose=False)
    training = read_model(result.model_path).training
    assert training["init"] == "random" and training["initial_val_mse"] is None and "pca_components" not in training
    assert result.best_epoch >= 1


@pytest.mark.train
def test_cli_init_flag(tiny_config, mnist_dir, tmp_path):
    from aefast.train.cli import build_parser, config_from_args

    args = build_parser().parse_args(["--init", "random", "--data-dir", str(mnist_dir), "--out", str(tmp_path)])
    assert config_from_args(args).init == "random"
    args = build_parser().parse_args(["--data-dir", str(mnist_dir), "--out", str(tmp_path)])
    assert config_from_args(args).init == "pca" and config_from_args(args).output == "auto"
    with pytest.raises(SystemExit):
        build_parser().parse_args(["--init", "zeros"])


def test_the_natural_image_sets_are_reproducible_and_test_patches_are_disjoint(tmp_path):
    pytest.importorskip("sklearn")
    from aefast.analyze import natural

    sets = natural.prepare(tmp_path)
    digits = np.load(sets["digits"]["data"])
    assert digits.shape == (1797, 8, 8) and digits.dtype == np.uint8 and digits.max() == 255
    train, test = np.load(sets["colour"]["data"]), np.load(sets["colour"]["test_data"])
    assert train.shape[1:] == test.shape[1:] == (32, 32, 3) and len(train) > 4 * len(test) > 0
    gray = np.load(sets["gray"]["data"])
    assert gray.shape == train.shape[:3]
    np.testing.assert_array_equal(np.load(natural.prepare(tmp_path / "again")["gray"]["test_data"]),
                                  np.load(sets["gray"]["test_data"]))
    # no test patch appears among the training patches (they come from disjoint rows of each photo)
    seen = {p.tobytes() for p in train}
    assert not any(p.tobytes() in seen for p in test)


def test_min_steps_makes_an_epoch_several_reshuffled_passes():
    from aefast.train.config import ConfigError
    from aefast.train.loop import epoch_order

    config = TrainConfig(epochs=40, batch_size=128)
    assert config.passes_per_epoch(1437) == 1                               # min_steps 0: one pass
    config = TrainConfig(epochs=40, batch_size=128, min_steps=1320)
    assert config.passes_per_epoch(1437) == 3                               # 11 steps a pass: 40 x 3 x 11 = 1320
    assert config.passes_per_epoch(60000) == 1                              # a large set already has the steps
    one, three = epoch_order(1437, 128, 0, 5), epoch_order(1437, 128, 0, 5, passes=3)
    assert len(three) == 3 * len(one) == 3 * 1408
    np.testing.assert_array_equal(three[:1408], one)                        # the first pass is the usual order
    assert not np.array_equal(three[1408:2816], one)                        # the others are reshuffled
    assert all(len(set(three[k * 1408:(k + 1) * 1408].tolist())) == 1408 for k in range(3))
    with pytest.raises(ConfigError, match="min_steps must be an integer >= 0"):
        TrainConfig(min_steps=-1).validate()


def test_images_without_any_variance_get_a_start_with_bounded_weights():
    """Every component of constant images has standard deviation 0: the path scale falls back to 1 (no 1/0 or 1e14
    weights) and the start reconstructs the constant image."""
    rng = np.random.default_rng(0)
    x = np.full((50, 16), 0.5)
    sizes = [16, 8, 4, 8, 16]
    start = pca_start(_glorot(sizes, rng), sizes, "linear", x)
    assert max(float(np.abs(a).max()) for a in start) < 10
    np.testing.assert_allclose(_forward(start, x, ["elu", "linear", "elu", "linear"]), x, atol=1e-6)
