"""Keras <-> aefast model file: export a trained Keras autoencoder, rebuild a Keras model from a file.

The family: a chain of Dense layers (784 -> ... -> latent -> ... -> 784), each with one of the activations the
model format knows that Keras names (KERAS_ACTIVATIONS: linear, elu, sigmoid, relu, tanh, leaky_relu). Nested
models (e.g. an encoder and a decoder sub-model) are flattened in order. Keras is imported lazily inside each
function so `import aefast` stays light.

Layer names are fixed by `layer_names` so that a model built by the trainer and one rebuilt by `load_keras`
agree: encoder_0.., latent, decoder_0.., output.
"""
from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np

from .model.file import read_model, save_model
from .model.weights import AutoencoderWeights

# Keras Dense activation names <-> aefast activation strings (aefast/model/activations.py). Keras's "leaky_relu" is
# keras.activations.leaky_relu with its default negative_slope, 0.2.
KERAS_ACTIVATIONS = {"linear": "linear", "elu": "elu", "sigmoid": "sigmoid", "relu": "relu", "tanh": "tanh",
                     "leaky_relu": "leaky_relu(0.2)"}
_FROM_AEFAST = {spec: name for name, spec in KERAS_ACTIVATIONS.items()}
LATENT_NAME = "latent"
OUTPUT_NAME = "output"


def layer_names(n_layers: int, encoder_layers: int) -> list[str]:
    """Names for an n_layers Dense chain whose layer encoder_layers-1 is the latent layer."""
    if not 1 <= encoder_layers <= n_layers - 1:
        raise ValueError(f"encoder_layers={encoder_layers} must be between 1 and {n_layers - 1}")
    names = [f"encoder_{i}" for i in range(encoder_layers - 1)] + [LATENT_NAME]
    names += [f"decoder_{i}" for i in range(n_layers - encoder_layers - 1)] + [OUTPUT_NAME]
    return names


def build_dense_chain(layer_sizes: list[int], activations: list[str], encoder_layers: int, *,
                      kernel_regularizer=None, hidden_dtype=None, output_bias=None, name: str = "autoencoder"):
    """A Keras functional model: Input(layer_sizes[0]) -> Dense(layer_sizes[1]) -> ... -> Dense(layer_sizes[-1]).

    Glorot-uniform kernels, zero biases (the output layer's start at `output_bias`, (layer_sizes[-1],), if given).
    Hidden layers use `hidden_dtype` (None: the global dtype policy, e.g.
    mixed_float16); the output layer is always float32 so the loss is computed in float32.
    """
    import keras

    n = len(layer_sizes) - 1
    if len(activations) != n:
        raise ValueError(f"{n} layers need {n} activations, got {len(activations)}")
    names = layer_names(n, encoder_layers)
    missing = [a for a in activations if a not in _FROM_AEFAST]
    if missing:
        raise ValueError(f"activation {missing[0]!r:.100} has no Keras Dense activation name; Keras models use "
                         f"{', '.join(_FROM_AEFAST)}")
    activations = [_FROM_AEFAST[a] for a in activations]
    x = inputs = keras.Input(shape=(layer_sizes[0],), name="pixels")
    for i, (width, act, lname) in enumerate(zip(layer_sizes[1:], activations, names)):
        bias = "zeros" if i < n - 1 or output_bias is None else keras.initializers.Constant(output_bias)
        x = keras.layers.Dense(
            width, activation=act, name=lname, kernel_initializer="glorot_uniform", bias_initializer=bias,
            kernel_regularizer=kernel_regularizer,
            dtype="float32" if i == n - 1 else hidden_dtype)(x)
    return keras.Model(inputs, x, name=name)


def _dense_layers(model) -> list:
    """The Dense layers of `model` in call order, nested models flattened; anything else is refused."""
    import keras

    found = []
    for layer in model.layers:
        if isinstance(layer, keras.layers.InputLayer):
            continue
        if isinstance(layer, keras.layers.Dense):
            found.append(layer)
        elif hasattr(layer, "layers"):
            found.extend(_dense_layers(layer))
        else:
            raise ValueError(f"layer {layer.name!r} is a {type(layer).__name__}; aefast exports chains of "
                             "Dense layers only")
    return found


def _activation_name(layer) -> str:
    act = layer.get_config().get("activation")
    if act is None:
        act = "linear"
    if act not in KERAS_ACTIVATIONS:
        raise ValueError(f"layer {layer.name!r} uses activation {act!r}; aefast exports Dense layers with "
                         f"{', '.join(KERAS_ACTIVATIONS)}")
    return KERAS_ACTIVATIONS[act]


def _default_input_shape(n: int) -> tuple[int, ...]:
    side = math.isqrt(n)
    return (side, side) if side * side == n else (n,)


def to_weights(model, *, encoder_layers: int | None = None, training: dict | None = None,
               metrics: dict | None = None, data_sha256: dict | None = None,
               input_shape: tuple[int, ...] | None = None) -> AutoencoderWeights:
    """The float32 master weights of a Keras Dense-chain autoencoder as a validated AutoencoderWeights.

    encoder_layers: how many layers form the encoder. None: up to the layer named "latent", else up to the
    narrowest layer (the first one, on ties) among all but the output layer.
    input_shape: image shape of the input; None: (s, s) when the input width is a square s*s, else (width,).
    """
    dense = _dense_layers(model)
    if len(dense) < 2:
        raise ValueError(f"model {model.name!r} has {len(dense)} Dense layers; an autoencoder needs at least 2")
    kernels, biases = [], []
    for layer in dense:
        kernel = np.asarray(layer.kernel.numpy(), dtype=np.float32)  # variables hold float32 master weights
        if layer.use_bias:
            bias = np.asarray(layer.bias.numpy(), dtype=np.float32)
        else:
            bias = np.zeros(kernel.shape[1], np.float32)
        kernels.append(kernel)
        biases.append(bias)
    activations = [_activation_name(layer) for layer in dense]
    if encoder_layers is None:
        named = [i for i, layer in enumerate(dense[:-1]) if layer.name == LATENT_NAME]
        widths = [k.shape[1] for k in kernels[:-1]]
        encoder_layers = (named[0] if named else widths.index(min(widths))) + 1
    width = int(kernels[0].shape[0])
    weights = AutoencoderWeights(
        kernels, biases, activations, int(encoder_layers),
        input_shape=tuple(input_shape) if input_shape is not None else _default_input_shape(width),
        training=dict(training or {}), metrics=dict(metrics or {}), data_sha256=dict(data_sha256 or {}))
    return weights.validate(f"Keras model {model.name!r}")


def export_keras(model, path: str | os.PathLike, *, encoder_layers: int | None = None, dtype: str = "float32",
                 training: dict | None = None, metrics: dict | None = None,
                 data_sha256: dict | None = None, input_shape: tuple[int, ...] | None = None,
                 calibration_images=None) -> Path:
    """Write a Keras Dense-chain autoencoder to an aefast model file (atomically); weights stored as `dtype`.
    input_shape: the image shape (H, W) or (H, W, C); None: see to_weights.
    calibration_images: training images whose per-layer mean inputs are stored for int8 bias correction."""
    weights = to_weights(model, encoder_layers=encoder_layers, training=training, metrics=metrics,
                         data_sha256=data_sha256, input_shape=input_shape)
    if calibration_images is not None:
        from .export.calibration import calibrated
        weights = calibrated(weights, calibration_images)
    return save_model(path, weights, dtype=dtype)


def load_keras(path_or_weights: str | os.PathLike | AutoencoderWeights):
    """A float32 Keras model with the weights of a model file (or AutoencoderWeights), named as `layer_names`."""
    weights = path_or_weights if isinstance(path_or_weights, AutoencoderWeights) else read_model(path_or_weights)
    weights.validate("weights")
    model = build_dense_chain(weights.layer_sizes, list(weights.activations), weights.encoder_layers,
                              hidden_dtype="float32")
    for layer, kernel, bias in zip(_dense_layers(model), weights.kernels, weights.biases):
        layer.set_weights([np.asarray(kernel, np.float32), np.asarray(bias, np.float32)])
    return model
