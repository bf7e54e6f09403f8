"""Keras dense autoencoders on aefast's engine, two ways: `aefast.export_keras` (weights read from the layers) and
tf2onnx -> .onnx -> `aefast.load`; each precision agrees with Keras's own output within the relative-RMS tolerance
the PyTorch tests name (tests/test_import_torch.py, REL_RMS). Also: a Keras and a PyTorch ReLU autoencoder both
run compress and reconstruct in every precision on every backend of this machine.

tf2onnx 1.17's `from_keras` fails on Keras 3 models (KeyError 'keras_tensor_N', onnx/tensorflow-onnx#2448), so the
route tested is `tf2onnx.convert.from_function` on a tf.function that calls the model, and the command line
`python -m tf2onnx.convert --saved-model` on `model.export(...)` (docs/interop.md).
"""
from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

keras = pytest.importorskip("keras")
tf = pytest.importorskip("tensorflow")
tf2onnx = pytest.importorskip("tf2onnx")

import aefast  # noqa: E402
from aefast.engine import available_backends  # noqa: E402
from aefast.engine.precisions import PRECISIONS  # noqa: E402
from aefast.model import read_model  # noqa: E402

pytestmark = pytest.mark.train
L = keras.layers


def _torch_tests():
    """tests/test_import_torch.py as a module: its REL_RMS is the one set of tolerances both frameworks meet."""
    spec = importlib.util.spec_from_file_location("_aefast_torch_tolerances",
                                                  Path(__file__).with_name("test_import_torch.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


REL_RMS = _torch_tests().REL_RMS   # fp32 1e-5, fp16 1e-2, bf16 2e-2, int8 1e-1


def rel_rms(got, expect) -> float:
    got, expect = np.asarray(got, np.float64), np.asarray(expect, np.float64)
    return float(np.sqrt(np.mean((got - expect) ** 2) / np.mean(expect ** 2)))


def _randomized(model, seed: int):
    """`model` with Glorot kernels and small nonzero biases (zero biases would let tf2onnx drop the Add nodes)."""
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        if isinstance(layer, L.Dense):
            kernel = layer.get_weights()[0]
            limit = np.sqrt(6.0 / sum(kernel.shape))
            weights = [rng.uniform(-limit, limit, kernel.shape).astype(np.float32)]
            if layer.use_bias:
                weights.append((rng.standard_normal(kernel.shape[1]) * 0.1).astype(np.float32))
            layer.set_weights(weights)
    return model


# name -> (input shape, layers, the aefast activations, how many Keras layers compute the code)
MODELS = {
    # 2 Dense layers, a code of width 1
    "relu-3-1-3": ((3,), lambda: [L.Dense(1, activation="relu"), L.Dense(3, activation="sigmoid")],
                   ["relu", "sigmoid"], 1),
    # 3 Dense layers, activation layers: LeakyReLU with its own slope, ELU with alpha 1
    "leaky-100-3-1000-100": ((100,), lambda: [L.Dense(3), L.LeakyReLU(0.1), L.Dense(1000), L.ELU(),
                                              L.Dense(100, activation="tanh")],
                             ["leaky_relu(0.1)", "elu", "tanh"], 2),
    # 4 Dense layers: Keras's ELU layer with alpha != 1 (tf2onnx writes it as a where(x > 0, ...) subgraph)
    "elu-1000-100-3-100-1000": ((1000,), lambda: [L.Dense(100, activation="elu"), L.Dense(3), L.ELU(alpha=0.5),
                                                  L.Dense(100), L.Activation("tanh"),
                                                  L.Dense(1000, activation="sigmoid")],
                                ["elu", "elu(0.5)", "tanh", "sigmoid"], 3),
    # 6 Dense layers on 28x28 images: Flatten first, Reshape last, every activation, a Dense without a bias
    "mixed-28x28-6": ((28, 28), lambda: [L.Flatten(), L.Dense(100, activation="relu"),
                                         L.Dense(3, activation="leaky_relu"), L.Dense(1, activation="tanh"),
                                         L.Dense(3, use_bias=False), L.ReLU(), L.Dense(100, activation="elu"),
                                         L.Dense(784, activation="sigmoid"), L.Reshape((28, 28))],
                      ["relu", "leaky_relu(0.2)", "tanh", "relu", "elu", "sigmoid"], 4),
}


def keras_model(name: str, seed: int = 0):
    shape, layers, _, _ = MODELS[name]
    return _randomized(keras.Sequential([keras.Input(shape)] + layers(), name=name.replace("-", "_")), seed)


def keras_outputs(model, x, code_layers: int):
    """(codes, reconstruction (N, D)) as Keras computes them: the first `code_layers` layers give the code."""
    h = tf.constant(x)
    codes = None
    for i, layer in enumerate(model.layers):
        h = layer(h)
        if i + 1 == code_layers:
            codes = h.numpy()
    return codes, h.numpy().reshape(len(x), -1)


def to_onnx(model, path: Path) -> Path:
    """The tf2onnx route that works with Keras 3: from_function on a tf.function calling the model."""
    signature = [tf.TensorSpec((None, *model.input_shape[1:]), tf.float32, name="images")]
    fn = tf.function(lambda x: model(x, training=False), input_signature=signature, autograph=False)
    tf2onnx.convert.from_function(fn, input_signature=signature, opset=17, output_path=str(path))
    return path


def _images(model, n: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).random((n, *model.input_shape[1:]), dtype=np.float32)


def _check_engine(engine, x, codes, expect, precision, what):
    got_codes = engine.compress(x)
    got = engine.reconstruct(x).reshape(len(x), -1)
    errors = (rel_rms(got_codes, codes), rel_rms(got, expect))
    assert max(errors) < REL_RMS[precision], (what, precision, errors)


@pytest.mark.parametrize("name", list(MODELS))
@pytest.mark.parametrize("route", ["export_keras", "tf2onnx"])
def test_keras_model_runs_on_the_engine_within_the_named_tolerance(tmp_path, name, route):
    model = keras_model(name)
    _, _, activations, code_layers = MODELS[name]
    x = _images(model, 64, 1)
    codes, expect = keras_outputs(model, x, code_layers)
    if route == "export_keras":
        path = aefast.export_keras(model, tmp_path / "m.safetensors")
    else:
        path = to_onnx(model, tmp_path / "m.onnx")
    weights = read_model(path) if route == "export_keras" else aefast.read_onnx(path)
    assert weights.activations == activations
    assert weights.encoder_layers == sum(isinstance(layer, L.Dense) for layer in model.layers[:code_layers])
    shape = tuple(model.input_shape[1:])
    if len(shape) > 1:
        assert weights.input_shape == shape   # an image input before a Flatten: its shape, by either route
    else:
        assert np.prod(weights.input_shape) == shape[0]
    for precision in PRECISIONS:
        _check_engine(aefast.load(path, precision=precision), x, codes, expect, precision, route)


def test_both_routes_read_the_same_weights_bit_for_bit(tmp_path):
    model = keras_model("mixed-28x28-6", seed=3)
    a = read_model(aefast.export_keras(model, tmp_path / "m.safetensors"))
    b = aefast.read_onnx(to_onnx(model, tmp_path / "m.onnx"))
    assert a.activations == b.activations and a.encoder_layers == b.encoder_layers
    for ka, kb, ba, bb in zip(a.kernels, b.kernels, a.biases, b.biases):
        assert np.array_equal(ka, kb) and np.array_equal(ba, bb)


@pytest.mark.slow
def test_tf2onnx_command_line_on_a_keras_saved_model(tmp_path):
    """The documented command: model.export(DIR), then python -m tf2onnx.convert --saved-model DIR."""
    model = keras_model("leaky-100-3-1000-100", seed=4)
    model.export(str(tmp_path / "saved"), format="tf_saved_model", verbose=False)
    proc = subprocess.run([sys.executable, "-m", "tf2onnx.convert", "--saved-model", str(tmp_path / "saved"),
                           "--output", str(tmp_path / "m.onnx"), "--opset", "17"],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    x = _images(model, 32, 5)
    codes, expect = keras_outputs(model, x, MODELS["leaky-100-3-1000-100"][3])
    _check_engine(aefast.load(tmp_path / "m.onnx"), x, codes, expect, "fp32", "tf2onnx command line")


def test_tf2onnx_from_keras_where_it_works(tmp_path):
    """tf2onnx's own Keras entry point: its graph must load like the others once tf2onnx reads Keras 3 models."""
    model = keras_model("relu-3-1-3", seed=6)
    signature = (tf.TensorSpec((None, 3), tf.float32, name="images"),)
    try:
        proto, _ = tf2onnx.convert.from_keras(model, input_signature=signature, opset=17)
    except KeyError as e:
        pytest.skip(f"tf2onnx {tf2onnx.__version__}: from_keras fails on Keras {keras.__version__} models "
                    f"(KeyError {e}, onnx/tensorflow-onnx#2448); from_function is the route tested above")
    path = tmp_path / "m.onnx"
    path.write_bytes(proto.SerializeToString())
    x = _images(model, 16, 7)
    codes, expect = keras_outputs(model, x, 1)
    _check_engine(aefast.load(path), x, codes, expect, "fp32", "from_keras")


@pytest.mark.slow
def test_keras_and_pytorch_relu_autoencoders_run_in_every_precision_on_every_backend(tmp_path):
    """What the issue is done with: a Keras and a PyTorch ReLU autoencoder (784-100-16-100-784, sigmoid output)
    load and run compress/reconstruct in each precision on each backend here, against their framework's output."""
    torch = pytest.importorskip("torch")
    nn = torch.nn
    torch.manual_seed(8)
    seq = nn.Sequential(nn.Flatten(), nn.Linear(784, 100), nn.ReLU(), nn.Linear(100, 16), nn.ReLU(),
                        nn.Linear(16, 100), nn.ReLU(), nn.Linear(100, 784), nn.Sigmoid()).eval()
    x = np.random.default_rng(9).random((64, 28, 28), dtype=np.float32)
    with torch.no_grad():
        t = torch.from_numpy(x)
        torch_codes = seq[:5](t).numpy()
        torch_out = seq(t).numpy()
    kmodel = _randomized(keras.Sequential([keras.Input((28, 28)), L.Flatten(), L.Dense(100, activation="relu"),
                                           L.Dense(16, activation="relu"), L.Dense(100), L.ReLU(),
                                           L.Dense(784, activation="sigmoid")]), 10)
    keras_codes, keras_out = keras_outputs(kmodel, x, 3)
    sources = {
        "pytorch from_torch": (aefast.from_torch(seq, input_shape=(28, 28)), torch_codes, torch_out),
        "keras export_keras": (aefast.export_keras(kmodel, tmp_path / "k.safetensors"), keras_codes, keras_out),
        "keras tf2onnx": (to_onnx(kmodel, tmp_path / "k.onnx"), keras_codes, keras_out),
    }
    backends = available_backends()
    assert ("numba", "numba") in backends
    for what, (source, codes, expect) in sources.items():
        for backend, isa in backends:
            for precision in PRECISIONS:
                engine = aefast.load(source, precision=precision, backend=backend, isa=isa)
                assert engine.activations[:3] == ["relu"] * 3
                _check_engine(engine, x, codes, expect, precision, f"{what} {backend}/{isa}")


def test_a_mixed_float16_keras_graph_is_refused_naming_the_cast_and_export_keras_takes_the_model(tmp_path):
    """Under mixed_float16 tf2onnx writes the float16 computation itself (a Cast of the data, float16 weights): the
    reader refuses the first Cast by name rather than run something else; export_keras reads the float32 master
    weights instead."""
    from aefast.errors import UnsupportedModelError
    from aefast.keras_io import build_dense_chain

    model = build_dense_chain([16, 8, 16], ["relu", "sigmoid"], 1, hidden_dtype="mixed_float16")
    with pytest.raises(UnsupportedModelError, match=r"node #0 '[^']*Cast' \(Cast\): Cast is not part of a dense chain"):
        aefast.read_onnx(to_onnx(model, tmp_path / "m.onnx"))
    x = _images(model, 8, 11)
    engine = aefast.load(aefast.export_keras(model, tmp_path / "m.safetensors"), precision="fp16")
    assert rel_rms(engine.reconstruct(x), model(x).numpy()) < REL_RMS["fp16"]
