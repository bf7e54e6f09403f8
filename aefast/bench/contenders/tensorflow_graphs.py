"""TensorFlow contenders: Keras `predict_on_batch` on aefast.keras_io's model, and the same network as a
tf.function compiled with XLA. Their models are built once per BuildContext."""
from __future__ import annotations

from ..models import op_layers
from .base import Contender, Runner, require, tensorflow
from .context import BuildContext


def keras_model(ctx: BuildContext, op: str):
    """aefast.keras_io's float32 Keras model; for "compress", the same model cut at the latent layer."""
    def make():
        tensorflow()
        keras = require("keras")
        from ...keras_io import load_keras
        model = load_keras(ctx.weights)
        if op == "reconstruct":
            return model
        dense = [layer for layer in model.layers if isinstance(layer, keras.layers.Dense)]
        return keras.Model(model.inputs, dense[ctx.weights.encoder_layers - 1].output)
    return ctx.cached(("keras", op), make)


def tf_module(ctx: BuildContext, op: str):
    """A tf.Module whose `forward` (x: (None, in) float32) is MatMul + BiasAdd + activation per layer."""
    def make():
        tf = tensorflow()
        activations = {"elu": tf.nn.elu, "sigmoid": tf.math.sigmoid, "linear": tf.identity}
        layers = op_layers(ctx.weights, op)
        module = tf.Module()
        module.params = [(tf.Variable(k), tf.Variable(b)) for k, b, _ in layers]
        acts = [activations[a] for _, _, a in layers]

        @tf.function(input_signature=[tf.TensorSpec([None, layers[0][0].shape[0]], tf.float32)])
        def forward(x):
            for (k, b), act in zip(module.params, acts):
                x = act(tf.matmul(x, k) + b)
            return x
        module.forward = forward
        return module
    return ctx.cached(("tf", op), make)


def _keras_predict_on_batch(ctx: BuildContext, op: str, batch: int) -> Runner:
    return keras_model(ctx, op).predict_on_batch


def _tf_xla(ctx: BuildContext, op: str, batch: int) -> Runner:
    tf = tensorflow()
    module = tf_module(ctx, op)
    compiled = tf.function(module.forward.python_function, jit_compile=True)
    return lambda x: compiled(tf.convert_to_tensor(x)).numpy()


CONTENDERS = (
    Contender("keras predict_on_batch", "peer", "fp32", _keras_predict_on_batch),
    Contender("tf.function xla", "peer", "fp32", _tf_xla),
)
