"""Model files with bf16 storage and int8 calibration means; the int8 bias correction they enable."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest

import aefast
from aefast.export.calibration import calibrated, layer_input_means
from aefast.engine.precisions import backend_layers, round_to_bf16
from aefast.engine.reference import random_weights, reference_forward
from aefast.model import read_model, save_model


@pytest.fixture(scope="module")
def weights():
    return random_weights((64, 40, 8, 40, 64), seed=2)


def test_input_means_are_the_mean_layer_inputs(weights):
    x = np.random.default_rng(0).random((300, 64), dtype=np.float32)
    means = layer_input_means(weights, x)
    for i, m in enumerate(means):
        want = x.mean(axis=0) if i == 0 else reference_forward(weights, x, 0, i).mean(axis=0)
        np.testing.assert_allclose(m, want, rtol=1e-5, atol=1e-6)
    u8 = (x * 255).round().astype(np.uint8)
    np.testing.assert_allclose(layer_input_means(weights, u8)[0], u8.mean(axis=0) / 255, rtol=1e-6)
    with pytest.raises(ValueError, match="values each"):
        layer_input_means(weights, x[:, :10])


def test_calibration_round_trips_and_partial_calibration_is_refused(weights, tmp_path):
    model = calibrated(weights, np.random.default_rng(1).random((50, 64), dtype=np.float32))
    path = save_model(tmp_path / "m.safetensors", model)
    back = read_model(path)
    for a, b in zip(back.input_means, model.input_means):
        np.testing.assert_array_equal(a, b)
    assert read_model(save_model(tmp_path / "plain.safetensors", weights)).input_means is None
    # A file with some layers' means but not all: refused, naming what is missing.
    from aefast.modelfile import _metadata, _safetensors_bytes
    tensors = {f"dense_{i}.{p}": ("F32", (model.kernels if p == "kernel" else model.biases)[i]) for i in range(4) for p in ("kernel", "bias")}
    tensors["dense_0.input_mean"] = ("F32", model.input_means[0])
    (tmp_path / "partial.safetensors").write_bytes(_safetensors_bytes(tensors, _metadata(model, "0" * 64)))
    with pytest.raises(aefast.ModelFileError, match="missing.*input_mean"):
        read_model(tmp_path / "partial.safetensors")
    with pytest.raises(aefast.ModelFileError, match="input_mean"):
        dataclasses.replace(model, input_means=model.input_means[:2]).validate()


def test_bf16_storage_is_half_the_size_and_exact(weights, tmp_path):
    f32 = save_model(tmp_path / "f32.safetensors", weights)
    bf = save_model(tmp_path / "bf16.safetensors", weights, dtype="bf16")
    assert bf.stat().st_size < 0.55 * f32.stat().st_size
    back = read_model(bf)
    for k, k0 in zip(back.kernels, weights.kernels):
        assert k.dtype == np.float32
        np.testing.assert_array_equal(k, round_to_bf16(k0))
    x = np.random.default_rng(2).random((20, 64), dtype=np.float32)
    np.testing.assert_array_equal(aefast.load(bf, precision="bf16").reconstruct(x),
                                  aefast.load(weights, precision="bf16").reconstruct(x))
    kernels = [k.copy() for k in weights.kernels]
    biases = [b.copy() for b in weights.biases]
    kernels[0][:, 0], biases[0][0] = 0, 0   # layer 1's input 0 is always elu(0) = 0: its row 0 never adds
    kernels[1][0, 0] = np.float32(3.4e38)   # finite in float32, beyond bf16's largest value (3.39e38)
    huge = dataclasses.replace(weights, kernels=kernels, biases=biases)
    with pytest.raises(ValueError, match="overflow bf16"):
        save_model(tmp_path / "huge.safetensors", huge, dtype="bf16")


def test_bias_correction_only_changes_int8_biases(weights):
    model = calibrated(weights, np.random.default_rng(3).random((100, 64), dtype=np.float32))
    for precision in ("fp32", "fp16", "bf16"):
        for a, b in zip(backend_layers(model, precision), backend_layers(weights, precision)):
            np.testing.assert_array_equal(a["bias"], b["bias"])
    changed = [not np.array_equal(a["bias"], b["bias"])
               for a, b in zip(backend_layers(model, "int8"), backend_layers(weights, "int8"))]
    assert all(changed)


@pytest.mark.slow
def test_bias_correction_reduces_int8_error_on_the_default_model(mnist_dir):
    """Means from training images, error measured on test images (the shipped model carries its means)."""
    from aefast.data import load_mnist

    shipped = read_model(aefast.engine.DEFAULT_MODEL_PATH)
    assert shipped.input_means is not None, "the default model ships with int8 calibration"
    x = np.asarray(load_mnist(data_dir=mnist_dir).test.x[:2000]).reshape(2000, -1)
    ref = reference_forward(shipped, x.astype(np.float64) / (255 if x.dtype == np.uint8 else 1))
    err, offset = {}, {}
    for name, model in (("plain", dataclasses.replace(shipped, input_means=None)), ("corrected", shipped)):
        e = aefast.load(model, precision="int8").reconstruct(x) - ref
        err[name] = np.linalg.norm(e) / np.linalg.norm(ref)
        offset[name] = np.linalg.norm(e.mean(axis=0)) * np.sqrt(len(e)) / np.linalg.norm(ref)
    # The bound, from the plain run itself: bias correction removes systematic per-channel offsets, so it must do
    # at least as well as taking the plain error's mean offset per output pixel away, sqrt(plain^2 - offset^2)
    # (measured on the shipped model: 6.00e-3 plain, 5.90e-3 that bound, 5.72e-3 corrected); and what is left of
    # the offset must be smaller than before (1.1e-3 -> 4.2e-4).
    assert err["corrected"] < np.sqrt(err["plain"] ** 2 - offset["plain"] ** 2), (err, offset)
    assert offset["corrected"] < offset["plain"], offset


def test_digest_covers_bf16_bits_and_calibration_means(weights, tmp_path):
    """The digest hashes tensors as stored (bf16 bits, input means): flipping one stored bit of either is caught."""
    model = calibrated(weights, np.random.default_rng(4).random((30, 64), dtype=np.float32))
    for dtype in ("bf16", "float32"):
        path = save_model(tmp_path / f"{dtype}.safetensors", model, dtype=dtype)
        assert read_model(path).integrity == "verified"
        data = bytearray(path.read_bytes())
        header_len = int.from_bytes(data[:8], "little")
        import json
        header = json.loads(data[8:8 + header_len])
        for name in ("dense_1.kernel", "dense_2.input_mean"):
            start = 8 + header_len + header[name]["data_offsets"][0]
            bad = bytearray(data)
            bad[start] ^= 0x01
            (tmp_path / "bad.safetensors").write_bytes(bytes(bad))
            with pytest.raises(aefast.ModelFileError, match="digest"):
                read_model(tmp_path / "bad.safetensors")
