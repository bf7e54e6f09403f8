"""The activations a model file names (aefast/model/activations.py): spellings, the float64 definition, the model
file (validation, digest, old files), and the value-range bound."""
from __future__ import annotations

import json
import struct

import numpy as np
import pytest

from aefast.engine.reference import random_weights, reference_forward
from aefast.errors import ModelFileError
from aefast.model import (activation_spec, apply_activation, layer_bounds, parse_activation, parse_model,
                          model_file_bytes)

Z = np.array([-50.0, -3.0, -0.5, -1e-8, 0.0, 1e-8, 0.5, 3.0, 50.0])


@pytest.mark.parametrize("spec, expect", [
    ("linear", Z), ("relu", np.maximum(Z, 0)), ("tanh", np.tanh(Z)), ("sigmoid", 1 / (1 + np.exp(-Z))),
    ("elu", np.where(Z > 0, Z, np.exp(Z) - 1)),
    ("elu(0.5)", np.where(Z > 0, Z, 0.5 * (np.exp(Z) - 1))),
    ("leaky_relu(0.2)", np.where(Z > 0, Z, float(np.float32(0.2)) * Z)),
    ("leaky_relu(-0.5)", np.where(Z > 0, Z, -0.5 * Z)),
])
def test_float64_definitions(spec, expect):
    np.testing.assert_allclose(apply_activation(spec, Z), expect, rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("kind, alpha, spec", [("elu", None, "elu"), ("elu", 1.0, "elu"), ("elu", 0.5, "elu(0.5)"),
                                               ("leaky_relu", 0.01, "leaky_relu(0.01)"),
                                               ("leaky_relu", np.float32(0.01), "leaky_relu(0.01)"),
                                               ("leaky_relu", 1e-5, "leaky_relu(1e-05)"), ("relu", None, "relu")])
def test_canonical_spelling_round_trips(kind, alpha, spec):
    assert activation_spec(kind, alpha) == spec
    k, a = parse_activation(spec)
    assert k == kind and (a is None or np.float32(a) == np.float32(1.0 if alpha is None else alpha))


@pytest.mark.parametrize("spec, pattern", [
    ("elu(1.0)", "write it as 'elu'"), ("leaky_relu(0.0100)", "write it as 'leaky_relu\\(0.01\\)'"),
    ("leaky_relu", "unknown activation 'leaky_relu'"), ("leaky_relu(nan)", "finite float32"),
    ("elu(1e39)", "finite float32"), ("relu(0.1)", "unknown activation"), ("gelu", "unknown activation"),
    ("leaky_relu(x)", "'x' is not a number"),
])
def test_bad_spellings_are_refused_by_validation(spec, pattern):
    w = random_weights((4, 2, 4))
    w.activations = [spec, "linear"]
    with pytest.raises(ModelFileError, match=f"m: layer 0: .*{pattern}"):
        w.validate("m")


def test_new_activations_survive_the_file_and_the_digest_covers_alpha():
    w = random_weights((6, 3, 2, 3, 6), seed=1)
    w.activations = ["leaky_relu(0.2)", "elu(0.5)", "tanh", "relu"]
    data = model_file_bytes(w)
    back = parse_model(data, "m")
    assert back.activations == w.activations and back.integrity == "verified"
    x = np.random.default_rng(0).random((3, 6))
    assert np.array_equal(reference_forward(back, x), reference_forward(w, x))
    n = struct.unpack("<Q", data[:8])[0]
    header = json.loads(data[8:8 + n])
    header["__metadata__"]["activations"] = json.dumps(["leaky_relu(0.3)", "elu(0.5)", "tanh", "relu"])
    head = json.dumps(header, separators=(",", ":")).encode()
    head += b" " * (-len(head) % 8)
    edited = struct.pack("<Q", len(head)) + head + data[8 + n:]
    with pytest.raises(ModelFileError, match="do not match the file's model_sha256 digest"):
        parse_model(edited, "m")


def test_value_range_uses_each_activations_own_range():
    rng = np.random.default_rng(2)
    w = random_weights((8, 8, 8, 8), seed=2)
    big = (rng.standard_normal((8, 8)) * 1e18).astype(np.float32)
    w.kernels = [big, big.copy(), w.kernels[2]]
    w.activations = ["tanh", "linear", "linear"]   # tanh's [-1, 1] keeps layer 1 near 8e18
    w.validate("m")
    assert layer_bounds(w)[1] < 1e20
    for act in ("linear", "relu", "leaky_relu(0.5)"):   # unbounded: layer 1 reaches ~1e37 and beyond
        w.activations = [act, "linear", "linear"]
        with pytest.raises(ModelFileError, match="m: layer 1 \\(dense_1\\) can compute values up to"):
            w.validate("m")
    # ELU's negative side reaches -alpha: a huge alpha makes the next layer overflow.
    w.kernels = [-np.abs(big) * 1e-18, big.copy(), w.kernels[2]]
    w.biases[0] = np.full(8, -10.0, np.float32)
    w.activations = ["elu", "linear", "linear"]
    w.validate("m")
    w.activations = ["elu(1e+30)", "linear", "linear"]
    with pytest.raises(ModelFileError, match="m: layer 1 \\(dense_1\\) can compute values up to"):
        w.validate("m")


def test_files_written_before_keep_loading():
    from aefast.engine.api import DEFAULT_MODEL_PATH
    from aefast.model import read_model

    w = read_model(DEFAULT_MODEL_PATH)
    assert set(w.activations) <= {"elu", "linear", "sigmoid"} and w.integrity == "verified"
