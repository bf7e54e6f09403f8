"""Writing AutoencoderWeights as an ONNX graph (`export_onnx`, `onnx_model`).

The graph: input (batch, width) float32 with a symbolic batch dimension "N", then per layer one `Gemm` (data @
kernel + bias, kernel stored as the (in, out) float32 initializer `dense_{i}.kernel`, bias `dense_{i}.bias`, the
weights' float32 values bit for bit) and its activation node (Relu, LeakyRelu, Elu, Sigmoid, Tanh; none for
linear); output (batch, width') float32. Opset 17, IR version 8 (ONNX Runtime 1.13 and later run it).
part="encoder" is layers [0, encoder_layers): images -> codes; "decoder" is the rest: codes -> images.
Pixels enter as aefast's float input does (value / pixel_scale, [0, 1] for 8-bit images); the graph carries the
model's input_shape, encoder_layers and pixel_scale as metadata_props so that `read_onnx` restores them.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from .._io import write_bytes_atomic
from ..model.activations import parse_activation
from ..model.weights import AutoencoderWeights
from .onnx_read import META_ENCODER_LAYERS, META_INPUT_SHAPE, META_PIXEL_SCALE, _onnx

OPSET = 17
IR_VERSION = 8
PARTS = ("full", "encoder", "decoder")
DTYPES = ("float32", "float16")


def _activation_node(helper, spec: str, src: str, dst: str, i: int):
    kind, alpha = parse_activation(spec)
    op = {"relu": "Relu", "leaky_relu": "LeakyRelu", "elu": "Elu", "sigmoid": "Sigmoid", "tanh": "Tanh"}.get(kind)
    if op is None:
        return None
    attrs = {"alpha": alpha} if kind in ("elu", "leaky_relu") else {}
    return helper.make_node(op, [src], [dst], name=f"act_{i}", **attrs)


def onnx_model(weights: AutoencoderWeights, part: str = "full", dtype: str = "float32"):
    """The onnx.ModelProto for `weights` (validated first): the whole autoencoder, or its encoder or decoder.
    dtype "float16" stores the kernels as FLOAT16 initializers (half the size), each widened by a Cast(to=FLOAT)
    node, and keeps the biases float32: the graph then computes what aefast's precision="fp16" computes."""
    onnx = _onnx()
    from onnx import TensorProto, helper, numpy_helper

    if part not in PARTS:
        raise ValueError(f"part must be one of {PARTS}, got {part!r:.40}")
    if dtype not in DTYPES:
        raise ValueError(f"dtype must be one of {DTYPES}, got {dtype!r:.40}")
    weights.validate("export_onnx")
    n, enc = len(weights.kernels), weights.encoder_layers
    begin, end = {"full": (0, n), "encoder": (0, enc), "decoder": (enc, n)}[part]
    in_name = "codes" if part == "decoder" else "images"
    out_name = "codes" if part == "encoder" else "reconstruction"
    nodes, inits = [], []
    tensor = in_name
    for i in range(begin, end):
        k_name, b_name = f"dense_{i}.kernel", f"dense_{i}.bias"
        with np.errstate(over="ignore"):
            kernel = np.ascontiguousarray(weights.kernels[i], np.dtype(dtype))
        if not np.isfinite(kernel).all():
            raise ValueError(f"{k_name}: weights beyond the float16 range (|w| > 65504); export as float32")
        inits.append(numpy_helper.from_array(kernel, k_name))
        inits.append(numpy_helper.from_array(np.ascontiguousarray(weights.biases[i], np.float32), b_name))
        if dtype == "float16":   # widened once: ONNX Runtime folds a Cast of a constant at session start
            nodes.append(helper.make_node("Cast", [k_name], [f"{k_name}.f32"], name=f"{k_name}.cast",
                                          to=TensorProto.FLOAT))
            k_name = f"{k_name}.f32"
        last = i == end - 1
        dense_out = f"z_{i}"
        nodes.append(helper.make_node("Gemm", [tensor, k_name, b_name], [dense_out], name=f"dense_{i}"))
        act = _activation_node(helper, weights.activations[i], dense_out, f"h_{i}", i)
        tensor = dense_out
        if act is not None:
            nodes.append(act)
            tensor = f"h_{i}"
        if last:
            nodes.append(helper.make_node("Identity", [tensor], [out_name], name="output"))
    widths = weights.layer_sizes
    graph = helper.make_graph(
        nodes, f"aefast_{part}",
        [helper.make_tensor_value_info(in_name, TensorProto.FLOAT, ["N", widths[begin]])],
        [helper.make_tensor_value_info(out_name, TensorProto.FLOAT, ["N", widths[end]])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="aefast",
                              ir_version=IR_VERSION)
    if part == "full":   # an encoder or decoder alone is no autoencoder: read_onnx does not take it back
        props = {META_INPUT_SHAPE: list(weights.input_shape), META_ENCODER_LAYERS: enc,
                 META_PIXEL_SCALE: float(weights.pixel_scale)}
        helper.set_model_props(model, {k: json.dumps(v) for k, v in props.items()})
    onnx.checker.check_model(model)
    return model


def export_onnx(model: AutoencoderWeights | str | os.PathLike, path: str | os.PathLike,
                part: str = "full", dtype: str = "float32") -> Path:
    """Write `model` (AutoencoderWeights or a model file path, .safetensors or .onnx) to `path` as an ONNX graph,
    atomically; part: "full", "encoder" or "decoder" (see the module docstring); dtype: "float32" or "float16"
    weights (see onnx_model). Returns the path written."""
    if not isinstance(model, AutoencoderWeights):
        from .load import read_any

        model = read_any(model)
    return write_bytes_atomic(path, onnx_model(model, part, dtype).SerializeToString())
