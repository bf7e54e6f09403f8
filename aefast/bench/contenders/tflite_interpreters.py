"""TFLite contenders: a flatbuffer converted from the TensorFlow graph (fp32, or dynamic-range int8), run by
TensorFlow's tf.lite.Interpreter and by LiteRT's (the `ai-edge-litert` package), both with XNNPACK."""
from __future__ import annotations

import os
import warnings
from typing import Callable

import numpy as np

from .base import Contender, Runner, Skipped, require, tensorflow
from .context import BuildContext
from .tensorflow_graphs import tf_module


def tflite_model(ctx: BuildContext, op: str, dynamic_int8: bool) -> bytes:
    def make():
        tf = tensorflow()
        module = tf_module(ctx, op)
        converter = tf.lite.TFLiteConverter.from_concrete_functions(
            [module.forward.get_concrete_function()], module)
        if dynamic_int8:  # dynamic-range quantization: int8 weights, activations quantized at run time
            converter.optimizations = [tf.lite.Optimize.DEFAULT]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return converter.convert()
    return ctx.cached(("tflite", op, dynamic_int8), make)


def _tf_lite_interpreter_class():
    """tf.lite.Interpreter (XNNPACK delegate applied by default), while TensorFlow still has it."""
    interpreter = getattr(getattr(tensorflow(), "lite", None), "Interpreter", None)
    if interpreter is None:
        raise Skipped("this TensorFlow has no tf.lite.Interpreter (the litert contenders run the same models)")
    return interpreter


def _litert_interpreter_class():
    """LiteRT's interpreter (the `ai-edge-litert` package: XNNPACK delegate applied by default)."""
    return require("ai_edge_litert.interpreter").Interpreter


def _tflite(dynamic_int8: bool, interpreter_class: Callable[[], type]):
    """A TFLite flatbuffer converted from the TF graph (dynamic-range int8 or fp32), run by `interpreter_class()`
    on all cores, its input resized to the batch."""
    def build(ctx: BuildContext, op: str, batch: int) -> Runner:
        cls = interpreter_class()
        model = tflite_model(ctx, op, dynamic_int8)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # tf.lite.Interpreter's deprecation notice
            interpreter = cls(model_content=model, num_threads=os.cpu_count())
        source = interpreter.get_input_details()[0]["index"]
        interpreter.resize_tensor_input(source, [batch, ctx.weights.input_size])
        interpreter.allocate_tensors()
        sink = interpreter.get_output_details()[0]["index"]

        def run(x: np.ndarray) -> np.ndarray:
            interpreter.set_tensor(source, x)
            interpreter.invoke()
            return interpreter.get_tensor(sink)
        return run
    return build


CONTENDERS = (
    Contender("tflite fp32", "peer", "fp32", _tflite(False, _tf_lite_interpreter_class)),
    Contender("tflite dynamic int8", "peer", "int8", _tflite(True, _tf_lite_interpreter_class)),
    Contender("litert fp32", "peer", "fp32", _tflite(False, _litert_interpreter_class)),
    Contender("litert dynamic int8", "peer", "int8", _tflite(True, _litert_interpreter_class)),
)
