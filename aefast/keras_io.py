"""Keras <-> aefast model file: export a trained Keras autoencoder, rebuild a Keras model from a file.

The family: a chain of Dense layers (784 -> ... -> latent -> ... -> 784), each with one of the activations the
model format knows that Keras names (KERAS_ACTIVATIONS: linear, elu, sigmoid, relu, tanh, leaky_relu), or without
one and followed by an activation layer (ACTIVATION_LAYERS: Activation, ReLU, LeakyReLU with any slope, ELU with
any alpha); a leading Flatten and a trailing Reshape are allowed. Nested models (e.g. an encoder and a decoder
sub-model) are flattened in order. Keras is imported lazily inside each
function so `import aefast` stays light.

Layer names are fixed by `layer_names` so that a model built by the trainer and one rebuilt by `load_keras`
agree: encoder_0.., latent, decoder_0.., output.
"""
from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np

from .model.activations import activation_spec
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


# Keras activation layers that may follow a Dense layer without an activation of its own (or be its activation:
# Dense(activation=keras.layers.LeakyReLU(0.1))), by class name; ReLU only with its defaults (no max_value,
# threshold or slope: ReLU6 and friends have no counterpart in the model file).
ACTIVATION_LAYERS = ("Activation", "ReLU", "LeakyReLU", "ELU")


def _flat_layers(model) -> list:
    """The layers of `model` in call order, nested models flattened, InputLayers left out."""
    import keras

    found = []
    for layer in model.layers:
        if isinstance(layer, keras.layers.InputLayer):
            continue
        if not isinstance(layer, keras.layers.Dense) and hasattr(layer, "layers"):
            found.extend(_flat_layers(layer))
        else:
            found.append(layer)
    return found


def _layer_activation(layer, where: str) -> str | None:
    """The aefast activation string of a Keras activation layer (ACTIVATION_LAYERS); None for any other layer."""
    import keras

    kind = type(layer).__name__
    if kind not in ACTIVATION_LAYERS or type(layer).__module__.split(".")[0] != "keras":
        return None
    if isinstance(layer, keras.layers.Activation):
        return _function_activation(layer.activation, where)
    config = layer.get_config()
    if kind == "ReLU":
        if config.get("max_value") is not None or config.get("threshold", 0) != 0 \
                or config.get("negative_slope", 0) != 0:
            raise ValueError(f"{where}: ReLU(max_value={config.get('max_value')}, threshold="
                             f"{config.get('threshold')}, negative_slope={config.get('negative_slope')}) has no "
                             "counterpart in the model file; expected ReLU() with its defaults, LeakyReLU or ELU")
        return "relu"
    if kind == "LeakyReLU":
        return activation_spec("leaky_relu", float(config["negative_slope"]))
    return activation_spec("elu", float(config["alpha"]))


def _function_activation(act, where: str) -> str:
    """The aefast activation string of a Keras activation function (keras.activations.NAME, NAME in
    KERAS_ACTIVATIONS); anything else (gelu, a function of one's own) is a ValueError naming `where`."""
    name = getattr(act, "__name__", None)
    module = str(getattr(act, "__module__", ""))
    if module.split(".")[0] != "keras" or name not in KERAS_ACTIVATIONS:
        shown = name if module.split(".")[0] == "keras" else f"{name or type(act).__name__} from {module or '?'}"
        raise ValueError(f"{where} uses activation {shown!r:.120}; aefast exports Dense layers with "
                         f"{', '.join(KERAS_ACTIVATIONS)} or the layers {', '.join(ACTIVATION_LAYERS)}")
    return KERAS_ACTIVATIONS[name]


def _dense_activation(layer) -> str:
    """The activation of a Dense layer: a Keras activation function or an activation layer object."""
    where = f"layer {layer.name!r}"
    spec = _layer_activation(layer.activation, where)
    return spec if spec is not None else _function_activation(layer.activation, where)


def _chain(model) -> list[tuple]:
    """(Dense layer, aefast activation string) for each Dense layer of `model` in call order, nested models
    flattened. Besides Dense layers the model may hold an activation layer (ACTIVATION_LAYERS) right after a Dense
    layer without an activation, a Flatten before the first Dense layer and a Reshape after the last; anything
    else is a ValueError naming the layer."""
    import keras

    chain: list[list] = []
    activated = True   # the last Dense layer has its activation (or there is none yet)
    reshaped = None    # the trailing Reshape, once seen: nothing but the end of the model may follow it
    for layer in _flat_layers(model):
        where = f"layer {layer.name!r}"
        if reshaped is not None:
            raise ValueError(f"layer {reshaped.name!r} is a Reshape followed by {where}; expected a Reshape only "
                             "at the end")
        if isinstance(layer, keras.layers.Dense):
            spec = _dense_activation(layer)
            chain.append([layer, spec])
            activated = spec != "linear"
            continue
        spec = _layer_activation(layer, where)
        if spec is not None:
            if activated:
                raise ValueError(f"{where} ({type(layer).__name__}) does not follow a Dense layer without an "
                                 "activation; expected one activation per Dense layer")
            chain[-1][1], activated = spec, True
        elif isinstance(layer, keras.layers.Flatten) and not chain:
            continue
        elif isinstance(layer, keras.layers.Reshape) and chain:
            reshaped = layer
        else:
            raise ValueError(f"{where} is a {type(layer).__name__}; aefast exports chains of Dense layers only "
                             f"(with {', '.join(ACTIVATION_LAYERS)} layers after them, a leading Flatten and a "
                             "trailing Reshape)")
    return [tuple(item) for item in chain]


def _dense_layers(model) -> list:
    """The Dense layers of `model` in call order (see _chain for what else it may hold)."""
    return [layer for layer, _ in _chain(model)]


def _default_input_shape(model, n: int) -> tuple[int, ...]:
    """The model's own input shape when it has more than one axis (an image before a Flatten; (H, W, 1) as (H, W),
    as aefast names one-channel images; Keras flattens (H, W, C) in H, W, C order, as aefast does), else (s, s) for
    a square width s*s, else (n,)."""
    dims = tuple(getattr(model, "input_shape", None) or ())[1:]
    if len(dims) > 1 and all(isinstance(d, int) and d > 0 for d in dims) and math.prod(dims) == n:
        return dims[:2] if len(dims) == 3 and dims[2] == 1 else dims
    side = math.isqrt(n)
    return (side, side) if side * side == n else (n,)


def to_weights(model, *, encoder_layers: int | None = None, training: dict | None = None,
               metrics: dict | None = None, data_sha256: dict | None = None,
               input_shape: tuple[int, ...] | None = None) -> AutoencoderWeights:
    """The float32 master weights of a Keras Dense-chain autoencoder as a validated AutoencoderWeights.

    encoder_layers: how many layers form the encoder. None: up to the layer named "latent", else up to the
    narrowest layer (the first one, on ties) among all but the output layer.
    input_shape: image shape of the input; None: the Keras input's shape when it has more than one axis (e.g.
    Input((28, 28)) before a Flatten), else (s, s) when the input width is a square s*s, else (width,).
    """
    chain = _chain(model)
    dense = [layer for layer, _ in chain]
    activations = [spec for _, spec in chain]
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
    if encoder_layers is None:
        named = [i for i, layer in enumerate(dense[:-1]) if layer.name == LATENT_NAME]
        widths = [k.shape[1] for k in kernels[:-1]]
        encoder_layers = (named[0] if named else widths.index(min(widths))) + 1
    width = int(kernels[0].shape[0])
    weights = AutoencoderWeights(
        kernels, biases, activations, int(encoder_layers),
        input_shape=tuple(input_shape) if input_shape is not None else _default_input_shape(model, width),
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
