"""Keras models with the activations the model file knows (relu, tanh, leaky_relu, elu, sigmoid, linear), as Dense
activations or as activation layers (ReLU, LeakyReLU, ELU, Activation) after a Dense layer, with a leading Flatten
and a trailing Reshape: export to the model file, the float64 reference agrees with Keras, load_keras rebuilds the
same model, and layers that do not fit are refused by name with nothing written."""
import numpy as np
import pytest

keras = pytest.importorskip("keras")

from aefast.engine.reference import reference_forward  # noqa: E402
from aefast.keras_io import build_dense_chain, export_keras, load_keras  # noqa: E402
from aefast.model import read_model  # noqa: E402

pytestmark = pytest.mark.train


def test_keras_relu_tanh_leaky_relu_export_and_reload(tmp_path):
    rng = np.random.default_rng(0)
    model = keras.Sequential([keras.Input((12,)), keras.layers.Dense(7, activation="relu"),
                              keras.layers.Dense(3, activation="leaky_relu"), keras.layers.Dense(7, activation="tanh"),
                              keras.layers.Dense(12, activation="sigmoid")])
    for layer in model.layers:
        k, b = layer.get_weights()
        layer.set_weights([rng.standard_normal(k.shape).astype(np.float32),
                           rng.standard_normal(b.shape).astype(np.float32)])
    w = read_model(export_keras(model, tmp_path / "k.safetensors"))
    assert w.activations == ["relu", "leaky_relu(0.2)", "tanh", "sigmoid"] and w.encoder_layers == 2
    x = rng.random((6, 12), dtype=np.float32)
    expect = model.predict(x, verbose=0)
    np.testing.assert_allclose(reference_forward(w, x), expect, rtol=1e-5, atol=1e-6)
    again = load_keras(w)
    np.testing.assert_allclose(again.predict(x, verbose=0), expect, rtol=1e-6, atol=1e-7)


def test_activations_without_a_keras_name_are_refused_by_load_keras():
    with pytest.raises(ValueError, match=r"activation 'elu\(0.5\)' has no Keras Dense activation name"):
        build_dense_chain([4, 2, 4], ["elu(0.5)", "linear"], 1)


L = keras.layers


@pytest.mark.parametrize("layers, acts", [
    ([L.Dense(3, activation=L.LeakyReLU(0.1)), L.Dense(12)], ["leaky_relu(0.1)", "linear"]),
    ([L.Dense(3), L.LeakyReLU(), L.Dense(12), L.Activation("sigmoid")], ["leaky_relu(0.3)", "sigmoid"]),
    ([L.Dense(3), L.ELU(alpha=0.5), L.Dense(12, activation=L.ELU())], ["elu(0.5)", "elu"]),
    ([L.Dense(3), L.ReLU(), L.Dense(12, activation=keras.activations.tanh)], ["relu", "tanh"]),
])
def test_activation_layers_and_objects_export(tmp_path, layers, acts):
    rng = np.random.default_rng(1)
    model = keras.Sequential([keras.Input((12,))] + layers)
    w = read_model(export_keras(model, tmp_path / "k.safetensors"))
    assert w.activations == acts
    x = rng.standard_normal((6, 12)).astype(np.float32)   # both signs into every activation
    np.testing.assert_allclose(reference_forward(w, x), model(x).numpy(), rtol=1e-5, atol=1e-6)


def test_leading_flatten_and_trailing_reshape_export_with_the_image_shape(tmp_path):
    model = keras.Sequential([keras.Input((4, 7)), L.Flatten(), L.Dense(5, activation="relu"), L.Dense(28),
                              L.Reshape((4, 7))])
    w = read_model(export_keras(model, tmp_path / "k.safetensors"))
    assert w.input_shape == (4, 7) and w.layer_sizes == [28, 5, 28]
    x = np.random.default_rng(2).random((3, 4, 7), dtype=np.float32)
    np.testing.assert_allclose(reference_forward(w, x.reshape(3, -1)), model(x).numpy().reshape(3, -1),
                               rtol=1e-5, atol=1e-6)
    one_channel = keras.Sequential([keras.Input((4, 7, 1)), L.Flatten(), L.Dense(5), L.Dense(28)])
    assert read_model(export_keras(one_channel, tmp_path / "c.safetensors")).input_shape == (4, 7)


@pytest.mark.parametrize("layers, message", [
    ([L.Dense(3, activation="relu", name="d"), L.ReLU(name="r2"), L.Dense(6)],
     r"layer 'r2' \(ReLU\) does not follow a Dense layer without an activation"),
    ([L.Dense(3), L.ReLU(max_value=6.0, name="r6"), L.Dense(6)], r"layer 'r6': ReLU\(max_value=6.0.*no counterpart"),
    ([L.Dense(3, activation=L.ReLU(max_value=6.0), name="d6"), L.Dense(6)], r"layer 'd6': ReLU\(max_value=6.0"),
    ([L.Dense(3), L.Activation("gelu", name="g"), L.Dense(6)], r"layer 'g' uses activation 'gelu'"),
    ([L.Dense(3, activation=lambda x: x, name="mine"), L.Dense(6)], r"layer 'mine' uses activation '<lambda> from"),
    ([L.Dense(3), L.Reshape((3,), name="mid"), L.Dense(6)], r"layer 'mid' is a Reshape followed by layer"),
    ([L.Dense(3), L.Flatten(name="fl"), L.Dense(6)], r"layer 'fl' is a Flatten; aefast exports chains of Dense"),
    ([L.Dense(3), L.BatchNormalization(name="bn"), L.Dense(6)], r"layer 'bn' is a BatchNormalization"),
])
def test_layers_that_do_not_fit_are_refused_by_name(tmp_path, layers, message):
    model = keras.Sequential([keras.Input((6,))] + layers)
    with pytest.raises(ValueError, match=message):
        export_keras(model, tmp_path / "k.safetensors")
    assert not list(tmp_path.iterdir())   # nothing written
