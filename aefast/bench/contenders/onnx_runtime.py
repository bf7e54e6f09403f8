"""ONNX Runtime contenders: the network as an ONNX graph built directly (fp32), and that graph through ONNX
Runtime's dynamic quantization (int8 weights, uint8 activations quantized at run time)."""
from __future__ import annotations

import tempfile
from pathlib import Path

from ..models import op_layers
from .base import Contender, Runner, require
from .context import BuildContext


def onnx_model(ctx: BuildContext, op: str) -> bytes:
    """The network as an ONNX graph built directly: MatMul + Add + Elu/Sigmoid/Identity per layer."""
    def make():
        onnx = require("onnx")
        from onnx import TensorProto, helper, numpy_helper
        layers = op_layers(ctx.weights, op)
        nodes, inits, h = [], [], "x"
        for i, (k, b, a) in enumerate(layers):
            inits += [numpy_helper.from_array(k, f"W{i}"), numpy_helper.from_array(b, f"b{i}")]
            nodes += [helper.make_node("MatMul", [h, f"W{i}"], [f"mm{i}"]),
                      helper.make_node("Add", [f"mm{i}", f"b{i}"], [f"z{i}"])]
            op_type = {"elu": "Elu", "sigmoid": "Sigmoid", "linear": "Identity"}[a]
            attrs = {"alpha": 1.0} if a == "elu" else {}
            nodes.append(helper.make_node(op_type, [f"z{i}"], [f"h{i}"], **attrs))
            h = f"h{i}"
        source = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", layers[0][0].shape[0]])
        sink = helper.make_tensor_value_info(h, TensorProto.FLOAT, ["N", layers[-1][0].shape[1]])
        graph = helper.make_graph(nodes, "aefast_bench", [source], [sink], inits)
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
        onnx.checker.check_model(model)
        return model.SerializeToString()
    return ctx.cached(("onnx", op), make)


def onnx_dynamic_int8_model(ctx: BuildContext, op: str) -> bytes:
    """`onnx_model(op)` through ONNX Runtime's dynamic quantization: per-output-channel int8 weights, uint8
    activations quantized at run time (the files live in a temporary folder, removed afterwards)."""
    def make():
        require("onnxruntime")
        from onnxruntime.quantization import QuantType, quantize_dynamic
        with tempfile.TemporaryDirectory(prefix="aefast-bench-") as tmp:
            source, quantized = Path(tmp) / "fp32.onnx", Path(tmp) / "int8.onnx"
            source.write_bytes(onnx_model(ctx, op))
            quantize_dynamic(source, quantized, per_channel=True, weight_type=QuantType.QInt8)
            return quantized.read_bytes()
    return ctx.cached(("onnx dynamic int8", op), make)


def _onnxruntime(dynamic_int8: bool):
    def build(ctx: BuildContext, op: str, batch: int) -> Runner:
        ort = require("onnxruntime")
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        # ORT's default, stated: idle intra-op workers spin (~40 ms measured) for the lowest latency; the timer
        # waits that spin out after each block, so it costs the next contender nothing (timing.settle).
        options.add_session_config_entry("session.intra_op.allow_spinning", "1")
        model = onnx_dynamic_int8_model(ctx, op) if dynamic_int8 else onnx_model(ctx, op)
        session = ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])
        output = session.get_outputs()[0].name
        return lambda x: session.run([output], {"x": x})[0]
    return build


CONTENDERS = (
    Contender("onnxruntime cpu", "peer", "fp32", _onnxruntime(False)),
    Contender("onnxruntime dynamic int8", "peer", "int8", _onnxruntime(True)),
)
