"""Keras models with the activations the model file knows (relu, tanh, leaky_relu, elu, sigmoid, linear): export
to the model file, the float64 reference agrees with Keras, and load_keras rebuilds the same model."""
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
