"""aefast.from_torch without PyTorch: a FAKE torch.nn (classes named and placed like torch.nn's, holding NumPy
parameters) stands in for the real one, which CI does not install (docs/interop.md says why). from_torch reads only
class names, `weight`, `bias`, `negative_slope`, `alpha`, `start_dim`/`end_dim` and iteration over a Sequential,
so these fakes exercise all of its code. The real PyTorch check is `test_from_torch_real` (skipped without torch).
"""
from __future__ import annotations

import numpy as np
import pytest

import aefast
from aefast.engine.reference import reference_forward
from aefast.errors import UnsupportedModelError

RNG = np.random.default_rng(11)
FAKE_MODULE = "torch.nn.modules.fake_for_tests"   # from_torch accepts torch.nn's classes only, by module + name


def _fake(name, **defaults):
    def init(self, *args, **kwargs):
        self.__dict__.update(defaults, **kwargs)
        if name == "Sequential":
            self.children = list(args)
    cls = type(name, (), {"__init__": init, "__module__": FAKE_MODULE})
    if name == "Sequential":
        cls.__iter__ = lambda self: iter(self.children)
    return cls


Sequential, ReLU, Sigmoid, Tanh, Identity, Dropout, Conv2d, ReLU6 = (
    _fake(n) for n in ("Sequential", "ReLU", "Sigmoid", "Tanh", "Identity", "Dropout", "Conv2d", "ReLU6"))
LeakyReLU = _fake("LeakyReLU", negative_slope=0.01)
ELU = _fake("ELU", alpha=1.0)
Flatten = _fake("Flatten", start_dim=1, end_dim=-1)


def Linear(a, b, bias=True):   # noqa: N802 (mimics the torch.nn class)
    cls = _fake("Linear")
    w = (RNG.standard_normal((b, a)) / np.sqrt(a)).astype(np.float32)   # torch layout: (out, in)
    return cls(weight=w, bias=(RNG.standard_normal(b) * 0.1).astype(np.float32) if bias else None)


def torch_like_forward(seq, x):
    """What PyTorch would compute for these fakes, in float64 (x @ W.T + b and the activations)."""
    h = np.asarray(x, np.float64).reshape(len(x), -1)
    for m in seq.children:
        if isinstance(m, Sequential):
            h = torch_like_forward(m, h)
            continue
        kind = type(m).__name__
        if kind == "Linear":
            h = h @ m.weight.astype(np.float64).T + (0 if m.bias is None else m.bias.astype(np.float64))
        elif kind == "ReLU":
            h = np.maximum(h, 0)
        elif kind == "LeakyReLU":
            h = np.where(h > 0, h, np.float32(m.negative_slope) * h)
        elif kind == "ELU":
            h = np.where(h > 0, h, np.float32(m.alpha) * np.expm1(np.minimum(h, 0)))
        elif kind == "Sigmoid":
            h = 1 / (1 + np.exp(-h))
        elif kind == "Tanh":
            h = np.tanh(h)
    return h


@pytest.mark.parametrize("make, acts", [
    (lambda: Sequential(Flatten(), Linear(12, 3), ReLU(), Linear(3, 12), Sigmoid()), ["relu", "sigmoid"]),
    (lambda: Sequential(Linear(12, 5), LeakyReLU(negative_slope=0.2), Dropout(), Linear(5, 1, bias=False), Tanh(),
                        Linear(1, 5), ELU(alpha=0.5), Linear(5, 12)),
     ["leaky_relu(0.2)", "tanh", "elu(0.5)", "linear"]),
    (lambda: Sequential(Sequential(Linear(12, 100), ELU(), Linear(100, 3)), Identity(),
                        Sequential(Linear(3, 100), ReLU(), Linear(100, 12), Sigmoid())),
     ["elu", "linear", "relu", "sigmoid"]),
])
def test_from_torch_reads_the_chain(make, acts):
    seq = make()
    w = aefast.from_torch(seq, input_shape=(1, 3, 4))
    assert w.activations == acts and w.input_shape == (3, 4)
    x = RNG.random((5, 12))
    np.testing.assert_allclose(reference_forward(w, x), torch_like_forward(seq, x), rtol=1e-6, atol=1e-6)
    assert w.latent_size == min(w.layer_sizes[1:-1])
    assert w.training == {"imported_from": "pytorch"}


def test_from_torch_refusals_name_the_module():
    cases = [
        (Sequential(Linear(4, 2), ReLU6(), Linear(2, 4)), r"module \[1\] \(ReLU6\): not part of a dense chain"),
        (Sequential(Conv2d(), Linear(4, 2), Linear(2, 4)), r"module \[0\] \(Conv2d\): not part of a dense chain"),
        (Sequential(Linear(4, 2), ReLU(), Tanh(), Linear(2, 4)), r"module \[2\] \(Tanh\): an activation not right "
                                                                  "after a Linear"),
        (Sequential(Linear(4, 2), Linear(3, 4)), r"module \[1\] \(Linear\): takes 3 inputs but the layer before "
                                                 "gives 2"),
        (Sequential(Linear(4, 2), Flatten(), Linear(2, 4)), r"module \[1\] \(Flatten\): a reshape between layers"),
        (Sequential(Linear(4, 2), Linear(2, 3)), r"the output has 3 values but the input 4"),
        (Linear(4, 4), r"expected a torch.nn.Sequential"),
    ]
    for seq, pattern in cases:
        with pytest.raises(UnsupportedModelError, match=pattern):
            aefast.from_torch(seq)
    # A class of one's own (even with torch.nn's name) is refused: its forward may differ.
    mine = type("Linear", (), {"weight": np.zeros((2, 4), np.float32), "bias": None})()
    with pytest.raises(UnsupportedModelError, match=r"module \[0\] \(Linear\): not part of a dense chain"):
        aefast.from_torch(Sequential(mine, Linear(2, 4)))
    with pytest.raises(UnsupportedModelError, match=r"input shape \(3, 2, 2\) is ambiguous"):
        aefast.from_torch(Sequential(Linear(12, 2), Linear(2, 12)), input_shape=(3, 2, 2))


def test_from_torch_real():
    """The same on the real torch.nn (runs where torch is installed; CI uses the fakes above)."""
    torch = pytest.importorskip("torch")
    nn = torch.nn
    torch.manual_seed(0)
    seq = nn.Sequential(nn.Flatten(), nn.Linear(784, 100), nn.ReLU(), nn.Linear(100, 3), nn.LeakyReLU(0.1),
                        nn.Linear(3, 100), nn.ELU(alpha=0.5), nn.Linear(100, 784), nn.Sigmoid()).eval()
    w = aefast.from_torch(seq, input_shape=(1, 28, 28))
    x = torch.rand(16, 1, 28, 28)
    with torch.no_grad():
        expect = seq(x).numpy()
    got = reference_forward(w, x.numpy().reshape(16, -1))
    np.testing.assert_allclose(got, expect, rtol=1e-5, atol=1e-6)
    assert w.activations == ["relu", "leaky_relu(0.1)", "elu(0.5)", "sigmoid"] and w.encoder_layers == 2


# Relative RMS error against PyTorch fp32 each precision must stay within (aefast.bench uses the same or looser).
REL_RMS = {"fp32": 1e-5, "fp16": 1e-2, "bf16": 2e-2, "int8": 1e-1}


def _rel_rms(got, expect):
    got, expect = np.asarray(got, np.float64), np.asarray(expect, np.float64)
    return float(np.sqrt(np.mean((got - expect) ** 2) / np.mean(expect ** 2)))


def _real_sequential(torch, acts):
    nn = torch.nn
    widths = [784, 100, 16, 100, 784]
    mods = [nn.Flatten()]
    for (a, b), act in zip(zip(widths, widths[1:]), acts):
        mods += [nn.Linear(a, b)] + ([act] if act is not None else [])
    return nn.Sequential(*mods).eval()


@pytest.mark.parametrize("precision", list(REL_RMS))
@pytest.mark.parametrize("acts", ["elu", "relu", "mixed"])
def test_real_torch_model_runs_on_the_engine_within_the_named_tolerance(precision, acts):
    torch = pytest.importorskip("torch")
    nn = torch.nn
    torch.manual_seed(1)
    seq = _real_sequential(torch, {"elu": [nn.ELU(), None, nn.ELU(), nn.Sigmoid()],
                                   "relu": [nn.ReLU(), None, nn.ReLU(), nn.Sigmoid()],
                                   "mixed": [nn.LeakyReLU(0.1), nn.Tanh(), nn.ELU(alpha=0.5), None]}[acts])
    x = torch.rand(64, 1, 28, 28)
    with torch.no_grad():
        expect = seq(x).numpy()
    engine = aefast.load(aefast.from_torch(seq, input_shape=(1, 28, 28)), precision=precision)
    assert _rel_rms(engine.reconstruct(x.numpy()[:, 0]), expect) < REL_RMS[precision]   # (N, 28, 28)


def test_real_torch_onnx_export_loads(tmp_path):
    torch = pytest.importorskip("torch")
    nn = torch.nn
    torch.manual_seed(2)
    seq = _real_sequential(torch, [nn.ReLU(), nn.LeakyReLU(0.1), nn.ELU(alpha=0.5), nn.Sigmoid()])
    x = torch.rand(8, 1, 28, 28)
    torch.onnx.export(seq, (x,), str(tmp_path / "m.onnx"), dynamo=False, input_names=["x"],
                      dynamic_axes={"x": {0: "N"}})
    w = aefast.read_onnx(tmp_path / "m.onnx")
    assert w.activations == ["relu", "leaky_relu(0.1)", "elu(0.5)", "sigmoid"] and w.input_shape == (28, 28)
    with torch.no_grad():
        expect = seq(x).numpy()
    assert _rel_rms(reference_forward(w, x.numpy().reshape(8, -1)), expect) < 1e-6
