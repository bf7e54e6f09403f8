"""Model file hardening: every defect is a ModelFileError, never another exception, never a huge allocation."""
import json
import struct

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import aefast
from aefast.errors import ModelFileError
from aefast.modelfile import parse_model, read_model, save_model
from aefast.engine.reference import random_weights

PROPERTY = settings(max_examples=150, deadline=None)


def _small(dtype="float32") -> bytes:
    w = random_weights((4, 3, 2, 3, 4), seed=1)
    w.metrics = {"test_mse": 0.25}
    import tempfile
    from pathlib import Path
    with tempfile.TemporaryDirectory() as d:
        return save_model(Path(d) / "m.safetensors", w, dtype=dtype).read_bytes()


GOOD = {"float32": _small("float32"), "float16": _small("float16")}


def _split(data: bytes) -> tuple[dict, bytes]:
    (n,) = struct.unpack("<Q", data[:8])
    return json.loads(data[8:8 + n]), data[8 + n:]


def _join(header, body: bytes, length: int | None = None) -> bytes:
    raw = json.dumps(header).encode() if not isinstance(header, bytes) else header
    return struct.pack("<Q", len(raw) if length is None else length) + raw + body


def _parses_or_model_error(data: bytes):
    """The property: a valid model (that re-validates) or ModelFileError; anything else propagates and fails."""
    try:
        model = parse_model(data, "mutant")
    except ModelFileError as e:
        assert "mutant" in str(e) and len(str(e)) < 2000
        return None
    model.validate("reparsed")
    return model


@pytest.mark.parametrize("dtype", sorted(GOOD))
def test_round_trip_and_good_files_parse(dtype, tmp_path):
    m = read_model(save_model(tmp_path / "a.safetensors", parse_model(GOOD[dtype]), dtype=dtype))
    assert m.layer_sizes == [4, 3, 2, 3, 4] and m.metrics == {"test_mse": 0.25}
    assert m.kernels[0].dtype == np.dtype(dtype)


@pytest.mark.parametrize("dtype", sorted(GOOD))
def test_truncation_at_every_byte_is_a_model_error(dtype):
    data = GOOD[dtype]
    for cut in range(len(data)):
        with pytest.raises(ModelFileError):
            parse_model(data[:cut], f"cut at {cut}")


def test_trailing_bytes_are_a_model_error():
    with pytest.raises(ModelFileError, match="trailing"):
        parse_model(GOOD["float32"] + b"\0\0\0\0")


@PROPERTY
@given(dtype=st.sampled_from(sorted(GOOD)),
       flips=st.lists(st.tuples(st.integers(0, 10**6), st.integers(1, 255)), min_size=1, max_size=4))
def test_flipped_bytes_parse_or_raise_model_error(dtype, flips):
    data = bytearray(GOOD[dtype])
    for pos, xor in flips:
        data[pos % len(data)] ^= xor
    _parses_or_model_error(bytes(data))


JSON = st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
                    lambda kids: st.lists(kids, max_size=4) | st.dictionaries(st.text(max_size=8), kids, max_size=4),
                    max_leaves=10)


@PROPERTY
@given(data=st.data(), dtype=st.sampled_from(sorted(GOOD)))
def test_spliced_headers_parse_or_raise_model_error(data, dtype):
    header, body = _split(GOOD[dtype])
    meta = header["__metadata__"]
    action = data.draw(st.sampled_from(["meta-json", "meta-raw", "drop", "tensor-field", "add-tensor", "length"]))
    if action == "meta-json":     # a metadata value replaced by another JSON document
        meta[data.draw(st.sampled_from(sorted(meta)))] = json.dumps(data.draw(JSON))
    elif action == "meta-raw":    # ... or by a non-JSON / non-string value
        meta[data.draw(st.sampled_from(sorted(meta)))] = data.draw(JSON)
    elif action == "drop":
        del header[data.draw(st.sampled_from(sorted(header)))]
    elif action == "tensor-field":
        name = data.draw(st.sampled_from(sorted(k for k in header if k != "__metadata__")))
        header[name][data.draw(st.sampled_from(["dtype", "shape", "data_offsets"]))] = data.draw(JSON)
    elif action == "add-tensor":
        header[data.draw(st.text(max_size=12))] = data.draw(JSON)
    _parses_or_model_error(_join(header, body, data.draw(st.integers(0, 2**64 - 1)) if action == "length" else None))


def _with(dtype="float32", body=None, **changes):
    header, b = _split(GOOD[dtype])
    for path, value in changes.items():
        keys = path.split("__")
        node = header
        for k in keys[:-1]:
            node = node["__metadata__" if k == "meta" else k.replace("_dot_", ".")]
        node[keys[-1]] = value
    return _join(header, b if body is None else body)


def _nan_body():
    header, body = _split(GOOD["float32"])
    start = header["dense_0.kernel"]["data_offsets"][0]
    return body[:start] + struct.pack("<f", float("nan")) + body[start + 4:]


@pytest.mark.parametrize("data, words", [
    (b"", "too short"),
    (struct.pack("<Q", 2**63) + b"{}", "absurd"),
    (struct.pack("<Q", 100) + b"{}", "past the end"),
    (struct.pack("<Q", 4) + b"\xff\xfe{}", "not valid JSON"),
    (struct.pack("<Q", 200000) + b"[" * 100000 + b"]" * 100000, "nested deeper"),
    (_with(meta__training='{"a": ' * 40 + "1" + "}" * 40), "nested deeper"),
    (struct.pack("<Q", 2) + b"[]", "JSON object"),
    (_join({"x": 1}, b""), "no metadata"),
    (_with(meta__format_version="3"), "not supported"),
    (_with(meta__format_version="0"), "not supported"),
    (_with(meta__format="other"), "format"),
    (_with(meta__layer_sizes="[4, 3, 2, 3, 5]"), "layer_sizes"),
    (_with(meta__layer_sizes="[4, 3, 2, 3]"), "unexpected"),
    (_with(meta__encoder_layers="7"), "encoder_layers"),
    (_with(meta__activations='["elu", "elu", "elu"]'), "activations"),
    (_with(meta__activations='["elu", "gelu", "elu", "elu"]'), "unknown activation"),
    (_with(meta__input_shape="[3, 3]"), "input_shape"),
    (_with(meta__pixel_scale="1" + "0" * 5000), "not valid JSON"),
    (_with(meta__pixel_scale="1" + "0" * 400), "pixel_scale"),
    (_with(meta__pixel_scale="-1"), "pixel_scale"),
    (_with(meta__metrics="[]"), "metrics"),
    (_with(dense_0_dot_kernel__dtype="F64"), "dtype"),
    (_with(dense_0_dot_kernel__shape=[4, 30]), "bytes"),
    (_with(dense_0_dot_kernel__shape=[2**20, 2**20]), "bytes"),
    (_with(dense_0_dot_kernel__shape=[True, 12]), "bad shape"),
    (_with(dense_0_dot_kernel__data_offsets=[0, 2**62]), "outside"),
    (_with(dense_0_dot_kernel__data_offsets=[4, 52]), "overlap|cover"),
    (_with(body=_nan_body()), "NaN"),
], ids=lambda v: v if isinstance(v, str) else "")
def test_each_defect_is_named(data, words):
    with pytest.raises(ModelFileError, match=words):
        parse_model(data, "f.safetensors")


def test_file_level_errors(tmp_path):
    with pytest.raises(ModelFileError, match="no such model file"):
        read_model(tmp_path / "nope.safetensors")
    with pytest.raises(ModelFileError, match="directory"):
        read_model(tmp_path)
    with pytest.raises(ModelFileError, match="path"):
        read_model(str(tmp_path / "a\0b"))
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(GOOD["float32"][:50])
    with pytest.raises(ModelFileError, match="bad.safetensors"):
        aefast.load(bad)


def test_save_leaves_nothing_half_written(tmp_path):
    w = parse_model(GOOD["float32"])
    w.kernels[0] = w.kernels[0] * 1e6   # overflows float16
    with pytest.raises(ValueError, match="overflow"):
        save_model(tmp_path / "m.safetensors", w, dtype="float16")
    assert list(tmp_path.iterdir()) == []
