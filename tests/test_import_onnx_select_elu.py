"""ELU with alpha A written as where(x > 0, Elu(x), A * Elu(x)), the graph tf2onnx writes for Keras's ELU layer with
alpha != 1, imports as one `elu(A)` activation: in tf2onnx's mask-arithmetic form (Greater, Not, two Casts, three
Muls, an Add) and as a Where node; operands of Mul and Add in either order. Anything that differs from the pattern
is refused like any other branch. Graphs built here with onnx.helper (no TensorFlow); ONNX Runtime is the truth.
"""
from __future__ import annotations

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

from aefast.engine.reference import reference_forward  # noqa: E402
from aefast.errors import UnsupportedModelError  # noqa: E402
from aefast.interop import parse_onnx  # noqa: E402

RNG = np.random.default_rng(23)


def elu_nodes(x: str, out: str, form: str, swap: bool = False, elu_alpha: float | None = None,
              zero: str = "zero", alpha: str = "alpha") -> list:
    """The nodes computing out = where(x > 0, Elu(x), alpha * Elu(x)) in `form` "mask" (tf2onnx) or "where"."""
    def two(a, b):
        return [b, a] if swap else [a, b]
    elu_attrs = {} if elu_alpha is None else {"alpha": elu_alpha}
    nodes = [helper.make_node("Greater", [x, zero], ["gt"], name="elu/Greater"),
             helper.make_node("Elu", [x], ["e"], name="elu/Elu", **elu_attrs),
             helper.make_node("Mul", two(alpha, "e"), ["ae"], name="elu/mul")]
    if form == "where":
        return nodes + [helper.make_node("Where", ["gt", "e", "ae"], [out], name="elu/Where")]
    return nodes + [
        helper.make_node("Not", ["gt"], ["ngt"], name="elu/Not"),
        helper.make_node("Cast", ["ngt"], ["cn"], name="elu/CastNot", to=TensorProto.FLOAT),
        helper.make_node("Cast", ["gt"], ["cg"], name="elu/Cast", to=TensorProto.FLOAT),
        helper.make_node("Mul", two("ae", "cn"), ["neg"], name="elu/neg"),
        helper.make_node("Mul", two("cg", "e"), ["pos"], name="elu/pos"),
        helper.make_node("Add", two("pos", "neg"), [out], name="elu/Select"),
    ]


def model_with(act_nodes, alpha_value=0.5, zero_value=0.0, widths=(6, 3, 6), before=None):
    """x -> MatMul+Add -> [before] -> act_nodes (from 'z0' to 'h0') -> MatMul+Add -> Sigmoid -> y."""
    a, b, c = widths
    k0, k1 = (RNG.standard_normal((a, b)) / np.sqrt(a)).astype(np.float32), \
        (RNG.standard_normal((b, c)) / np.sqrt(b)).astype(np.float32)
    inits = [numpy_helper.from_array(k0, "W0"), numpy_helper.from_array(np.full(b, -0.2, np.float32), "B0"),
             numpy_helper.from_array(k1, "W1"), numpy_helper.from_array(np.zeros(c, np.float32), "B1"),
             numpy_helper.from_array(np.array(alpha_value, np.float32), "alpha"),
             numpy_helper.from_array(np.array(zero_value, np.float32), "zero")]
    nodes = [helper.make_node("MatMul", ["x", "W0"], ["m0"], name="mm0"),
             helper.make_node("Add", ["m0", "B0"], ["z0" if before is None else "pre"], name="add0")]
    if before is not None:
        nodes.append(helper.make_node(before, ["pre"], ["z0"], name="first_act"))
    nodes += list(act_nodes)
    nodes += [helper.make_node("MatMul", ["h0", "W1"], ["m1"], name="mm1"),
              helper.make_node("Add", ["m1", "B1"], ["z1"], name="add1"),
              helper.make_node("Sigmoid", ["z1"], ["y"], name="sig")]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", a])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", c])], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)


def run_ort(model, x):
    ort = pytest.importorskip("onnxruntime")
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return sess.run(None, {"x": x})[0]


@pytest.mark.parametrize("form", ["mask", "where"])
@pytest.mark.parametrize("swap", [False, True])
@pytest.mark.parametrize("alpha, elu_alpha, spec", [(0.5, None, "elu(0.5)"), (2.0, None, "elu(2.0)"),
                                                     (0.5, 2.0, "elu"), (1.0, None, "elu")])
def test_where_elu_imports_as_one_elu_activation(form, swap, alpha, elu_alpha, spec):
    model = model_with(elu_nodes("z0", "h0", form, swap, elu_alpha), alpha_value=alpha)
    w = parse_onnx(model.SerializeToString(), "k.onnx")
    assert w.activations == [spec, "sigmoid"] and w.layer_sizes == [6, 3, 6]
    x = (RNG.standard_normal((64, 6)) * 3).astype(np.float32)   # both signs before the ELU
    expect = run_ort(model, x)
    assert np.abs(reference_forward(w, x) - expect).max() < 1e-6


def _cast_to_double():
    nodes = elu_nodes("z0", "h0", "mask")
    next(n for n in nodes if n.name == "elu/Cast").attribute[0].i = TensorProto.DOUBLE
    return nodes


@pytest.mark.parametrize("why, make", [
    (f"Greater than 1, not 0 ({form})", lambda form=form: model_with(elu_nodes("z0", "h0", form), zero_value=1.0))
    for form in ("mask", "where")
] + [
    (f"alpha computed at run time ({form})", lambda form=form: model_with(elu_nodes("z0", "h0", form, alpha="z0")))
    for form in ("mask", "where")
] + [("a Cast to double (mask)", lambda: model_with(_cast_to_double()))])
def test_near_misses_are_refused_as_a_branch(why, make):
    with pytest.raises(UnsupportedModelError, match=r"feeds \d nodes .*a skip connection or branch"):
        parse_onnx(make().SerializeToString(), f"{why}.onnx")


def test_where_elu_after_another_activation_is_refused_by_name():
    model = model_with(elu_nodes("z0", "h0", "mask"), before="Relu")
    with pytest.raises(UnsupportedModelError, match=r"node #\d+ 'elu/Elu' \(Elu\): ELU as where\(x > 0, elu\(x\), "
                                                     r"A \* elu\(x\)\) is not right after a dense layer"):
        parse_onnx(model.SerializeToString(), "twice.onnx")


def test_an_extra_user_of_an_inner_value_is_refused():
    """The pattern's inner values feed nothing else: Elu(x) also feeding the next layer is a branch."""
    nodes = elu_nodes("z0", "h_sel", "mask")
    nodes.append(helper.make_node("Add", ["h_sel", "e"], ["h0"], name="residual"))
    with pytest.raises(UnsupportedModelError, match=r"a skip connection or branch"):
        parse_onnx(model_with(nodes).SerializeToString(), "extra.onnx")
