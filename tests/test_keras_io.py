"""Keras export / reload: tensors survive exactly, the latent layer is found, unsupported models are refused."""
import numpy as np
import pytest

keras = pytest.importorskip("keras")

from aefast.keras_io import build_dense_chain, export_keras, layer_names, load_keras, to_weights  # noqa: E402
from aefast.modelfile import read_model  # noqa: E402

pytestmark = pytest.mark.train


def _randomize(model, seed=0):
    """Non-zero biases too, so a dropped or swapped bias cannot pass."""
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        if isinstance(layer, keras.layers.Dense):
            k, b = layer.get_weights()
            layer.set_weights([rng.standard_normal(k.shape).astype(np.float32) * 0.1,
                               rng.standard_normal(b.shape).astype(np.float32) * 0.1])
    return model


def _small_chain():
    sizes = [16, 12, 4, 12, 16]
    return _randomize(build_dense_chain(sizes, ["elu", "elu", "elu", "linear"], 2))


def test_layer_names_mirror_the_chain():
    assert layer_names(4, 2) == ["encoder_0", "latent", "decoder_0", "output"]
    assert layer_names(2, 1) == ["latent", "output"]
    with pytest.raises(ValueError, match="encoder_layers"):
        layer_names(3, 3)


def test_export_then_reload_gives_identical_tensors_and_outputs(tmp_path):
    model = _small_chain()
    path = export_keras(model, tmp_path / "m.safetensors", training={"epochs": 1}, metrics={"test_mse": 0.5},
                        data_sha256={"train": "ab"})
    saved = read_model(path)
    assert saved.layer_sizes == [16, 12, 4, 12, 16]
    assert saved.encoder_layers == 2 and saved.activations == ["elu", "elu", "elu", "linear"]
    assert saved.input_shape == (4, 4)
    assert saved.training == {"epochs": 1} and saved.metrics == {"test_mse": 0.5}
    assert saved.data_sha256 == {"train": "ab"}

    reloaded = load_keras(path)
    assert [layer.name for layer in reloaded.layers] == [layer.name for layer in model.layers]
    for a, b in zip(model.layers[1:], reloaded.layers[1:]):
        for wa, wb in zip(a.get_weights(), b.get_weights()):
            assert wb.dtype == np.float32
            np.testing.assert_array_equal(wa, wb)
    x = np.random.default_rng(1).random((5, 16), dtype=np.float32)
    np.testing.assert_array_equal(model.predict(x, verbose=0), reloaded.predict(x, verbose=0))


def test_float16_storage_rounds_each_tensor_once(tmp_path):
    model = _small_chain()
    saved = read_model(export_keras(model, tmp_path / "h.safetensors", dtype="float16"))
    ref = to_weights(model)
    for k16, k32 in zip(saved.kernels, ref.kernels):
        assert k16.dtype == np.float16
        np.testing.assert_array_equal(k16, k32.astype(np.float16))
    reloaded = load_keras(saved)  # from AutoencoderWeights directly
    np.testing.assert_array_equal(reloaded.layers[1].get_weights()[0], saved.kernels[0].astype(np.float32))


def test_latent_found_by_smallest_width_in_nested_models():
    encoder = keras.Sequential([keras.Input((9,)), keras.layers.Dense(6, activation="elu", name="a"),
                                keras.layers.Dense(3, activation="elu", name="b")], name="enc")
    decoder = keras.Sequential([keras.Input((3,)), keras.layers.Dense(6, activation="elu", name="c"),
                                keras.layers.Dense(9, activation="sigmoid", name="d")], name="dec")
    auto = keras.Sequential([keras.Input((9,)), encoder, decoder])
    weights = to_weights(auto)
    assert weights.encoder_layers == 2 and weights.latent_size == 3
    assert weights.activations == ["elu", "elu", "elu", "sigmoid"]
    assert weights.input_shape == (3, 3)
    assert to_weights(auto, encoder_layers=1).encoder_layers == 1


def test_latent_found_by_name_before_width():
    sizes = [8, 2, 5, 8]  # narrowest is layer 0, but the layer named "latent" is layer 1
    model = build_dense_chain(sizes, ["elu", "elu", "linear"], 2)
    assert to_weights(model).encoder_layers == 2


def test_mixed_precision_model_exports_float32_master_weights(tmp_path):
    model = build_dense_chain([16, 8, 16], ["elu", "linear"], 1, hidden_dtype="mixed_float16")
    assert model.layers[1].compute_dtype == "float16"
    weights = to_weights(model)
    assert all(k.dtype == np.float32 for k in weights.kernels)
    np.testing.assert_array_equal(weights.kernels[0], model.layers[1].kernel.numpy())


def test_unsupported_activation_is_refused_by_name():
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2, activation="gelu", name="r"),
                              keras.layers.Dense(4)])
    with pytest.raises(ValueError, match=r"'r'.*'gelu'"):
        to_weights(model)


def test_non_dense_layer_is_refused_by_name():
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2), keras.layers.Dropout(0.1, name="drop"),
                              keras.layers.Dense(4)])
    with pytest.raises(ValueError, match=r"'drop' is a Dropout"):
        to_weights(model)


def test_not_an_autoencoder_is_refused(tmp_path):
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2), keras.layers.Dense(3)])
    with pytest.raises(ValueError, match="output width 3 differs from input width 4"):
        export_keras(model, tmp_path / "x.safetensors")
    assert not list(tmp_path.iterdir())  # nothing half-written
