"""Who runs the benchmark: aefast's engine and its peers, each checked against the engine's fp32 answer.

One module for both `python -m aefast.bench` and `pytest bench/`: a `BuildContext` holds one model, its input
images and the heavy objects built from them (engines, Keras model, ONNX and TFLite files), built once and cached;
`BuildContext.prepare(contender, op, batch)` returns a `Prepared` zero-argument runner whose output has already
been checked, or raises `Skipped` saying why (package missing, engine not built, check failed).
"""
from __future__ import annotations

import functools
import importlib
import os
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable

import numpy as np

from ..engine.precisions import PRECISIONS
from ..engine.reference import reference_forward
from ..modelfile import AutoencoderWeights
from .models import OPERATIONS, op_end, op_layers
from ..errors import Skipped  # noqa: F401 (defined in aefast/errors.py)

# Largest relative RMS error ||y - ref|| / ||ref|| a contender of each precision may show against the reference.
# fp32: summation order only; fp16: weights rounded to 11 bits; bf16: weights and activations rounded to 8 bits of
# mantissa; int8: weights and activations quantized to 8 bits; int8w: weights only.
REL_RMS_TOLERANCE = {"fp32": 1e-4, "fp16": 1e-2, "bf16": 2e-2, "int8": 1e-1, "int8w": 1e-1}
# Which multiply-add instruction bounds a precision's arithmetic, i.e. which machine ceiling it is measured against
# (machine.PEAK_KINDS): fp16 and int8w weights are widened to fp32 and multiplied with FMA.
ARITHMETIC = {"fp32": "fp32", "fp16": "fp32", "int8w": "fp32", "bf16": "bf16", "int8": "int8"}


def arithmetic_of(precision: str) -> str:
    """"fp32", "bf16" or "int8": the arithmetic (and machine ceiling) of `precision`; a precision named after none
    of the known ones counts as fp32."""
    if precision in ARITHMETIC:
        return ARITHMETIC[precision]
    return next((a for a in ("int8", "bf16") if precision.startswith(a)), "fp32")


def tolerance(precision: str) -> float:
    """The check's largest relative RMS error for `precision`; an unknown precision gets its arithmetic's loosest."""
    if precision in REL_RMS_TOLERANCE:
        return REL_RMS_TOLERANCE[precision]
    return {"int8": 1e-1, "bf16": 2e-2, "fp32": 1e-2}[arithmetic_of(precision)]

Runner = Callable[[np.ndarray], np.ndarray]


@dataclass(frozen=True)
class Contender:
    """name: shown in tables; family: "aefast" or "peer"; precision: what the targets group by and the check's
    tolerance (`tolerance`); build(ctx, op, batch) returns a function (batch, in) float32 -> output, or raises
    Skipped."""

    name: str
    family: str
    precision: str
    build: Callable[["BuildContext", str, int], Runner]

    @property
    def arithmetic(self) -> str:
        return arithmetic_of(self.precision)


@dataclass
class Prepared:
    """A checked contender, ready to time: run() computes one batch of the stored input."""

    contender: Contender
    op: str
    batch: int
    run: Callable[[], np.ndarray]
    rel_rms_error: float
    max_abs_error: float
    reference: str
    details: dict  # for aefast engines: backend, isa, threads, nbytes


def _require(module: str):
    try:
        return importlib.import_module(module)
    except ImportError as e:
        raise Skipped(f"{module} is not installed ({e})") from None


def _tf():
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    return _require("tensorflow")


def _elu_inplace(h: np.ndarray) -> None:
    """h <- ELU(h) (alpha 1) without temporaries the size of h beyond one."""
    neg = np.minimum(h, 0)
    np.expm1(neg, out=neg)
    np.maximum(h, 0, out=h)
    h += neg


def _sigmoid_inplace(h: np.ndarray) -> None:
    np.negative(h, out=h)
    np.exp(h, out=h)
    h += 1
    np.reciprocal(h, out=h)


_NUMPY_ACTIVATIONS = {"elu": _elu_inplace, "sigmoid": _sigmoid_inplace, "linear": lambda h: None}


def numpy_forward(layers) -> Runner:
    """Plain float32 NumPy: x @ W + b then the activation in place, layer after layer."""
    steps = [(k, b, _NUMPY_ACTIVATIONS[a]) for k, b, a in layers]

    def run(x: np.ndarray) -> np.ndarray:
        h = x
        for k, b, activation in steps:
            h = h @ k
            h += b
            activation(h)
        return h
    return run


class BuildContext:
    """One model and its inputs, with the objects contenders need built lazily and cached."""

    def __init__(self, weights: AutoencoderWeights, images: np.ndarray, description: str = ""):
        if images.dtype != np.float32 or images.ndim != 2 or images.shape[1] != weights.input_size:
            raise ValueError(f"images must be float32 (N, {weights.input_size}), got {images.dtype} {images.shape}")
        self.weights = weights
        self.images = images
        self.description = description  # where the weights and images came from, for the records
        self._cache: dict = {}

    def _cached(self, key, make):
        if key not in self._cache:
            self._cache[key] = make()
        return self._cache[key]

    def inputs(self, batch: int) -> np.ndarray:
        """The first `batch` images, C-contiguous float32 (batch, in)."""
        if not 1 <= batch <= len(self.images):
            raise ValueError(f"batch {batch} outside 1..{len(self.images)} (the images loaded)")
        return self._cached(("x", batch), lambda: np.ascontiguousarray(self.images[:batch]))

    def engine(self, precision: str, backend: str, threads: int | None):
        def make():
            try:
                import aefast
                load = aefast.load
            except (ImportError, AttributeError) as e:
                raise Skipped(f"aefast.load is not available yet ({e})") from None
            try:
                return load(self.weights, precision=precision, backend=backend, threads=threads)
            except (ImportError, RuntimeError, ValueError, NotImplementedError) as e:
                raise Skipped(f"aefast.load(precision={precision!r}, backend={backend!r}) failed: {e}") from None
        return self._cached(("engine", precision, backend, threads), make)

    def reference(self, op: str, batch: int) -> tuple[np.ndarray, str]:
        """The answer every contender is checked against: the engine's fp32 C++ output (all threads);
        float64 NumPy when the engine is not available."""
        def make():
            x = self.inputs(batch)
            try:
                engine = self.engine("fp32", "cpp", None)
                return _as_rows(getattr(engine, op)(x), batch), "aefast cpp fp32"
            except Exception as e:  # no engine here (or a broken one): its contenders will fail their checks
                why = str(e) if isinstance(e, Skipped) else f"{type(e).__name__}: {e}"
                return (reference_forward(self.weights, x, 0, op_end(self.weights, op)),
                        f"numpy float64 (aefast cpp fp32 unavailable: {why})")
        return self._cached(("reference", op, batch), make)

    def reference_error(self, op: str, batch: int = 64) -> tuple[str, float]:
        """(reference name, its relative RMS error against float64 NumPy) on the first `batch` images: the
        reference every contender is checked against is itself checked."""
        batch = min(batch, len(self.images))
        ref, name = self.reference(op, batch)
        return name, check_errors(ref, reference_forward(self.weights, self.inputs(batch), 0,
                                                         op_end(self.weights, op)))[0]

    # --- peers' model objects -------------------------------------------------------------------------------
    def keras_model(self, op: str):
        """aefast.keras_io's float32 Keras model; for "compress", the same model cut at the latent layer."""
        def make():
            _tf()
            keras = _require("keras")
            from ..keras_io import load_keras
            model = load_keras(self.weights)
            if op == "reconstruct":
                return model
            dense = [layer for layer in model.layers if isinstance(layer, keras.layers.Dense)]
            return keras.Model(model.inputs, dense[self.weights.encoder_layers - 1].output)
        return self._cached(("keras", op), make)

    def tf_module(self, op: str):
        """A tf.Module whose `forward` (x: (None, in) float32) is MatMul + BiasAdd + activation per layer."""
        def make():
            tf = _tf()
            activations = {"elu": tf.nn.elu, "sigmoid": tf.math.sigmoid, "linear": tf.identity}
            layers = op_layers(self.weights, op)
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
        return self._cached(("tf", op), make)

    def tflite_model(self, op: str, dynamic_int8: bool) -> bytes:
        def make():
            tf = _tf()
            module = self.tf_module(op)
            converter = tf.lite.TFLiteConverter.from_concrete_functions(
                [module.forward.get_concrete_function()], module)
            if dynamic_int8:  # dynamic-range quantization: int8 weights, activations quantized at run time
                converter.optimizations = [tf.lite.Optimize.DEFAULT]
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                return converter.convert()
        return self._cached(("tflite", op, dynamic_int8), make)

    def onnx_model(self, op: str) -> bytes:
        """The network as an ONNX graph built directly: MatMul + Add + Elu/Sigmoid/Identity per layer."""
        def make():
            onnx = _require("onnx")
            from onnx import TensorProto, helper, numpy_helper
            layers = op_layers(self.weights, op)
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
        return self._cached(("onnx", op), make)

    def onnx_dynamic_int8_model(self, op: str) -> bytes:
        """`onnx_model(op)` through ONNX Runtime's dynamic quantization: per-output-channel int8 weights, uint8
        activations quantized at run time (the files live in a temporary folder, removed afterwards)."""
        def make():
            _require("onnxruntime")
            from onnxruntime.quantization import QuantType, quantize_dynamic
            with tempfile.TemporaryDirectory(prefix="aefast-bench-") as tmp:
                source, quantized = Path(tmp) / "fp32.onnx", Path(tmp) / "int8.onnx"
                source.write_bytes(self.onnx_model(op))
                quantize_dynamic(source, quantized, per_channel=True, weight_type=QuantType.QInt8)
                return quantized.read_bytes()
        return self._cached(("onnx dynamic int8", op), make)

    # --- preparation and check --------------------------------------------------------------------------------
    def prepare(self, contender: Contender, op: str, batch: int) -> Prepared:
        """Build `contender` for (op, batch), run it once on the stored input and check it; raise Skipped on failure."""
        if op not in OPERATIONS:
            raise ValueError(f"unknown operation {op!r}, expected one of {OPERATIONS}")
        x = self.inputs(batch)
        ref, ref_name = self.reference(op, batch)
        try:
            fn = contender.build(self, op, batch)
            y = _as_rows(fn(x), batch)
        except Skipped:
            raise
        except Exception as e:  # a peer library failing to convert or run is a result to report, not a crash
            raise Skipped(f"failed to build or run: {type(e).__name__}: {e}") from None
        rel, max_abs = check_errors(y, ref)
        tol = tolerance(contender.precision)
        if not rel <= tol:
            raise Skipped(f"check failed: relative RMS error {rel:.2e} > {tol:.0e} against {ref_name}")
        engine = getattr(fn, "__self__", None)
        details = {k: getattr(engine, k) for k in ("backend", "isa", "threads", "nbytes") if hasattr(engine, k)}
        return Prepared(contender, op, batch, functools.partial(fn, x), rel, max_abs, ref_name, details)


def _as_rows(y, batch: int) -> np.ndarray:
    y = np.asarray(y)
    if y.shape[:1] != (batch,):
        raise Skipped(f"output shape {y.shape} does not start with the batch size {batch}")
    return y.reshape(batch, -1)


def check_errors(y: np.ndarray, ref: np.ndarray) -> tuple[float, float]:
    """(relative RMS error, max abs error) of y against ref; inf when shapes differ or y is not finite."""
    if y.shape != ref.shape or not np.isfinite(y).all():
        return float("inf"), float("inf")
    diff = y.astype(np.float64) - ref
    scale = max(float(np.sqrt(np.mean(np.square(ref, dtype=np.float64)))), 1e-30)
    return float(np.sqrt(np.mean(diff * diff))) / scale, float(np.max(np.abs(diff), initial=0.0))


# --- the contenders ---------------------------------------------------------------------------------------------
def _aefast(precision: str, backend: str, threads: int | None):
    def build(ctx: BuildContext, op: str, batch: int) -> Runner:
        return getattr(ctx.engine(precision, backend, threads), op)
    return build


def _numpy(ctx: BuildContext, op: str, batch: int) -> Runner:
    return numpy_forward(op_layers(ctx.weights, op))


def _keras_predict_on_batch(ctx: BuildContext, op: str, batch: int) -> Runner:
    return ctx.keras_model(op).predict_on_batch


def _tf_xla(ctx: BuildContext, op: str, batch: int) -> Runner:
    tf = _tf()
    module = ctx.tf_module(op)
    compiled = tf.function(module.forward.python_function, jit_compile=True)
    return lambda x: compiled(tf.convert_to_tensor(x)).numpy()


def _onnxruntime(dynamic_int8: bool):
    def build(ctx: BuildContext, op: str, batch: int) -> Runner:
        ort = _require("onnxruntime")
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        # ORT's default, stated: idle intra-op workers spin (~40 ms measured) for the lowest latency; the timer
        # waits that spin out after each block, so it costs the next contender nothing (timing.settle).
        options.add_session_config_entry("session.intra_op.allow_spinning", "1")
        model = ctx.onnx_dynamic_int8_model(op) if dynamic_int8 else ctx.onnx_model(op)
        session = ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])
        output = session.get_outputs()[0].name
        return lambda x: session.run([output], {"x": x})[0]
    return build


def _tf_lite_interpreter_class():
    """tf.lite.Interpreter (XNNPACK delegate applied by default), while TensorFlow still has it."""
    interpreter = getattr(getattr(_tf(), "lite", None), "Interpreter", None)
    if interpreter is None:
        raise Skipped("this TensorFlow has no tf.lite.Interpreter (the litert contenders run the same models)")
    return interpreter


def _litert_interpreter_class():
    """LiteRT's interpreter (the `ai-edge-litert` package: XNNPACK delegate applied by default)."""
    return _require("ai_edge_litert.interpreter").Interpreter


def _tflite(dynamic_int8: bool, interpreter_class: Callable[[], type]):
    """A TFLite flatbuffer converted from the TF graph (dynamic-range int8 or fp32), run by `interpreter_class()`
    on all cores, its input resized to the batch."""
    def build(ctx: BuildContext, op: str, batch: int) -> Runner:
        cls = interpreter_class()
        model = ctx.tflite_model(op, dynamic_int8)
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


def aefast_contenders(precisions: Iterable[str]) -> tuple[Contender, ...]:
    """The C++ engine at every precision in `precisions`, on all cores and on one thread; the numba backend at fp32."""
    engines = []
    for p in precisions:
        engines += [Contender(f"aefast cpp {p}", "aefast", p, _aefast(p, "cpp", None)),
                    Contender(f"aefast cpp {p} t=1", "aefast", p, _aefast(p, "cpp", 1))]
    return (*engines, Contender("aefast numba fp32", "aefast", "fp32", _aefast("fp32", "numba", None)))


PEER_CONTENDERS: tuple[Contender, ...] = (
    Contender("numpy fp32", "peer", "fp32", _numpy),
    Contender("keras predict_on_batch", "peer", "fp32", _keras_predict_on_batch),
    Contender("tf.function xla", "peer", "fp32", _tf_xla),
    Contender("onnxruntime cpu", "peer", "fp32", _onnxruntime(False)),
    Contender("onnxruntime dynamic int8", "peer", "int8", _onnxruntime(True)),
    Contender("tflite fp32", "peer", "fp32", _tflite(False, _tf_lite_interpreter_class)),
    Contender("tflite dynamic int8", "peer", "int8", _tflite(True, _tf_lite_interpreter_class)),
    Contender("litert fp32", "peer", "fp32", _tflite(False, _litert_interpreter_class)),
    Contender("litert dynamic int8", "peer", "int8", _tflite(True, _litert_interpreter_class)),
)
# Every precision the engine offers (aefast.engine.precisions.PRECISIONS) gets its contenders, then the peers.
CONTENDERS: tuple[Contender, ...] = (*aefast_contenders(PRECISIONS), *PEER_CONTENDERS)
CONTENDERS_BY_NAME = {c.name: c for c in CONTENDERS}


def select_contenders(names: list[str] | None) -> list[Contender]:
    """The contenders named (all when `names` is None); ValueError names any unknown one."""
    if names is None:
        return list(CONTENDERS)
    unknown = [n for n in names if n not in CONTENDERS_BY_NAME]
    if unknown:
        raise ValueError(f"unknown contenders {unknown}; known: {list(CONTENDERS_BY_NAME)}")
    return [CONTENDERS_BY_NAME[n] for n in names]
