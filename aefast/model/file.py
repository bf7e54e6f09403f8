"""The aefast model file: which tensors and metadata a safetensors file holds, and its reader and writer.

Format (version 2; docs/format.md has the full contract and the version history):
  tensors   dense_{i}.kernel  (in_i, out_i)  F32, F16 or BF16
            dense_{i}.bias    (out_i,)       F32, F16 (BF16-kernel files: F32)
            dense_{i}.input_mean (in_i,)     F32, optional (all layers or none): the mean input of each layer on
                                             the training data, used to correct the int8 biases
  metadata  format="aefast.autoencoder", format_version="2", and JSON values for
            layer_sizes, activations, encoder_layers, input_shape, pixel_scale, training, metrics, data_sha256,
            and model_sha256 (aefast.model.digest: metadata and tensors).
Version 1 files (tensors_sha256 over the tensors only, optional) are still read.

`read_model` validates everything before returning, and raises `ModelFileError` (a ValueError) for any
defect; `save_model` writes atomically and always writes the current version.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from .._io import write_bytes_atomic
from ..errors import ModelFileError
from .bits import from_storage, to_storage
from .digest import (MODEL_DIGEST_KEY, TENSORS_DIGEST_KEY, digest_order, is_hex_digest, model_digest,
                     tensors_digest)
from .ranges import check_value_range
from .safetensors import parse_json, read_file_bytes, read_header, read_tensors, safetensors_bytes
from .validation import MAX_LAYERS, check_structure, is_int
from .weights import INTEGRITY_ABSENT, INTEGRITY_VERIFIED, AutoencoderWeights

FORMAT_NAME = "aefast.autoencoder"
FORMAT_VERSION = 2
READ_VERSIONS = (1, 2)
STORAGE_DTYPES = {"float32": "F32", "float16": "F16", "bf16": "BF16"}


def _json_default(value):
    """json.dumps fallback: NumPy scalars and arrays as Python numbers and lists; anything else is refused."""
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"a {type(value).__name__} is not JSON-serialisable")


def _metadata_json(value, key: str) -> str:
    try:
        return json.dumps(value, sort_keys=True, default=_json_default)
    except (TypeError, ValueError) as e:
        raise ValueError(f"model metadata {key!r}: {e}; expected JSON values (numbers, strings, lists, dicts)") \
            from None


def model_metadata(model: AutoencoderWeights) -> dict[str, str]:
    """The metadata strings of a current-version file for `model`, without its digest."""
    return {
        "format": FORMAT_NAME,
        "format_version": str(FORMAT_VERSION),
        "layer_sizes": json.dumps(model.layer_sizes),
        "activations": json.dumps(list(model.activations)),
        "encoder_layers": json.dumps(int(model.encoder_layers)),
        "input_shape": json.dumps(list(model.input_shape)),
        "pixel_scale": json.dumps(float(model.pixel_scale)),
        "training": _metadata_json(model.training, "training"),
        "metrics": _metadata_json(model.metrics, "metrics"),
        "data_sha256": _metadata_json(model.data_sha256, "data_sha256"),
    }


def _check_dtype(dtype: str) -> None:
    if dtype not in STORAGE_DTYPES:
        raise ValueError(f"dtype must be one of {sorted(STORAGE_DTYPES)}, got {dtype!r:.200}")


def stored_tensors(model: AutoencoderWeights, dtype: str = "float32") -> dict[str, tuple[str, np.ndarray]]:
    """name -> (dtype code, array as stored) for `model` with weights stored as `dtype`."""
    _check_dtype(dtype)
    tensors = {}
    for i, (k, b) in enumerate(zip(model.kernels, model.biases)):
        bias_dtype = "float32" if dtype == "bf16" else dtype   # bf16 files keep float32 biases (a few KB)
        for name, value, dt in ((f"dense_{i}.kernel", k, dtype), (f"dense_{i}.bias", b, bias_dtype)):
            stored = to_storage(value, dt)
            if not np.isfinite(from_storage(stored, STORAGE_DTYPES[dt])).all():
                raise ValueError(f"layer {i}: weights overflow {dt} (values beyond its range)")
            tensors[name] = (STORAGE_DTYPES[dt], stored)
        if model.input_means is not None:
            tensors[f"dense_{i}.input_mean"] = ("F32", np.ascontiguousarray(model.input_means[i], np.float32))
    return tensors


def model_file_bytes(model: AutoencoderWeights, dtype: str = "float32", source: str = "model") -> bytes:
    """The bytes of a current-version model file for `model` (validated first, errors naming `source`), weights
    stored as `dtype`."""
    _check_dtype(dtype)
    model.validate(source)
    tensors = stored_tensors(model, dtype)
    metadata = model_metadata(model)
    metadata[MODEL_DIGEST_KEY] = model_digest(metadata, [(n, *tensors[n]) for n in digest_order(tensors)])
    return safetensors_bytes(tensors, metadata)


def save_model(path: str | os.PathLike, model: AutoencoderWeights, dtype: str = "float32") -> Path:
    """Validate `model` and write it to `path` atomically, weights stored as `dtype`: float32, float16, or bf16
    (kernels rounded to nearest even, biases kept float32: half the size of float32, and exactly what
    precision="bf16" computes with).
    Calibration means, when the model has them, are stored as float32."""
    return write_bytes_atomic(path, model_file_bytes(model, dtype, str(path)))


def _json_field(meta: dict, key: str, source: str):
    if key not in meta:
        raise ModelFileError(f"{source}: metadata lacks {key!r:.200}")
    if not isinstance(meta[key], str):
        raise ModelFileError(f"{source}: metadata {key!r:.200} must be a string")
    return parse_json(meta[key], f"metadata {key!r:.200}", source)


def _version(meta: dict, source: str) -> int:
    if meta.get("format") != FORMAT_NAME:
        raise ModelFileError(f"{source}: format is {meta.get('format')!r:.200}, expected {FORMAT_NAME!r}")
    version = meta.get("format_version")
    if version not in [str(v) for v in READ_VERSIONS]:
        raise ModelFileError(f"{source}: format_version {version!r:.200} is not supported (this aefast reads "
                             f"versions {', '.join(map(str, READ_VERSIONS))})")
    return int(version)


def _file_digest(meta: dict, version: int, source: str) -> str | None:
    """The digest the file declares (format 2: required; format 1: optional), checked for form."""
    key = MODEL_DIGEST_KEY if version >= 2 else TENSORS_DIGEST_KEY
    digest = meta.get(key)
    if version == 1 and MODEL_DIGEST_KEY in meta:
        raise ModelFileError(f"{source}: a version-1 file holds a {MODEL_DIGEST_KEY!r} digest, which only version "
                             "2 files have (format_version was edited?); expected an intact model file")
    if digest is None and version >= 2:
        raise ModelFileError(f"{source}: metadata lacks {key!r}, which every version-{version} file holds")
    if digest is not None and not is_hex_digest(digest):
        raise ModelFileError(f"{source}: metadata {key!r} must be 64 lowercase hex digits, got {digest!r:.200}")
    return digest


def parse_model(data: bytes, source: str = "<bytes>") -> AutoencoderWeights:
    """Parse and fully validate the bytes of a model file (version 1 or 2)."""
    header, start = read_header(data, source)
    meta = header.get("__metadata__")
    if not isinstance(meta, dict):
        raise ModelFileError(f"{source}: no metadata: not an aefast model file")
    version = _version(meta, source)
    sizes = _json_field(meta, "layer_sizes", source)
    acts = _json_field(meta, "activations", source)
    enc = _json_field(meta, "encoder_layers", source)
    shape = _json_field(meta, "input_shape", source)
    scale = _json_field(meta, "pixel_scale", source)
    extras = {k: _json_field(meta, k, source) for k in ("training", "metrics", "data_sha256")}
    if not (isinstance(sizes, list) and 2 <= len(sizes) <= MAX_LAYERS + 1
            and all(is_int(s) for s in sizes)):
        raise ModelFileError(f"{source}: layer_sizes must be a list of 2..{MAX_LAYERS + 1} integers, "
                             f"got {sizes!r:.200}")
    if not (isinstance(acts, list) and all(isinstance(a, str) for a in acts)):
        raise ModelFileError(f"{source}: activations must be a list of names, got {acts!r:.200}")
    if not is_int(enc):
        raise ModelFileError(f"{source}: encoder_layers must be an integer, got {enc!r:.200}")
    if not (isinstance(shape, list) and all(is_int(s) for s in shape)):
        raise ModelFileError(f"{source}: input_shape must be a list of integers, got {shape!r:.200}")
    if not isinstance(scale, (int, float)) or isinstance(scale, bool) or not 0 < abs(scale) < 1e300:
        raise ModelFileError(f"{source}: pixel_scale must be a positive finite number, got {str(scale)[:40]}")
    for k, v in extras.items():
        if not isinstance(v, dict):
            raise ModelFileError(f"{source}: metadata {k!r:.200} must be a JSON object")
    digest = _file_digest(meta, version, source)

    tensors = read_tensors(data, header, start, source)
    n = len(sizes) - 1
    expected = {f"dense_{i}.{p}" for i in range(n) for p in ("kernel", "bias")}
    calibration = {f"dense_{i}.input_mean" for i in range(n)}
    if calibration & tensors.keys():   # optional, but all layers or none
        expected |= calibration
    missing, extra = sorted(expected - tensors.keys()), sorted(tensors.keys() - expected)
    if missing or extra:
        raise ModelFileError(f"{source}: tensors do not match layer_sizes {sizes}: "
                             f"missing {missing}, unexpected {extra}")
    kernels = [tensors[f"dense_{i}.kernel"] for i in range(n)]
    biases = [tensors[f"dense_{i}.bias"] for i in range(n)]
    for i, k in enumerate(kernels):
        if k.ndim != 2 or tuple(k.shape) != (sizes[i], sizes[i + 1]):
            raise ModelFileError(f"{source}: dense_{i}.kernel has shape {tuple(k.shape)}, metadata layer_sizes "
                                 f"says ({sizes[i]}, {sizes[i + 1]})")
    means = None
    if calibration <= tensors.keys():
        means = [tensors[f"dense_{i}.input_mean"] for i in range(n)]
        for i, m in enumerate(means):
            if m.dtype != np.float32 or tuple(m.shape) != (sizes[i],):
                raise ModelFileError(f"{source}: dense_{i}.input_mean must be F32 ({sizes[i]},), got "
                                     f"{m.dtype} {tuple(m.shape)}")
    order = digest_order(tensors)   # stored forms, before BF16 kernels are widened
    kernels = [from_storage(k, header[f"dense_{i}.kernel"]["dtype"]) for i, k in enumerate(kernels)]
    biases = [from_storage(b, header[f"dense_{i}.bias"]["dtype"]) for i, b in enumerate(biases)]
    model = AutoencoderWeights(kernels, biases, acts, enc, tuple(shape), float(scale), **extras,
                               input_means=means)
    check_structure(model, source)
    # The digest after the structure (a structural defect is named as such rather than as a digest mismatch) and
    # before the value ranges (a damaged byte that makes a weight huge is named as damage).
    if version >= 2 and model_digest(meta, [(name, header[name]["dtype"], tensors[name]) for name in order]) \
            != digest:
        raise ModelFileError(f"{source}: the metadata or tensor bytes do not match the file's {MODEL_DIGEST_KEY} "
                             "digest (the file was damaged or edited, or changed by another program while it was "
                             "read); expected an intact model file")
    if version == 1 and digest is not None and tensors_digest([tensors[name] for name in order]) != digest:
        raise ModelFileError(f"{source}: the tensor bytes do not match the file's {TENSORS_DIGEST_KEY} digest (the "
                             "file was damaged, or changed by another program while it was read); expected an "
                             "intact model file")
    check_value_range(model, source)
    model.integrity = INTEGRITY_ABSENT if digest is None else INTEGRITY_VERIFIED
    return model


def read_model(path: str | os.PathLike) -> AutoencoderWeights:
    """Read and fully validate a model file; ModelFileError names the file and the defect."""
    if isinstance(path, (str, bytes)) and not path:   # Path("") is ".", which would be "is a directory"
        raise ModelFileError("empty path: expected the path of a .safetensors model file")
    path = Path(path)
    try:
        data = read_file_bytes(path)
    except FileNotFoundError:
        raise ModelFileError(f"{path}: no such model file") from None
    except IsADirectoryError:
        raise ModelFileError(f"{path}: is a directory, expected a .safetensors model file") from None
    except OSError as e:
        raise ModelFileError(f"{path}: cannot read ({e.strerror})") from None
    except ValueError as e:   # e.g. a NUL byte in the path
        if isinstance(e, ModelFileError):
            raise
        raise ModelFileError(f"{path!r}: not a usable path ({e})") from None
    return parse_model(data, str(path))
