"""A chain of dense layers read from another tool, turned into AutoencoderWeights.

Both importers (ONNX graphs, PyTorch modules) reduce what they read to a list of DenseLayer, in order from input to
output, plus the image shape the first layer's input came from; `weights_from_chain` checks the chain and picks the
code layer. Errors are UnsupportedModelError naming `source` and the layer or node that does not fit.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ..errors import UnsupportedModelError
from ..model.validation import MAX_LAYERS
from ..model.weights import AutoencoderWeights

DEFAULT_PIXEL_SCALE = 255.0   # uint8 pixels / 255 -> the [0, 1] range such models are trained on


@dataclass
class DenseLayer:
    """y = activation(x @ kernel + bias): kernel (in, out) float32, bias (out,) float32, activation a canonical
    aefast activation string; `where` names the node or module it came from (for error messages)."""

    kernel: np.ndarray
    bias: np.ndarray
    activation: str
    where: str


def image_shape(dims, width: int, source: str, where: str) -> tuple[int, ...]:
    """aefast's input_shape for an input of `dims` (without the batch axis) that a model flattens to `width` values.

    (D,) -> (D,); (H, W) -> (H, W); a 3-D (A, B, C) is an image with one channel first (1, H, W) -> (H, W) or last
    (H, W, 1) -> (H, W); (H, W, C) with C > 1 is refused unless C is last is certain, because a (C, H, W) input is
    flattened in C, H, W order and aefast's (H, W, C) images in H, W, C order: the caller names the shape then."""
    dims = tuple(int(d) for d in dims)
    if not dims or any(d < 1 for d in dims) or math.prod(dims) != width:
        raise UnsupportedModelError(f"{source}: {where}: input shape {dims} does not hold the {width} values the "
                                    "first dense layer takes")
    if len(dims) <= 2:
        return dims
    if len(dims) == 3:
        if dims[0] == 1:
            return dims[1:]
        if dims[2] == 1:
            return dims[:2]
    raise UnsupportedModelError(
        f"{source}: {where}: input shape {dims} is ambiguous (channels first, as PyTorch flattens them, or last, as "
        f"aefast's (H, W, C) images are); expected input_shape=(H, W, C) or ({width},) from the caller")


def checked_input_shape(shape, width: int, source: str) -> tuple[int, ...]:
    """A caller's input_shape: positive integers whose product is `width`."""
    try:
        dims = tuple(int(d) for d in shape)
    except (TypeError, ValueError):
        raise UnsupportedModelError(f"{source}: input_shape must be a tuple of integers, got {shape!r:.100}") \
            from None
    if not dims or any(d < 1 for d in dims) or math.prod(dims) != width:
        raise UnsupportedModelError(f"{source}: input_shape {dims} does not hold the {width} values the first "
                                    "dense layer takes")
    return dims


def code_layer(layers: list[DenseLayer], latent_layer, source: str) -> int:
    """The index of the layer whose output is the code: `latent_layer` when given (0 .. L-2), else the narrowest
    layer before the last (the first of equals)."""
    n = len(layers)
    if latent_layer is None:
        widths = [layer.kernel.shape[1] for layer in layers[:-1]]
        return int(np.argmin(widths))
    if isinstance(latent_layer, bool) or not isinstance(latent_layer, (int, np.integer)) \
            or not 0 <= latent_layer <= n - 2:
        raise UnsupportedModelError(f"{source}: latent_layer must be a layer index in 0..{n - 2} (the layer whose "
                                    f"output is the code; the last layer is the output), got {latent_layer!r:.40}")
    return int(latent_layer)


def weights_from_chain(layers: list[DenseLayer], input_shape, source: str, latent_layer=None,
                       pixel_scale: float = DEFAULT_PIXEL_SCALE, training: dict | None = None) -> AutoencoderWeights:
    """AutoencoderWeights for `layers` (validated: widths chain, output width = input width, the value range).
    input_shape: the image shape, its product the first layer's input width."""
    if not 2 <= len(layers) <= MAX_LAYERS:
        raise UnsupportedModelError(f"{source}: found {len(layers)} dense layers, expected 2..{MAX_LAYERS} (an "
                                    "encoder and a decoder)")
    for prev, layer in zip(layers, layers[1:]):
        if layer.kernel.shape[0] != prev.kernel.shape[1]:
            raise UnsupportedModelError(f"{source}: {layer.where}: takes {layer.kernel.shape[0]} inputs but the "
                                        f"layer before ({prev.where}) gives {prev.kernel.shape[1]}: shapes do not "
                                        "chain")
    if layers[-1].kernel.shape[1] != layers[0].kernel.shape[0]:
        raise UnsupportedModelError(f"{source}: {layers[-1].where}: the output has {layers[-1].kernel.shape[1]} "
                                    f"values but the input {layers[0].kernel.shape[0]}; an autoencoder's are equal")
    code = code_layer(layers, latent_layer, source)
    weights = AutoencoderWeights(
        kernels=[np.ascontiguousarray(layer.kernel, np.float32) for layer in layers],
        biases=[np.ascontiguousarray(layer.bias, np.float32) for layer in layers],
        activations=[layer.activation for layer in layers], encoder_layers=code + 1,
        input_shape=tuple(input_shape), pixel_scale=pixel_scale, training=dict(training or {}))
    return weights.validate(source)
