"""OpenVINO contenders (CPU plugin): the network built as an `ov.Model` from opset-13 operations (MatMul + Add +
activation per layer, the input shape fixed to the timed batch), compiled with `INFERENCE_NUM_THREADS` equal to
aefast's engine's thread count and `PERFORMANCE_HINT=LATENCY` (one stream: a call uses every thread):

- "openvino f32": `INFERENCE_PRECISION_HINT=f32`, stated, since the plugin defaults to bf16 on CPUs with
  AVX512_BF16 or AMX;
- "openvino bf16": `INFERENCE_PRECISION_HINT=bf16`;
- "openvino int8 weights": each kernel stored as symmetric per-output-channel int8 with an f32 scale (the
  Constant(i8) -> Convert -> Multiply pattern that NNCF's weight compression writes, built directly), run with
  `DYNAMIC_QUANTIZATION_GROUP_SIZE=32` so activations are quantized per call in groups of 32 and the products run
  in int8 (the plugin's default group size, stated);
- "openvino static int8 (nncf)": `nncf.quantize` post-training static quantization, calibrated on the int8
  calibration images aefast's own int8 uses (models.calibration_images), f32 hint for what stays in float.
"""
from __future__ import annotations

import contextlib
import io
import logging

import numpy as np

from ...model.activations import parse_activation
from ..models import calibration_images, op_layers
from .base import Contender, Runner, require
from .context import BuildContext

DYNAMIC_QUANTIZATION_GROUP_SIZE = 32
NNCF_SUBSET = 300   # calibration samples (single images) nncf.quantize reads (its default is 300)


def _int8_kernel(ops, k: np.ndarray):
    """(in, out) float32 kernel -> the graph of its int8 weight-only form, (out, in) for MatMul(transpose_b)."""
    kt = np.ascontiguousarray(k.T)
    scale = np.maximum(np.abs(kt).max(axis=1, keepdims=True), np.finfo(np.float32).tiny) / 127
    q = np.clip(np.rint(kt / scale), -127, 127).astype(np.int8)
    return ops.multiply(ops.convert(ops.constant(q), np.float32), ops.constant(scale.astype(np.float32)))


def ov_model(ctx: BuildContext, op: str, batch: int, int8_weights: bool = False):
    """`op`'s layers as an ov.Model with input "x" of shape (batch, in); batch -1: a dynamic batch dimension."""
    ov = require("openvino")
    ops = require("openvino.opset13")
    layers = op_layers(ctx.weights, op)
    x = ops.parameter([batch, layers[0][0].shape[0]], np.float32, name="x")
    h = x
    for k, b, activation in layers:
        # weights stored (out, in) and multiplied with transpose_b, the layout of ONNX Gemm and PyTorch Linear that
        # the plugin turns into its FullyConnected without a Transpose node
        h = ops.matmul(h, _int8_kernel(ops, k) if int8_weights else ops.constant(np.ascontiguousarray(k.T)),
                       False, True)
        h = ops.add(h, ops.constant(b))
        kind, alpha = parse_activation(activation)
        if kind == "elu":
            h = ops.elu(h, alpha)
        elif kind == "leaky_relu":
            h = ops.prelu(h, ops.constant(np.float32([alpha])))
        elif kind != "linear":
            h = {"relu": ops.relu, "sigmoid": ops.sigmoid, "tanh": ops.tanh}[kind](h)
    return ov.Model([h], [x], "aefast_bench")


def nncf_static_int8(ctx: BuildContext, op: str):
    """`ov_model(op)` (dynamic batch) through nncf.quantize, calibrated on NNCF_SUBSET calibration images."""
    def make():
        nncf = require("nncf")
        images, _ = calibration_images(ctx.weights.input_size)
        samples = [images[i:i + 1] for i in range(min(NNCF_SUBSET, len(images)))]
        # Its INFO lines are hidden by the "nncf" logger's own level, set for the call and restored (not
        # nncf.set_log_level, which also sets the level of every handler on that logger for good); its progress
        # bars go to sys.stdout/stderr, redirected for the call.
        logger = logging.getLogger("nncf")
        level = logger.level
        logger.setLevel(logging.ERROR)
        try:
            with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
                return nncf.quantize(ov_model(ctx, op, -1), nncf.Dataset(samples), subset_size=len(samples))
        finally:
            logger.setLevel(level)
    return ctx.cached(("nncf static int8", op), make)


def _openvino(kind: str):
    def build(ctx: BuildContext, op: str, batch: int) -> Runner:
        ov = require("openvino")
        config = {"INFERENCE_NUM_THREADS": ctx.engine_threads(), "PERFORMANCE_HINT": "LATENCY",
                  "INFERENCE_PRECISION_HINT": "bf16" if kind == "bf16" else "f32"}
        if kind == "int8 weights":
            config["DYNAMIC_QUANTIZATION_GROUP_SIZE"] = DYNAMIC_QUANTIZATION_GROUP_SIZE
            model = ov_model(ctx, op, batch, int8_weights=True)
        elif kind == "nncf":
            model = nncf_static_int8(ctx, op).clone()
            model.reshape([batch, model.inputs[0].get_partial_shape()[1].get_length()])
        else:
            model = ov_model(ctx, op, batch)
        compiled = ov.Core().compile_model(model, "CPU", config)
        request = compiled.create_infer_request()

        def run(x: np.ndarray) -> np.ndarray:
            return request.infer({0: x}, share_inputs=True, share_outputs=False)[0]
        run.compiled_model = compiled   # for the record and the tests: its properties say what was compiled
        return run
    return build


CONTENDERS = (
    Contender("openvino f32", "peer", "fp32", _openvino("f32")),
    Contender("openvino bf16", "peer", "bf16", _openvino("bf16")),
    Contender("openvino int8 weights", "peer", "int8", _openvino("int8 weights")),
    Contender("openvino static int8 (nncf)", "peer", "int8", _openvino("nncf")),
)
