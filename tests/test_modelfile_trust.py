"""Model files that pass every structural check but would give wrong answers: weights whose values overflow float32,
and metadata edited after the digest was taken. Also the version-1 reader contract and the shipped model."""
import dataclasses
import hashlib
import json
import re
import struct

import numpy as np
import pytest

import aefast
from aefast.engine.reference import random_weights, reference_forward
from aefast.errors import ModelFileError
from aefast.model import read_model, save_model

DEFAULT = aefast.engine.DEFAULT_MODEL_PATH
# tensors_sha256 of the version-1 default.safetensors that the shipped version-2 file was converted from (the
# conversion re-saved the same float16 / float32 tensors; `git log aefast/models/default.safetensors` shows both).
SHIPPED_V1_TENSORS_SHA256 = "045479db01175bfc315c179f2feab073c466759c6b462b2f185c93deaf4f8ef6"


def _overflowing(weights):
    """The default model with kernels[1] *= 1e30 and kernels[2] *= 1e10: every weight finite (float32), but the
    decoder's first layer reaches ~1e45 on ordinary images."""
    kernels = [np.asarray(k, np.float32).copy() for k in weights.kernels]
    kernels[1] *= np.float32(1e30)
    kernels[2] *= np.float32(1e10)
    assert all(np.isfinite(k).all() for k in kernels)
    return dataclasses.replace(weights, kernels=kernels, biases=[np.asarray(b, np.float32) for b in weights.biases])


def test_weights_whose_values_overflow_float32_are_refused_at_save_load_and_engine(tmp_path):
    """Before the value-range check, save_model wrote this file (integrity verified) and the engine served NaN from
    reconstruct/score and zeros from reconstruct(clip=True)."""
    big = _overflowing(read_model(DEFAULT))
    with pytest.raises(ModelFileError, match=r"layer 2 \(dense_2\) can compute values up to .* beyond the bound 1e\+37"):
        save_model(tmp_path / "big.safetensors", big)
    with pytest.raises(ModelFileError, match=r"layer 2 \(dense_2\)"):
        aefast.load(big, threads=1)


def test_a_file_with_overflowing_weights_is_refused_by_the_reader(tmp_path):
    """The same weights in a file written without save_model's check (as another tool could): refused at load,
    naming the file, the layer and the bound."""
    from aefast.model.digest import digest_order, model_digest
    from aefast.model.file import model_metadata, stored_tensors
    from aefast.model.safetensors import safetensors_bytes

    big = _overflowing(read_model(DEFAULT))
    tensors = stored_tensors(big, "float32")
    meta = model_metadata(big)
    meta["model_sha256"] = model_digest(meta, [(n, *tensors[n]) for n in digest_order(tensors)])
    path = tmp_path / "big.safetensors"
    path.write_bytes(safetensors_bytes(tensors, meta))
    with pytest.raises(ModelFileError, match=rf"{re.escape(str(path))}: layer 2 \(dense_2\) .* 1e\+37"):
        read_model(path)


def test_the_value_bound_holds_on_real_inputs_and_legitimate_models_pass():
    """layer_bounds is an upper bound of every value the layers compute (here on MNIST-like extremes: all-zero,
    all-one, random and binary images), and the shipped and test models are far below it."""
    from aefast.model import VALUE_LIMIT, layer_bounds

    rng = np.random.default_rng(0)
    for weights in (read_model(DEFAULT), random_weights(), random_weights((16, 6, 3, 6, 16), seed=3)):
        n = weights.input_size
        x = np.vstack([np.zeros(n), np.ones(n), rng.random((200, n)), rng.random((50, n)) > 0.5])
        bounds = layer_bounds(weights)
        assert len(bounds) == len(weights.kernels) and max(bounds) < VALUE_LIMIT
        h = x
        for i, bound in enumerate(bounds):
            z = h @ weights.kernels[i].astype(np.float64) + weights.biases[i].astype(np.float64)
            assert np.abs(z).max() <= bound, (i, np.abs(z).max(), bound)
            h = reference_forward(weights, h, i, i + 1)


def _saved(tmp_path, weights=None, dtype="float32"):
    return save_model(tmp_path / "m.safetensors", weights or random_weights(seed=5), dtype=dtype)


def _replace_in_header(data: bytes, old: bytes, new: bytes) -> bytes:
    (n,) = struct.unpack("<Q", data[:8])
    head = data[8:8 + n]
    assert head.count(old) == 1, (old, head.count(old))
    if len(new) == len(old):
        return data[:8] + head.replace(old, new) + data[8 + n:]
    head = head.replace(old, new)
    head += b" " * (-len(head) % 8)
    return struct.pack("<Q", len(head)) + head + data[8 + n:]


@pytest.mark.parametrize("old, new", [
    (b'"encoder_layers":"2"', b'"encoder_layers":"1"'),
    (b'"encoder_layers":"2"', b'"encoder_layers":"3"'),
    (b'"pixel_scale":"255.0"', b'"pixel_scale":"254.0"'),
    (b'"input_shape":"[28, 28]"', b'"input_shape":"[14, 56]"'),
    (b'"sigmoid\\"]"', b'"linear\\"]"'),
], ids=["encoder_layers-1", "encoder_layers-3", "pixel_scale", "input_shape", "activation"])
def test_one_edit_of_metadata_that_changes_results_is_caught_by_the_digest(tmp_path, old, new):
    """Each of these edits left a file that loaded as integrity=verified and changed what the engine returned
    (compress's width, every output, the accepted image shape, the output layer)."""
    path = _saved(tmp_path)
    edited = tmp_path / "edited.safetensors"
    edited.write_bytes(_replace_in_header(path.read_bytes(), old, new))
    with pytest.raises(ModelFileError, match=rf"{re.escape(str(edited))}: the metadata or tensor bytes do not "
                                             "match the file's model_sha256 digest"):
        read_model(edited)


def test_a_changed_tensor_dtype_is_caught_by_the_digest(tmp_path):
    """F16 and BF16 tensors have the same byte size: relabelling one changes every weight, bytes untouched."""
    path = _saved(tmp_path, dtype="float16")
    edited = tmp_path / "edited.safetensors"
    data = path.read_bytes()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + n])
    header["dense_1.kernel"]["dtype"] = "BF16"
    head = json.dumps(header).encode()
    edited.write_bytes(struct.pack("<Q", len(head)) + head + data[8 + n:])
    with pytest.raises(ModelFileError, match="do not match the file's model_sha256"):
        read_model(edited)


def test_saved_files_are_version_2_and_their_digest_covers_metadata(tmp_path):
    path = _saved(tmp_path)
    (n,) = struct.unpack("<Q", path.read_bytes()[:8])
    meta = json.loads(path.read_bytes()[8:8 + n])["__metadata__"]
    assert meta["format_version"] == "2" and "tensors_sha256" not in meta
    assert re.fullmatch("[0-9a-f]{64}", meta["model_sha256"])
    assert read_model(path).integrity == "verified"


def test_a_version_2_file_without_its_digest_is_refused(tmp_path):
    path = _saved(tmp_path)
    data = path.read_bytes()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + n])
    del header["__metadata__"]["model_sha256"]
    head = json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(head)) + head + data[8 + n:])
    with pytest.raises(ModelFileError, match="lacks 'model_sha256', which every version-2 file holds"):
        read_model(path)


# --- the version-1 reader contract -------------------------------------------------------------------------------

def _v1_file(path, weights, digest=True, **meta_changes):
    """A version-1 file as aefast wrote them: the safetensors library's writer, F32 tensors, and tensors_sha256 =
    SHA-256 of the tensor bytes in layer order (kernel, bias), computed here without aefast."""
    from safetensors.numpy import save

    tensors = {}
    h = hashlib.sha256()
    for i, (k, b) in enumerate(zip(weights.kernels, weights.biases)):
        for part, arr in (("kernel", k), ("bias", b)):
            arr = np.ascontiguousarray(arr, np.float32)
            tensors[f"dense_{i}.{part}"] = arr
            h.update(arr.astype("<f4").tobytes())
    meta = {"format": "aefast.autoencoder", "format_version": "1",
            "layer_sizes": json.dumps(weights.layer_sizes), "activations": json.dumps(list(weights.activations)),
            "encoder_layers": json.dumps(weights.encoder_layers), "input_shape": json.dumps(list(weights.input_shape)),
            "pixel_scale": json.dumps(float(weights.pixel_scale)), "training": "{}", "metrics": "{}",
            "data_sha256": "{}"}
    if digest:
        meta["tensors_sha256"] = h.hexdigest()
    meta.update(meta_changes)
    path.write_bytes(save(tensors, metadata=meta))
    return path


def test_version_1_files_still_load_as_before(tmp_path):
    w = random_weights(seed=7)
    got = read_model(_v1_file(tmp_path / "v1.safetensors", w))
    assert got.integrity == "verified" and got.layer_sizes == w.layer_sizes
    for a, b in zip(got.kernels + got.biases, w.kernels + w.biases):
        np.testing.assert_array_equal(a, b)
    x = np.random.default_rng(1).random((5, 784), dtype=np.float32)
    np.testing.assert_array_equal(aefast.load(got, threads=1).reconstruct(x), aefast.load(w, threads=1).reconstruct(x))
    assert read_model(_v1_file(tmp_path / "nodigest.safetensors", w, digest=False)).integrity == "absent"
    # the version-1 digest covers the tensors only (docs/format.md): a metadata edit is not detected in version 1
    assert read_model(_v1_file(tmp_path / "edited.safetensors", w, encoder_layers="1")).encoder_layers == 1


def test_version_1_files_with_damaged_tensors_or_a_version_2_digest_are_refused(tmp_path):
    w = random_weights(seed=7)
    path = _v1_file(tmp_path / "v1.safetensors", w)
    data = bytearray(path.read_bytes())
    data[-3] ^= 0x01
    path.write_bytes(bytes(data))
    with pytest.raises(ModelFileError, match="the tensor bytes do not match the file's tensors_sha256"):
        read_model(path)
    # A version-2 file whose format_version was edited to "1" would otherwise load unverified.
    with pytest.raises(ModelFileError, match="version-1 file holds a 'model_sha256' digest"):
        read_model(_v1_file(tmp_path / "downgraded.safetensors", w, model_sha256="0" * 64))


# --- the shipped model ---------------------------------------------------------------------------------------------

def test_the_shipped_model_is_version_2_with_the_same_tensors_as_its_version_1_original():
    from aefast.model.digest import digest_order, tensors_digest
    from aefast.model.safetensors import read_header, read_tensors

    data = DEFAULT.read_bytes()
    header, start = read_header(data, "default")
    assert header["__metadata__"]["format_version"] == "2"
    tensors = read_tensors(data, header, start, "default")
    assert tensors_digest([tensors[name] for name in digest_order(tensors)]) == SHIPPED_V1_TENSORS_SHA256
    model = read_model(DEFAULT)
    assert model.integrity == "verified" and model.input_means is not None
    assert model.kernels[0].dtype == np.float16


def test_the_format_doc_names_what_the_reader_accepts():
    """docs/format.md said F32/F16 only and "No other tensors are allowed" while the reader took BF16 and
    dense_i.input_mean: the doc's tensor table names every dtype and tensor the reader accepts, and its title the
    version the writer writes."""
    from pathlib import Path

    from aefast.model import FORMAT_VERSION, READ_VERSIONS
    from aefast.model.safetensors import _NP_DTYPES

    doc = (Path(__file__).resolve().parent.parent / "docs" / "format.md").read_text()
    assert doc.splitlines()[0].startswith(f"# The aefast model file (format version {FORMAT_VERSION}")
    table = doc.split("## Tensors", 1)[1].split("##", 1)[0]
    for code in _NP_DTYPES:
        assert f"`{code}`" in table, code
    for name in ("dense_{i}.kernel", "dense_{i}.bias", "dense_{i}.input_mean"):
        assert f"`{name}`" in table, name
    history = doc.split("## Version history", 1)[1]
    for version in READ_VERSIONS:
        assert f"**Version {version}.**" in history, version
