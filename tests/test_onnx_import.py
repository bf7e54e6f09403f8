"""ONNX in and out (aefast.interop): graphs built here with onnx.helper and NumPy, no network, no PyTorch.

Import of each activation and of MatMul+Add / Gemm layers (any transB, alpha, beta), 2..6 layers with widths 1, 3
and 100; every refusal with its error naming the node; hostile files refused without a large allocation;
aefast -> ONNX -> ONNX Runtime equals aefast; ONNX -> aefast -> ONNX keeps the weights bit for bit.
"""
from __future__ import annotations

import re

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

import aefast  # noqa: E402
from aefast.engine.reference import reference_forward  # noqa: E402
from aefast.errors import ModelFileError, UnsupportedModelError  # noqa: E402
from aefast.interop import onnx_model, parse_onnx, read_onnx  # noqa: E402

RNG = np.random.default_rng(7)


def _w(a, b, scale=None):
    return (RNG.standard_normal((a, b)) * (scale or np.sqrt(1.0 / a))).astype(np.float32)


def chain_graph(widths, acts, style="matmul", in_dims=None, flatten=False, opset=17, extra_nodes=(), alpha=1.0,
                beta=1.0, transB=0):
    """An .onnx ModelProto: dense layers of `widths` with ONNX activation ops `acts` (None, "Relu", ("LeakyRelu",
    {"alpha": 0.2}), ...); style "matmul" (MatMul + Add) or "gemm". Returns (model, [(kernel (in, out), bias)])."""
    nodes, inits, truth = [], [], []
    dims = in_dims or [widths[0]]
    x = "x"
    if flatten:
        nodes.append(helper.make_node("Flatten", [x], ["flat"], name="flatten", axis=1))
        x = "flat"
    for i, (a, b) in enumerate(zip(widths, widths[1:])):
        k, bias = _w(a, b), (RNG.standard_normal(b) * 0.1).astype(np.float32)
        truth.append((k, bias))
        if style == "matmul":
            inits += [numpy_helper.from_array(k, f"W{i}"), numpy_helper.from_array(bias, f"B{i}")]
            nodes.append(helper.make_node("MatMul", [x, f"W{i}"], [f"m{i}"], name=f"mm{i}"))
            nodes.append(helper.make_node("Add", [f"m{i}", f"B{i}"], [f"z{i}"], name=f"add{i}"))
        else:
            stored = (k.T.copy() if transB else k) / np.float32(alpha)
            inits += [numpy_helper.from_array(stored, f"W{i}"),
                      numpy_helper.from_array(bias / np.float32(beta), f"B{i}")]
            nodes.append(helper.make_node("Gemm", [x, f"W{i}", f"B{i}"], [f"z{i}"], name=f"gemm{i}",
                                          transB=transB, alpha=alpha, beta=beta))
        x = f"z{i}"
        act = acts[i]
        if act is not None:
            op, attrs = act if isinstance(act, tuple) else (act, {})
            nodes.append(helper.make_node(op, [x], [f"h{i}"], name=f"act{i}", **attrs))
            x = f"h{i}"
    nodes.append(helper.make_node("Identity", [x], ["y"], name="out"))
    nodes += list(extra_nodes)
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", *dims])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", widths[-1]])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)], ir_version=8)
    return model, truth


def run_ort(model, x):
    ort = pytest.importorskip("onnxruntime")
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return sess.run(None, {sess.get_inputs()[0].name: x})[0]


def rel_rms(a, b):
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return float(np.sqrt(np.mean((a - b) ** 2)) / max(np.sqrt(np.mean(b ** 2)), 1e-30))


ACTS = [(None, "linear"), ("Relu", "relu"), ("Sigmoid", "sigmoid"), ("Tanh", "tanh"), ("Elu", "elu"),
        (("Elu", {"alpha": 0.5}), "elu(0.5)"), (("LeakyRelu", {"alpha": 0.2}), "leaky_relu(0.2)"),
        ("LeakyRelu", "leaky_relu(0.01)"), ("Identity", "linear"),
        (("Clip", {}), None)]   # Clip without bounds is refused below (not ReLU)


@pytest.mark.parametrize("op, spec", [a for a in ACTS if a[1] is not None])
def test_each_activation_imports_and_matches_onnx_runtime(op, spec):
    model, truth = chain_graph([6, 3, 6], [op, "Sigmoid"])
    w = parse_onnx(model.SerializeToString(), "m.onnx")
    assert w.activations == [spec, "sigmoid"]
    for (k, b), wk, wb in zip(truth, w.kernels, w.biases):
        assert np.array_equal(k, wk) and np.array_equal(b, wb)
    x = RNG.random((5, 6), dtype=np.float32)
    assert rel_rms(reference_forward(w, x), run_ort(model, x)) < 1e-6


def test_clip_as_relu_imports_and_relu6_is_refused():
    lo = numpy_helper.from_array(np.array(0, np.float32), "lo")
    six = numpy_helper.from_array(np.array(6, np.float32), "six")
    model, _ = chain_graph([4, 2, 4], [None, None])
    g = model.graph
    g.initializer.extend([lo, six])
    # Rewire layer 0 through Clip(0) and layer 1 through Clip(0, 6).
    g.node.insert(2, helper.make_node("Clip", ["z0", "lo"], ["c0"], name="relu_clip"))
    g.node[3].input[0] = "c0"
    assert parse_onnx(model.SerializeToString(), "ok.onnx").activations[0] == "relu"
    g.node.insert(5, helper.make_node("Clip", ["z1", "lo", "six"], ["c1"], name="relu6"))
    g.node[6].input[0] = "c1"
    with pytest.raises(UnsupportedModelError, match=r"'relu6' \(Clip\): Clip\(0.0, 6.0\) \(ReLU6"):
        parse_onnx(model.SerializeToString(), "r6.onnx")


@pytest.mark.parametrize("widths", [[1, 1], [3, 1, 3], [100, 3, 1, 3, 100], [3, 100, 1, 100, 3, 100, 3]])
@pytest.mark.parametrize("style", ["matmul", "gemm"])
def test_two_to_six_layers_odd_widths(widths, style):
    acts = (["Relu", "Tanh", ("LeakyRelu", {"alpha": 0.1}), ("Elu", {"alpha": 2.0}), None, "Sigmoid"]
            * 2)[:len(widths) - 1]
    if len(widths) == 2:
        widths = [1, 1, 1]   # an autoencoder needs an encoder and a decoder: two layers of width 1
        acts = ["Relu", None]
    model, truth = chain_graph(widths, acts, style=style)
    w = parse_onnx(model.SerializeToString(), "m.onnx")
    assert w.layer_sizes == widths
    narrow = int(np.argmin(widths[1:-1]))
    assert w.encoder_layers == narrow + 1   # the code layer: the narrowest
    x = RNG.random((4, widths[0]), dtype=np.float32)
    assert rel_rms(reference_forward(w, x), run_ort(model, x)) < 1e-6


@pytest.mark.parametrize("transB, alpha, beta", [(1, 1.0, 1.0), (0, 0.5, 2.0), (1, 3.0, 0.25)])
def test_gemm_transB_alpha_beta(transB, alpha, beta):
    model, truth = chain_graph([8, 3, 8], ["Relu", "Sigmoid"], style="gemm", transB=transB, alpha=alpha,
                               beta=beta)
    w = parse_onnx(model.SerializeToString(), "m.onnx")
    x = RNG.random((6, 8), dtype=np.float32)
    assert rel_rms(reference_forward(w, x), run_ort(model, x)) < 1e-6


def test_latent_layer_and_input_shape_from_graph_and_arguments():
    model, _ = chain_graph([4, 3, 2, 3, 4], ["Relu"] * 3 + [None], in_dims=[1, 2, 2], flatten=True)
    data = model.SerializeToString()
    w = parse_onnx(data, "m.onnx")
    assert w.encoder_layers == 2 and w.input_shape == (2, 2)
    w = parse_onnx(data, "m.onnx", latent_layer=0, input_shape=(4,), pixel_scale=1.0)
    assert w.encoder_layers == 1 and w.input_shape == (4,) and w.pixel_scale == 1.0
    with pytest.raises(UnsupportedModelError, match=r"latent_layer must be a layer index in 0\.\.2"):
        parse_onnx(data, "m.onnx", latent_layer=3)
    with pytest.raises(UnsupportedModelError, match=r"input_shape \(3, 3\) does not hold the 4 values"):
        parse_onnx(data, "m.onnx", input_shape=(3, 3))
    model, _ = chain_graph([12, 2, 12], ["Relu", None], in_dims=[3, 2, 2], flatten=True)
    with pytest.raises(UnsupportedModelError, match=r"input shape \(3, 2, 2\) is ambiguous"):
        parse_onnx(model.SerializeToString(), "c.onnx")


def _refused(model, pattern, cls=UnsupportedModelError):
    with pytest.raises(cls, match=pattern):
        parse_onnx(model.SerializeToString(), "bad.onnx")


def test_refuses_residual_add_naming_the_branch():
    model, _ = chain_graph([4, 4, 4, 4], ["Relu", "Relu", None])
    g = model.graph   # h1 = relu(h0 @ W1 + b1) + h0: h0 feeds mm1 and the residual Add
    g.node.insert(6, helper.make_node("Add", ["h1", "h0"], ["res"], name="residual"))
    g.node[7].input[0] = "res"
    _refused(model, r"bad.onnx: node #\d+ 'residual' \(Add\): tensor 'h0' feeds 2 nodes .*skip connection")


def test_refuses_conv_and_batchnorm():
    model, _ = chain_graph([4, 2, 4], ["Relu", None])
    g = model.graph
    g.node.insert(2, helper.make_node("BatchNormalization", ["z0", "s", "b", "m", "v"], ["bn"], name="bn0"))
    g.node[3].input[0] = "bn"
    _refused(model, r"'bn0' \(BatchNormalization\): BatchNormalization is not part of a dense chain")
    model, _ = chain_graph([4, 2, 4], ["Relu", None])
    model.graph.node.insert(0, helper.make_node("Conv", ["x", "k"], ["c"], name="conv"))
    model.graph.node[1].input[0] = "c"
    _refused(model, r"'conv' \(Conv\): Conv is not part of a dense chain")


def test_refuses_weight_that_is_a_graph_input():
    model, _ = chain_graph([4, 2, 4], ["Relu", None])
    g = model.graph
    w0 = [t for t in g.initializer if t.name == "W0"][0]
    g.initializer.remove(w0)
    g.input.append(helper.make_tensor_value_info("W0", TensorProto.FLOAT, [4, 2]))
    _refused(model, r"'mm0' \(MatMul\): its weight 'W0' is a graph input")
    g.initializer.append(w0)   # an initializer also listed as an input can be replaced at run time
    _refused(model, r"'mm0' \(MatMul\): its weight 'W0' is a graph input \(an initializer also listed")


def test_refuses_mismatched_shapes_bias_and_chain():
    model, _ = chain_graph([4, 2, 4], ["Relu", None])
    g = model.graph
    w1 = [t for t in g.initializer if t.name == "W1"][0]
    w1.CopyFrom(numpy_helper.from_array(_w(3, 4), "W1"))
    _refused(model, r"'mm1' \(MatMul\): takes 3 inputs but receives 2: mismatched shapes")
    model, _ = chain_graph([4, 2, 4], ["Relu", None])
    b0 = [t for t in model.graph.initializer if t.name == "B0"][0]
    b0.CopyFrom(numpy_helper.from_array(np.zeros(3, np.float32), "B0"))
    _refused(model, r"'add0' \(Add\): bias of shape \[3\] does not broadcast to the layer's 2 outputs")
    model, _ = chain_graph([4, 2, 3], ["Relu", None])
    _refused(model, r"the output has 3 values but the input 4")


def test_refuses_opset_and_dtypes():
    model, _ = chain_graph([4, 2, 4], ["Relu", None], opset=7)
    _refused(model, r"opset 7 of the default domain; this reader takes opsets 9\.\.")
    model, _ = chain_graph([4, 2, 4], ["Relu", None])
    model.graph.input[0].type.tensor_type.elem_type = TensorProto.DOUBLE
    _refused(model, r"graph input 'x' has element type DOUBLE; expected FLOAT")
    model, _ = chain_graph([4, 2, 4], ["Relu", None])
    w0 = [t for t in model.graph.initializer if t.name == "W0"][0]
    w0.CopyFrom(numpy_helper.from_array(_w(4, 2).astype(np.float64), "W0"))
    _refused(model, r"'mm0' \(MatMul\): tensor 'W0' has data type DOUBLE; expected FLOAT or FLOAT16")
    model, _ = chain_graph([4, 2, 4], ["Relu", None])
    model.graph.node[0].domain = "com.microsoft"
    _refused(model, r"'mm0' \(MatMul\): operator domain 'com.microsoft'")


def test_float16_weights_are_widened_exactly():
    model, truth = chain_graph([4, 2, 4], ["Relu", None])
    w0 = [t for t in model.graph.initializer if t.name == "W0"][0]
    half = truth[0][0].astype(np.float16)
    w0.CopyFrom(numpy_helper.from_array(half, "W0"))
    w = parse_onnx(model.SerializeToString(), "m.onnx")
    assert np.array_equal(w.kernels[0], half.astype(np.float32))


def test_hostile_files_are_refused_without_a_large_allocation(tmp_path):
    import tracemalloc

    model, _ = chain_graph([4, 2, 4], ["Relu", None])
    data = model.SerializeToString()
    for cut in (1, len(data) // 3, len(data) - 1):   # truncated protobuf
        with pytest.raises(ModelFileError, match="bad.onnx: "):
            parse_onnx(data[:cut], "bad.onnx")
    with pytest.raises(ModelFileError, match="holds no ONNX graph"):
        parse_onnx(b"", "bad.onnx")
    # A tensor declaring 2^20 x 2^20 float32 values (4 TiB) that holds 32 bytes.
    w0 = [t for t in model.graph.initializer if t.name == "W0"][0]
    del w0.dims[:]
    w0.dims.extend([1 << 20, 1 << 20])
    tracemalloc.start()
    with pytest.raises(UnsupportedModelError, match=r"tensor 'W0' declares shape \[1048576, 1048576\] "
                                                    r"\(4398046511104 bytes\) but holds 32 bytes"):
        parse_onnx(model.SerializeToString(), "huge.onnx")
    assert tracemalloc.get_traced_memory()[1] < 10 << 20
    tracemalloc.stop()
    # External data: outside the folder, and larger than its file.
    for location, pattern in (("../secret.bin", "lies outside the model's folder"),
                              ("/etc/passwd", "lies outside the model's folder"),
                              ("w.bin", r"is not a regular file of at least 32 bytes")):
        model, _ = chain_graph([4, 2, 4], ["Relu", None])
        w0 = [t for t in model.graph.initializer if t.name == "W0"][0]
        w0.ClearField("raw_data")
        w0.data_location = TensorProto.EXTERNAL
        w0.external_data.add(key="location", value=location)
        (tmp_path / "w.bin").write_bytes(b"\0" * 8)
        path = tmp_path / "m.onnx"
        path.write_bytes(model.SerializeToString())
        with pytest.raises(UnsupportedModelError, match=pattern):
            read_onnx(path)


def test_external_data_inside_the_folder_is_read(tmp_path):
    model, truth = chain_graph([4, 2, 4], ["Relu", None])
    w0 = [t for t in model.graph.initializer if t.name == "W0"][0]
    w0.ClearField("raw_data")
    w0.data_location = TensorProto.EXTERNAL
    w0.external_data.add(key="location", value="w.bin")
    w0.external_data.add(key="offset", value="8")
    (tmp_path / "w.bin").write_bytes(b"\xff" * 8 + truth[0][0].tobytes())
    (tmp_path / "m.onnx").write_bytes(model.SerializeToString())
    assert np.array_equal(read_onnx(tmp_path / "m.onnx").kernels[0], truth[0][0])


def small_model(acts):
    w = aefast.engine.reference.random_weights((12, 5, 3, 5, 12), seed=3)
    w.activations = list(acts)
    return w.validate("test")


@pytest.mark.parametrize("part", ["full", "encoder", "decoder"])
def test_aefast_to_onnx_runtime_equals_aefast(tmp_path, part):
    w = small_model(["elu", "elu", "elu", "sigmoid"])
    path = aefast.export_onnx(w, tmp_path / f"{part}.onnx", part=part)
    model = onnx.load(path)
    engine = aefast.load(w)
    x = RNG.random((37, 12), dtype=np.float32)
    expect = {"full": engine.reconstruct, "encoder": engine.compress,
              "decoder": lambda v: engine.decompress(engine.compress(v))}[part](x)
    feed = engine.compress(x) if part == "decoder" else x
    got = run_ort(model, feed)
    assert got.shape == expect.shape
    assert rel_rms(got, expect) < 1e-5
    assert run_ort(model, feed[:1]).shape[0] == 1   # dynamic batch


@pytest.mark.parametrize("acts", [["relu", "tanh", "leaky_relu(0.2)", "linear"],
                                  ["elu(0.5)", "sigmoid", "elu", "linear"]])
def test_new_activations_export_to_onnx_runtime_equal_reference(tmp_path, acts):
    w = small_model(acts)
    x = RNG.random((9, 12), dtype=np.float32)
    got = run_ort(onnx_model(w), x)
    assert rel_rms(got, reference_forward(w, x)) < 1e-6


@pytest.mark.parametrize("style, transB", [("matmul", 0), ("gemm", 0), ("gemm", 1)])
def test_onnx_to_aefast_to_onnx_keeps_weights_bit_for_bit(tmp_path, style, transB):
    model, truth = chain_graph([10, 4, 1, 4, 10], ["Relu", ("LeakyRelu", {"alpha": 0.3}), ("Elu", {"alpha": 0.7}),
                                                   "Sigmoid"], style=style, transB=transB)
    src = tmp_path / "in.onnx"
    src.write_bytes(model.SerializeToString())
    w = aefast.read_onnx(src)
    out = aefast.export_onnx(src, tmp_path / "out.onnx")
    again = onnx.load(out)
    inits = {t.name: numpy_helper.to_array(t) for t in again.graph.initializer}
    for i, (k, b) in enumerate(truth):
        assert inits[f"dense_{i}.kernel"].tobytes() == k.tobytes()
        assert inits[f"dense_{i}.bias"].tobytes() == b.tobytes()
    back = aefast.read_onnx(out)
    assert back.activations == w.activations == ["relu", "leaky_relu(0.3)", "elu(0.7)", "sigmoid"]
    assert back.encoder_layers == w.encoder_layers == 2
    x = RNG.random((3, 10), dtype=np.float32)
    assert np.array_equal(run_ort(again, x), run_ort(onnx_model(w), x))


def test_load_accepts_onnx_with_every_activation(tmp_path):
    w = small_model(["elu", "elu", "elu", "sigmoid"])
    path = aefast.export_onnx(w, tmp_path / "m.onnx")
    x = RNG.random((4, 12), dtype=np.float32)
    assert np.array_equal(aefast.load(path).reconstruct(x), aefast.load(w).reconstruct(x))
    relu = small_model(["relu", "leaky_relu(0.1)", "tanh", "elu(0.5)"])
    got = aefast.load(aefast.export_onnx(relu, tmp_path / "relu.onnx")).reconstruct(x)
    assert rel_rms(got, reference_forward(relu, x)) < 1e-5


def test_an_engine_build_without_the_kernels_refuses_by_name(monkeypatch):
    """A compiled core without ACTIVATIONS (built before the parametric activations) runs only the plain three."""
    from types import SimpleNamespace

    from aefast.engine import api

    monkeypatch.setattr(api._backend, "core", SimpleNamespace())
    api.check_engine_activations(["elu", "linear", "sigmoid"], "cpp", "old.onnx")
    for act in ("relu", "elu(0.5)"):
        with pytest.raises(UnsupportedModelError, match=rf"old.onnx: layer 1 \(dense_1\): activation '{re.escape(act)}' "
                                                        r"is not supported by this engine build \(the cpp backend "
                                                        r"runs linear, elu, sigmoid, without parameters\)"):
            api.check_engine_activations(["elu", act], "cpp", "old.onnx")


def test_a_cycle_is_refused_instead_of_walked_forever():
    """x -> Identity -> a -> Identity -> x: every tensor has one consumer, so only the cycle check ends the walk."""
    model, _ = chain_graph([4, 2, 4], ["Relu", None])
    g = model.graph
    g.node[0].input[0] = "a"
    g.node.insert(0, helper.make_node("Identity", ["x"], ["a"], name="there"))
    g.node.insert(1, helper.make_node("Identity", ["a"], ["x"], name="back"))
    _refused(model, r"'there' \(Identity\): is reached twice: the graph has a cycle|tensor 'a' feeds 2 nodes")
    g.node[2].input[0] = "b"   # mm0 off the loop: a feeds 'back' alone
    _refused(model, r"'there' \(Identity\): is reached twice: the graph has a cycle")
    model, _ = chain_graph([4, 2, 4], ["Relu", None])
    model.graph.node.append(helper.make_node("Identity", ["y"], ["x"], name="after"))
    _refused(model, r"'after' \(Identity\): takes the graph output 'y'")


def test_constant_node_weights_leading_reshape_and_trailing_reshape_import():
    model, truth = chain_graph([6, 3, 6], ["Tanh", None], in_dims=[2, 3])
    g = model.graph
    w0 = [t for t in g.initializer if t.name == "W0"][0]
    g.initializer.remove(w0)   # the weight as a Constant node instead of an initializer
    g.node.insert(0, helper.make_node("Constant", [], ["W0"], name="w0", value=w0))
    g.initializer.append(numpy_helper.from_array(np.array([0, 6], np.int64), "flat_shape"))
    g.node.insert(1, helper.make_node("Reshape", ["x", "flat_shape"], ["flat"], name="flatten"))
    g.node[2].input[0] = "flat"
    g.initializer.append(numpy_helper.from_array(np.array([-1, 2, 3], np.int64), "img_shape"))
    g.node[-1].output[0] = "y_flat"
    g.node.append(helper.make_node("Reshape", ["y_flat", "img_shape"], ["y"], name="unflatten"))
    w = parse_onnx(model.SerializeToString(), "m.onnx")
    assert w.input_shape == (2, 3) and w.activations == ["tanh", "linear"]
    assert np.array_equal(w.kernels[0], truth[0][0])


def test_refuses_transA_a_second_activation_a_bad_reshape_and_a_dangling_node():
    model, _ = chain_graph([4, 2, 4], ["Relu", None], style="gemm")
    model.graph.node[0].attribute.append(helper.make_attribute("transA", 1))
    _refused(model, r"'gemm0' \(Gemm\): Gemm with transA=1")
    model, _ = chain_graph([4, 2, 4], ["Relu", None])
    g = model.graph
    g.node.insert(3, helper.make_node("Tanh", ["h0"], ["t0"], name="twice"))
    g.node[4].input[0] = "t0"
    _refused(model, r"'twice' \(Tanh\): Tanh is not right after a dense layer")
    model, _ = chain_graph([4, 2, 4], ["Relu", None])
    g = model.graph
    g.initializer.append(numpy_helper.from_array(np.array([2, 2], np.int64), "s"))
    g.node.insert(0, helper.make_node("Reshape", ["x", "s"], ["r"], name="rs"))
    g.node[1].input[0] = "r"
    _refused(model, r"'rs' \(Reshape\): Reshape to \[2, 2\]; expected \(batch, 4\)")
    model, _ = chain_graph([4, 2, 4], ["Relu", None])
    model.graph.node.append(helper.make_node("Relu", ["nowhere"], ["unused"], name="stray"))
    _refused(model, r"'stray' \(Relu\): is not on the chain")


@pytest.mark.parametrize("part", ["full", "encoder", "decoder"])
def test_float16_export_runs_like_the_fp16_engine_and_reads_back(tmp_path, part):
    w = small_model(["relu", "tanh", "leaky_relu(0.2)", "sigmoid"])
    model = onnx.load(aefast.export_onnx(w, tmp_path / "h.onnx", part=part, dtype="float16"))
    halves = [t.name for t in model.graph.initializer if t.data_type == TensorProto.FLOAT16]
    assert halves and all(name.endswith(".kernel") for name in halves)
    assert len(halves) == len(model.graph.initializer) // 2   # biases stay float32, as in the fp16 engine
    engine = aefast.load(w, precision="fp16")
    x = RNG.random((11, 12), dtype=np.float32)
    feed = engine.compress(x) if part == "decoder" else x
    expect = {"full": engine.reconstruct, "encoder": engine.compress, "decoder": engine.decompress}[part](feed)
    assert rel_rms(run_ort(model, feed), expect) < 1e-5
    if part == "full":
        back = aefast.read_onnx(tmp_path / "h.onnx")
        for k, k16 in zip(back.kernels, w.kernels):
            assert np.array_equal(k, k16.astype(np.float16).astype(np.float32))
    big = small_model(["elu", "elu", "elu", "sigmoid"])
    big.kernels[0] = big.kernels[0] * np.float32(1e5)
    with pytest.raises(ValueError, match=r"dense_0.kernel: weights beyond the float16 range"):
        aefast.interop.onnx_model(big, dtype="float16")
