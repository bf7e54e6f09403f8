"""`from_torch`: AutoencoderWeights from a PyTorch `nn.Sequential` of `Linear` layers and activations.

Read directly from the modules' parameters, with no ONNX step and no import of torch: a module is recognised by its
class, which must be one of torch.nn's own (a subclass may compute something else in its forward, so it is
refused). What fits: nested `Sequential`s, an optional leading `Flatten` (start_dim 1, end_dim -1), `Linear`
layers (kernel = weight.T, bias or zeros), each followed by at most one of `ReLU`, `LeakyReLU`
(negative_slope), `ELU` (alpha), `Sigmoid`, `Tanh`; `Identity` and `Dropout` (the identity at inference) anywhere;
an optional trailing `Unflatten`/`Flatten`. Anything else: UnsupportedModelError naming the module
(its index path in the Sequential, e.g. `[2][0]`) and why.
"""
from __future__ import annotations

import numpy as np

from ..errors import UnsupportedModelError
from ..model.activations import activation_spec
from .chain import DEFAULT_PIXEL_SCALE, DenseLayer, checked_input_shape, image_shape, weights_from_chain

_PASS_THROUGH = ("Identity", "Dropout")
_ACTIVATIONS = ("ReLU", "LeakyReLU", "ELU", "Sigmoid", "Tanh")


def _kind(module) -> str:
    """torch.nn's class name of `module`, or "" for a class from elsewhere (a user's subclass included)."""
    cls = type(module)
    return cls.__name__ if cls.__module__.startswith("torch.nn.") else ""


def _array(value, what: str) -> np.ndarray:
    """A parameter (torch tensor, or anything NumPy converts) as a float32 array."""
    if hasattr(value, "detach"):   # a torch tensor: off the graph, to the CPU, widened (bf16 has no NumPy dtype)
        value = value.detach().cpu().float().numpy()
    arr = np.asarray(value, dtype=np.float32)
    if not np.isfinite(arr).all():
        raise UnsupportedModelError(f"{what} holds NaN or infinite values")
    return arr


def _flatten(module, path: str):
    """(path, module) for every leaf of nested Sequentials, in order."""
    if _kind(module) == "Sequential":
        for i, child in enumerate(module):
            yield from _flatten(child, f"{path}[{i}]")
    else:
        yield path, module


def from_torch(module, input_shape=None, latent_layer: int | None = None,
               pixel_scale: float = DEFAULT_PIXEL_SCALE):
    """AutoencoderWeights (validated) for a PyTorch nn.Sequential (see the module docstring for what fits).

    input_shape: the image shape, e.g. (28, 28) or (1, 28, 28) (a leading 1 channel is dropped); default: the
    first Linear's in_features as a flat vector. latent_layer: the index of the Linear layer whose output is the
    code (default: the narrowest). pixel_scale: what uint8 pixels are divided by (default 255)."""
    source = f"{type(module).__name__} module"
    if _kind(module) != "Sequential":
        raise UnsupportedModelError(f"{source}: expected a torch.nn.Sequential of Linear layers and activations")
    layers: list[DenseLayer] = []
    activated = True
    leaves = list(_flatten(module, ""))
    for position, (path, m) in enumerate(leaves):
        kind = _kind(m)
        where = f"module {path} ({type(m).__name__})"
        if kind in _PASS_THROUGH:
            continue
        if kind in ("Flatten", "Unflatten"):
            first, last = not layers, position == len(leaves) - 1
            if kind == "Flatten" and first and (getattr(m, "start_dim", 1), getattr(m, "end_dim", -1)) != (1, -1):
                raise UnsupportedModelError(f"{source}: {where}: Flatten(start_dim={m.start_dim}, end_dim="
                                            f"{m.end_dim}); expected start_dim=1, end_dim=-1")
            if not (first and kind == "Flatten") and not (layers and last):
                raise UnsupportedModelError(f"{source}: {where}: a reshape between layers; expected Flatten first "
                                            "or Flatten/Unflatten last")
            continue
        if kind == "Linear":
            w = _array(m.weight, f"{source}: {where}: weight")
            if w.ndim != 2:
                raise UnsupportedModelError(f"{source}: {where}: weight of shape {w.shape}; expected 2-D")
            bias = getattr(m, "bias", None)
            b = np.zeros(w.shape[0], np.float32) if bias is None else _array(bias, f"{source}: {where}: bias")
            if b.shape != (w.shape[0],):
                raise UnsupportedModelError(f"{source}: {where}: bias of shape {b.shape}; expected ({w.shape[0]},)")
            if layers and w.shape[1] != layers[-1].kernel.shape[1]:
                raise UnsupportedModelError(f"{source}: {where}: takes {w.shape[1]} inputs but the layer before "
                                            f"gives {layers[-1].kernel.shape[1]}: mismatched shapes")
            layers.append(DenseLayer(np.ascontiguousarray(w.T), b, "linear", where))
            activated = False
            continue
        if kind in _ACTIVATIONS:
            if activated:
                raise UnsupportedModelError(f"{source}: {where}: an activation not right after a Linear layer; "
                                            "expected one activation per Linear")
            if kind == "LeakyReLU":
                spec = activation_spec("leaky_relu", float(m.negative_slope))
            elif kind == "ELU":
                spec = activation_spec("elu", float(m.alpha))
            else:
                spec = {"ReLU": "relu", "Sigmoid": "sigmoid", "Tanh": "tanh"}[kind]
            layers[-1].activation = spec
            activated = True
            continue
        raise UnsupportedModelError(
            f"{source}: {where}: not part of a dense chain; expected Linear layers with ReLU, LeakyReLU, ELU, "
            "Sigmoid, Tanh, Identity or Dropout between them (a convolution, normalization, ReLU6 or a module "
            "class of your own cannot be imported)")
    if not layers:
        raise UnsupportedModelError(f"{source}: holds no Linear layer")
    width = layers[0].kernel.shape[0]
    if input_shape is None:
        shape = (width,)
    else:
        dims = checked_input_shape(input_shape, width, source)
        shape = image_shape(dims, width, source, "input_shape") if len(dims) == 3 else dims
    return weights_from_chain(layers, shape, source, latent_layer, pixel_scale, {"imported_from": "pytorch"})
