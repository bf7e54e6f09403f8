"""The OpenVINO and PyTorch benchmark contenders, "your PyTorch model" and the peers' start-up chatter filter, on
small models: each contender agrees with aefast's fp32 answer within a named tolerance per precision, is set up as
docs/performance.md says (precision hint, thread count, quantized engine), and is skipped with the reason when its
package is missing. Nothing here times anything that matters."""
from __future__ import annotations

import sys

import numpy as np
import pytest

from aefast.bench.contenders import CONTENDERS_BY_NAME, BuildContext, Skipped
from aefast.bench.contenders.registry import CONTENDERS, EXTRA_CONTENDERS, PEER_CONTENDERS
from aefast.bench.models import BenchModel, load_bench_model, random_weights, your_torch_models
from aefast.bench.quiet import drop_chatter, native_chatter_filtered

SMALL_SIZES = (784, 64, 16, 64, 784)
# Largest relative RMS error against aefast's fp32 C++ answer on SMALL_SIZES and MNIST-like inputs, per precision:
# fp32 is summation order only; bf16 rounds weights and activations to 8 mantissa bits; int8 quantizes both (NNCF's
# static int8 fixes the activation ranges from calibration images, so it is the loosest of the int8 kinds).
TOLERANCE = {"fp32": 1e-5, "fp16": 2e-3, "bf16": 1.5e-2, "int8": 5e-2}
NNCF_TOLERANCE = 1e-1
OPENVINO = [c.name for c in PEER_CONTENDERS if c.name.startswith("openvino")]
PYTORCH = [c.name for c in PEER_CONTENDERS if c.name.startswith("pytorch")]


@pytest.fixture(scope="module")
def ctx():
    """A calibrated 784-64-16-64-784 model (random weights) on inputs shaped like MNIST digits (mostly 0, a stroke of
    bright pixels), so the int8 calibration and the inputs agree as they do on real images."""
    model = load_bench_model("small", None, SMALL_SIZES)
    rng = np.random.default_rng(5)
    images = np.where(rng.random((64, 784)) < 0.2, rng.random((64, 784)), 0).astype(np.float32)
    return BuildContext(model.weights, images, "small")


def _tolerance(name: str, precision: str) -> float:
    return NNCF_TOLERANCE if "nncf" in name else TOLERANCE[precision]


@pytest.mark.parametrize("name", OPENVINO)
def test_openvino_contenders_agree_with_aefast(ctx, name):
    pytest.importorskip("openvino")
    if "nncf" in name:
        pytest.importorskip("nncf")
    c = CONTENDERS_BY_NAME[name]
    for op, batch in (("reconstruct", 16), ("compress", 1)):
        p = ctx.prepare(c, op, batch)
        assert p.rel_rms_error <= _tolerance(name, c.precision), (op, p.rel_rms_error)
        assert p.run().shape == (batch, 784 if op == "reconstruct" else 16)
    if c.precision != "fp32":
        assert p.rel_rms_error > 1e-6   # it really ran in the lower precision


def _runtime_layers(compiled) -> set[tuple[str, str]]:
    """(layer type, runtime precision) of every node the CPU plugin compiled."""
    return {(op.get_rt_info()["layerType"].astype(str), op.get_rt_info()["runtimePrecision"].astype(str))
            for op in compiled.get_runtime_model().get_ops()}


def test_openvino_is_compiled_as_documented(ctx):
    """f32 states its precision hint (the plugin would pick bf16 on a CPU with AVX512_BF16) and its layers run in
    f32, bf16 in bf16; int8 weights stay i8 with the dynamic quantization group size 32; no layer transposes weights
    per call; every one uses aefast's thread count."""
    pytest.importorskip("openvino")
    threads = ctx.engine("fp32", "cpp", None).threads
    want = {"openvino f32": "f32", "openvino bf16": "bf16", "openvino int8 weights": "i8"}
    for name, precision in want.items():
        compiled = CONTENDERS_BY_NAME[name].build(ctx, "reconstruct", 4).compiled_model
        layers = _runtime_layers(compiled)
        assert {p for kind, p in layers if kind == "FullyConnected"} == {precision}, (name, layers)
        assert not any(kind == "Transpose" for kind, _ in layers), (name, layers)
        assert compiled.get_property("INFERENCE_NUM_THREADS") == threads
        if name == "openvino int8 weights":
            assert int(compiled.get_property("DYNAMIC_QUANTIZATION_GROUP_SIZE")) == 32


@pytest.mark.parametrize("name", PYTORCH)
def test_pytorch_contenders_agree_with_aefast(ctx, name):
    torch = pytest.importorskip("torch")
    c = CONTENDERS_BY_NAME[name]
    for op, batch in (("reconstruct", 16), ("compress", 1)):
        p = ctx.prepare(c, op, batch)
        assert p.rel_rms_error <= TOLERANCE[c.precision], (op, p.rel_rms_error)
        assert p.run().dtype == np.float32 and p.run().shape[0] == batch
    assert torch.get_num_threads() == ctx.engine("fp32", "cpp", None).threads
    if c.precision == "int8":
        assert torch.backends.quantized.engine == "x86"
    if c.precision != "fp32":
        assert p.rel_rms_error > 1e-6


@pytest.mark.parametrize("name", [c.name for c in EXTRA_CONTENDERS])
def test_aefast_from_torch_contenders_run_the_same_weights(ctx, name):
    pytest.importorskip("torch")
    c = CONTENDERS_BY_NAME[name]
    p = ctx.prepare(c, "reconstruct", 16)
    assert p.rel_rms_error <= TOLERANCE[c.precision]
    if c.precision == "fp32":
        assert p.rel_rms_error == 0   # bit for bit: the same weights, the same engine
    assert p.details["backend"] == "cpp"


def test_torch_module_is_the_model(ctx):
    torch = pytest.importorskip("torch")
    from aefast.bench.contenders.pytorch_modules import torch_module
    module = torch_module(ctx, "reconstruct")
    kinds = [type(m).__name__ for m in module]
    assert kinds == ["Linear", "ELU", "Linear", "ELU", "Linear", "ELU", "Linear"]
    np.testing.assert_array_equal(module[0].weight.detach().numpy(), ctx.weights.kernels[0].T)


def test_missing_packages_skip_with_the_reason(ctx, monkeypatch):
    monkeypatch.setitem(sys.modules, "openvino", None)   # import raises ImportError
    monkeypatch.setitem(sys.modules, "torch", None)
    monkeypatch.setitem(sys.modules, "nncf", None)
    fresh = BuildContext(ctx.weights, ctx.images)
    for name in OPENVINO:
        with pytest.raises(Skipped, match="openvino is not installed"):
            fresh.prepare(CONTENDERS_BY_NAME[name], "reconstruct", 2)
    for name in PYTORCH + [c.name for c in EXTRA_CONTENDERS]:
        with pytest.raises(Skipped, match="torch is not installed"):
            fresh.prepare(CONTENDERS_BY_NAME[name], "reconstruct", 2)


def test_one_process_holds_every_peer_library(ctx):
    """TensorFlow (Keras, LiteRT), ONNX Runtime, OpenVINO and PyTorch are built and run in one process, in turn and
    again: their thread pools do not break each other's answers (so no peer needs a child process)."""
    for package in ("tensorflow", "onnxruntime", "openvino", "torch", "ai_edge_litert.interpreter"):
        pytest.importorskip(package)
    names = ["keras predict_on_batch", "litert dynamic int8", "onnxruntime dynamic int8", "openvino f32",
             "pytorch fp32", "pytorch dynamic int8", "openvino int8 weights"]
    prepared = [ctx.prepare(CONTENDERS_BY_NAME[n], "reconstruct", 8) for n in names]
    ref, _ = ctx.reference("reconstruct", 8)
    for _ in range(2):
        for p in prepared:
            y = p.run().reshape(8, -1)
            rel = float(np.sqrt(np.mean((y - ref) ** 2)) / np.sqrt(np.mean(ref ** 2)))
            assert rel <= TOLERANCE[p.contender.precision], (p.contender.name, rel)


def test_your_torch_models_are_the_default_weights_with_elu_and_with_relu():
    model = BenchModel("default", random_weights(SMALL_SIZES), "random")
    elu, relu = your_torch_models(model)
    assert (elu.name, relu.name) == ("pytorch-elu", "pytorch-relu")
    assert elu.weights is model.weights
    assert relu.weights.activations == ["relu", "relu", "relu", "linear"]
    for a, b in zip(relu.weights.kernels, model.weights.kernels):
        np.testing.assert_array_equal(a, b)
    assert relu.weights.input_means is not None   # recalibrated for the ReLU activations


def test_chatter_lines_are_dropped_and_the_rest_kept_in_order(capfd):
    chatter = [b"WARNING: All log messages before absl::InitializeLog() is called are written to STDERR\n",
               b"I0000 00:00:1796669606.646252   16963 port.cc:153] oneDNN custom operations are on.\n",
               b"E0000 00:00:1796669617.919566   16963 cuda_platform.cc:52] failed call to cuInit: INTERNAL\n",
               b"INFO: Created TensorFlow Lite XNNPACK delegate for CPU.\n",
               b"W1207 18:53:06.194000 16259 torch/utils/cpp_extension.py:183] No CUDA runtime is found\n",
               b"WARNING:root:Please consider to run pre-processing before quantization. Refer to example\n"]
    kept = [b"E0000 00:00:1.5 1 session.cc:10] a real error\n", b"INFO: something else\n"]
    assert drop_chatter(b"".join([chatter[0], kept[0], *chatter[1:], kept[1]])) == b"".join(kept)
    import os
    with native_chatter_filtered():
        for line in [chatter[0], kept[0], *chatter[1:], kept[1]]:
            os.write(2, line)
    assert capfd.readouterr().err == b"".join(kept).decode()


def test_peers_match_the_engines_threads_or_the_usable_cores_without_it(ctx, monkeypatch):
    import os
    assert ctx.engine_threads() == ctx.engine("fp32", "cpp", None).threads
    fresh = BuildContext(ctx.weights, ctx.images)

    def no_engine(*args):
        raise Skipped("no engine here")
    monkeypatch.setattr(fresh, "engine", no_engine)
    assert fresh.engine_threads() == len(os.sched_getaffinity(0))


def test_nncf_contender_leaves_logging_handlers_and_levels_as_they_were(ctx):
    """Building the NNCF contender hides NNCF's INFO lines for the call only: no handler's level changes (a test
    runner's log capture on that logger kept capturing warnings) and the "nncf" logger's level is restored."""
    import logging
    pytest.importorskip("openvino")
    pytest.importorskip("nncf")
    logger = logging.getLogger("nncf")
    handler = logging.Handler(logging.NOTSET)
    logger.addHandler(handler)
    level = logger.level
    try:
        fresh = BuildContext(ctx.weights, ctx.images)
        fresh.prepare(CONTENDERS_BY_NAME["openvino static int8 (nncf)"], "compress", 2)
        assert handler.level == logging.NOTSET and logger.level == level
    finally:
        logger.removeHandler(handler)
