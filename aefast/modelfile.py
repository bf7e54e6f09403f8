"""The aefast model file: a safetensors file holding a stacked dense autoencoder.

Format (version 1) is documented in docs/format.md. In short:
  tensors   dense_{i}.kernel  (in_i, out_i)  F32, F16 or BF16
            dense_{i}.bias    (out_i,)       F32, F16 or BF16
            dense_{i}.input_mean (in_i,)     F32, optional (all layers or none): the mean input of each layer on
                                             the training data, used to correct the int8 biases
  metadata  format="aefast.autoencoder", format_version="1", and JSON values for
            layer_sizes, activations, encoder_layers, input_shape, pixel_scale, training, metrics, data_sha256,
            and tensors_sha256 (hex SHA-256 of the tensor bytes; optional for reading, always written).

`read_model` validates everything before returning, and raises `ModelFileError` (a ValueError) for any
defect; `save_model` writes atomically.
"""
from __future__ import annotations

import errno
import hashlib
import json
import math
import os
import re
import stat
import struct
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ._io import write_bytes_atomic
from .errors import ModelFileError

FORMAT_NAME = "aefast.autoencoder"
FORMAT_VERSION = 1
ACTIVATIONS = ("linear", "elu", "sigmoid")
STORAGE_DTYPES = {"float32": "F32", "float16": "F16", "bf16": "BF16"}
_NP_DTYPES = {"F32": np.float32, "F16": np.float16, "BF16": np.uint16}   # BF16: bits, widened on read
_DTYPE_SIZES = {"F32": 4, "F16": 2, "BF16": 2}
# A header larger than this is not an aefast model; refuse before reading it.
MAX_HEADER_BYTES = 1 << 20
MAX_LAYERS = 64
MAX_WIDTH = 1 << 20
# No aefast model file is larger than this (refused before reading).
MAX_FILE_BYTES = 8 + MAX_HEADER_BYTES + 4 * MAX_LAYERS * MAX_WIDTH * 64
# pixel_scale range: 1/pixel_scale and 255/pixel_scale are then normal float32 numbers (no NaN, no subnormal
# flush to 0 when the engine folds 1/pixel_scale into the first layer), and a pixel of 1 maps to more than 5e-8.
MIN_PIXEL_SCALE = 2.0 ** -16
MAX_PIXEL_SCALE = 2.0 ** 24
# metadata key of the tensor digest; see tensors_digest.
DIGEST_KEY = "tensors_sha256"
# AutoencoderWeights.integrity: what the digest check said about the file the weights came from.
INTEGRITY_VERIFIED = "verified"     # the file's tensors_sha256 matched its tensor bytes
INTEGRITY_ABSENT = "absent"         # the file holds no digest (written before aefast stored one): not checked
INTEGRITY_UNCHECKED = "unchecked"   # built in memory, not read from a file
_HEX_DIGITS = frozenset("0123456789abcdef")


@dataclass
class AutoencoderWeights:
    """A stacked dense autoencoder: layer i maps (N, kernels[i].shape[0]) -> (N, kernels[i].shape[1]).

    kernels[i]: (in_i, out_i); biases[i]: (out_i,); activations[i] in ACTIVATIONS.
    The first `encoder_layers` layers are the encoder; the output of layer encoder_layers-1 is the latent code.
    Pixels are stored as value / pixel_scale in [0, 1].
    NumPy scalars and arrays are accepted where numbers and tuples are meant (np.float32(255), np.array([28, 28]))
    and turned into plain Python values. `integrity` (set by the reader, not an argument): INTEGRITY_VERIFIED,
    INTEGRITY_ABSENT or INTEGRITY_UNCHECKED.
    """

    kernels: list[np.ndarray]
    biases: list[np.ndarray]
    activations: list[str]
    encoder_layers: int
    input_shape: tuple[int, ...] = (28, 28)
    pixel_scale: float = 255.0
    training: dict = field(default_factory=dict)
    metrics: dict = field(default_factory=dict)
    data_sha256: dict = field(default_factory=dict)
    # Optional calibration: input_means[i] (in_i,) float32 is layer i's mean input over the training data (see
    # aefast.engine.calibration); int8 engines use it to correct each channel's bias for its weights' rounding.
    input_means: list[np.ndarray] | None = None
    integrity: str = field(default=INTEGRITY_UNCHECKED, init=False, compare=False)

    def __post_init__(self) -> None:
        self._plain_values()

    def _plain_values(self) -> None:
        """NumPy scalars -> Python numbers, a NumPy/list input_shape -> a tuple of Python ints (when it is one)."""
        self.encoder_layers = _plain(self.encoder_layers)
        self.pixel_scale = _plain(self.pixel_scale)
        shape = self.input_shape
        if isinstance(shape, np.ndarray) and shape.ndim == 1:
            shape = shape.tolist()
        if isinstance(shape, (list, tuple)):
            self.input_shape = tuple(_plain(s) for s in shape)

    @property
    def layer_sizes(self) -> list[int]:
        return [int(self.kernels[0].shape[0])] + [int(k.shape[1]) for k in self.kernels]

    @property
    def latent_size(self) -> int:
        return int(self.kernels[self.encoder_layers - 1].shape[1])

    @property
    def input_size(self) -> int:
        return int(self.kernels[0].shape[0])

    def validate(self, source: str = "model") -> "AutoencoderWeights":
        """Check the invariants; raise ModelFileError naming `source` and the defect."""
        def fail(msg: str):
            raise ModelFileError(f"{source}: {msg}")

        self._plain_values()
        n = len(self.kernels)
        if not 2 <= n <= MAX_LAYERS:
            fail(f"expected 2..{MAX_LAYERS} layers (an encoder and a decoder), found {n}")
        if len(self.biases) != n or len(self.activations) != n:
            fail(f"{n} kernels but {len(self.biases)} biases and {len(self.activations)} activations")
        if not 1 <= self.encoder_layers <= n - 1:
            fail(f"encoder_layers={self.encoder_layers} must be between 1 and {n - 1}")
        for i, (k, b, a) in enumerate(zip(self.kernels, self.biases, self.activations)):
            if not isinstance(k, np.ndarray) or k.ndim != 2:
                fail(f"dense_{i}.kernel must be a 2-D array, got shape {getattr(k, 'shape', None)}")
            if not isinstance(b, np.ndarray) or b.ndim != 1:
                fail(f"dense_{i}.bias must be a 1-D array, got shape {getattr(b, 'shape', None)}")
            if k.dtype not in (np.float32, np.float16) or b.dtype not in (np.float32, np.float16):
                fail(f"layer {i}: weights must be float32 or float16, got {k.dtype} and {b.dtype}")
            if min(k.shape) < 1 or max(k.shape) > MAX_WIDTH:
                fail(f"dense_{i}.kernel shape {k.shape} out of range 1..{MAX_WIDTH}")
            if b.shape[0] != k.shape[1]:
                fail(f"dense_{i}.bias has {b.shape[0]} values, expected {k.shape[1]} (kernel {k.shape})")
            if i > 0 and k.shape[0] != self.kernels[i - 1].shape[1]:
                fail(f"dense_{i}.kernel takes {k.shape[0]} inputs but dense_{i-1} gives "
                     f"{self.kernels[i - 1].shape[1]}: shapes do not chain")
            if a not in ACTIVATIONS:
                fail(f"layer {i}: unknown activation {a!r:.200}, expected one of {ACTIVATIONS}")
            if not (np.isfinite(k).all() and np.isfinite(b).all()):
                fail(f"layer {i}: weights contain NaN or infinite values")
        if self.input_means is not None:
            means = self.input_means
            if not isinstance(means, (list, tuple)) or len(means) != n:
                fail(f"input_means must hold one vector per layer ({n}), got {type(means).__name__}")
            for i, (m, width) in enumerate(zip(means, self.layer_sizes)):
                if not isinstance(m, np.ndarray) or m.shape != (width,) or m.dtype != np.float32:
                    fail(f"dense_{i}.input_mean must be float32 ({width},), got "
                         f"{getattr(m, 'dtype', type(m).__name__)} {getattr(m, 'shape', '')}")
                if not np.isfinite(m).all():
                    fail(f"dense_{i}.input_mean contains NaN or infinite values")
        if self.layer_sizes[-1] != self.layer_sizes[0]:
            fail(f"output width {self.layer_sizes[-1]} differs from input width {self.layer_sizes[0]}")
        shape = tuple(self.input_shape)
        if not shape or any(not _is_int(s) or s < 1 for s in shape) or math.prod(shape) != self.input_size:
            fail(f"input_shape {shape} does not hold {self.input_size} values")
        scale = self.pixel_scale
        if not (isinstance(scale, (int, float)) and not isinstance(scale, bool) and math.isfinite(scale)
                and scale > 0):
            fail(f"pixel_scale must be a positive number, got {scale!r:.200}")
        if not MIN_PIXEL_SCALE <= scale <= MAX_PIXEL_SCALE:
            fail(f"pixel_scale {scale!r:.40} is outside {MIN_PIXEL_SCALE!r}..{MAX_PIXEL_SCALE:.0f} (pixels would "
                 "become NaN, infinite or all ~0 in float32); expected e.g. 255 for 8-bit or 1 for [0, 1] images")
        return self


def _plain(value):
    """A NumPy scalar as the Python number it holds; anything else unchanged."""
    return value.item() if isinstance(value, np.generic) else value


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


def tensors_digest(arrays: list[np.ndarray]) -> str:
    """Hex SHA-256 of the tensor bytes as stored (bf16 as its bits), little-endian in C order, in digest order: for
    each layer i, dense_i.kernel, dense_i.bias, then dense_i.input_mean when the file has one (_digest_order).
    Independent of where the tensors sit in the file."""
    h = hashlib.sha256()
    for arr in arrays:
        arr = np.ascontiguousarray(arr)
        h.update((arr.byteswap() if arr.dtype.byteorder == ">" else arr).data)
    return h.hexdigest()


def _metadata(model: AutoencoderWeights, digest: str) -> dict[str, str]:
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
        DIGEST_KEY: digest,
    }


def save_model(path: str | os.PathLike, model: AutoencoderWeights, dtype: str = "float32") -> Path:
    """Validate `model` and write it to `path` atomically, weights stored as `dtype`: float32, float16, or bf16
    (kernels rounded to nearest even, biases kept float32: half the size of float32, and exactly what
    precision="bf16" computes with).
    Calibration means, when the model has them, are stored as float32."""
    if dtype not in STORAGE_DTYPES:
        raise ValueError(f"dtype must be one of {sorted(STORAGE_DTYPES)}, got {dtype!r:.200}")
    model.validate(str(path))
    tensors = {}
    for i, (k, b) in enumerate(zip(model.kernels, model.biases)):
        bias_dtype = "float32" if dtype == "bf16" else dtype   # bf16 files keep float32 biases (a few KB)
        for name, value, dt in ((f"dense_{i}.kernel", k, dtype), (f"dense_{i}.bias", b, bias_dtype)):
            stored = _to_storage(value, dt)
            if not np.isfinite(_from_storage(stored, STORAGE_DTYPES[dt])).all():
                raise ValueError(f"layer {i}: weights overflow {dt} (values beyond its range)")
            tensors[name] = (STORAGE_DTYPES[dt], stored)
        if model.input_means is not None:
            tensors[f"dense_{i}.input_mean"] = ("F32", np.ascontiguousarray(model.input_means[i], np.float32))
    digest = tensors_digest([arr for _, arr in (tensors[name] for name in _digest_order(tensors))])
    return write_bytes_atomic(path, _safetensors_bytes(tensors, _metadata(model, digest)))


def _digest_order(names) -> list[str]:
    """Tensor names in digest order: for each layer, kernel, bias, then input_mean when the file has one."""
    n = sum(1 for name in names if name.endswith(".kernel"))
    return [f"dense_{i}.{part}" for i in range(n) for part in ("kernel", "bias", "input_mean")
            if f"dense_{i}.{part}" in names]


def _to_storage(values: np.ndarray, dtype: str) -> np.ndarray:
    if dtype == "bf16":
        from .engine.precisions import float_to_bf16_bits
        return np.ascontiguousarray(float_to_bf16_bits(values))
    with np.errstate(over="ignore"):  # overflow is detected by the caller, with a clearer message
        return np.ascontiguousarray(values, dtype=np.dtype(dtype))


def _from_storage(arr: np.ndarray, code: str) -> np.ndarray:
    """Stored tensor -> float32/float16 values (BF16 bits widened to float32: exact)."""
    if code == "BF16":
        return (arr.astype(np.uint32) << 16).view(np.float32)
    return arr


def _safetensors_bytes(tensors: dict[str, tuple[str, np.ndarray]], metadata: dict[str, str]) -> bytes:
    """The safetensors container (8-byte little-endian header length, JSON header, tensors back to back in name
    order), written here because safetensors' NumPy API has no bf16. The header is padded with spaces to a
    multiple of 8 bytes, as the safetensors library writes it."""
    header: dict = {"__metadata__": metadata}
    offset, chunks = 0, []
    for name in sorted(tensors):
        code, arr = tensors[name]
        raw = np.ascontiguousarray(arr).astype(arr.dtype.newbyteorder("<"), copy=False).tobytes()
        header[name] = {"dtype": code, "shape": list(arr.shape), "data_offsets": [offset, offset + len(raw)]}
        offset += len(raw)
        chunks.append(raw)
    head = json.dumps(header, separators=(",", ":")).encode()
    head += b" " * (-len(head) % 8)
    return struct.pack("<Q", len(head)) + head + b"".join(chunks)


def _is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


# A JSON string, or an unterminated one running to the end of the text. Possessive, and it cannot fail once it
# has seen the opening quote, so `sub` is one linear pass: the plain `"(?:[^"\\]|\\.)*"` rescanned from every
# quote of an unterminated string (a `"` and 64K escaped quotes took seconds; a 1 MiB header, most of an hour).
_JSON_STRING = re.compile(rb'"(?:[^"\\]++|\\.)*+(?:"|\\?\Z)', re.DOTALL)
MAX_JSON_DEPTH = 32


def _json_depth(raw: bytes) -> int:
    """Deepest [ / { nesting of a JSON text, strings ignored (C-speed passes: regex, translate, cumsum)."""
    brackets = _JSON_STRING.sub(b"", raw).translate(None, delete=bytes(set(range(256)) - set(b"[]{}")))
    if not brackets:
        return 0
    steps = np.frombuffer(brackets, np.uint8)
    return int(np.cumsum(np.where((steps == ord("[")) | (steps == ord("{")), 1, -1)).max())


def _parse_json(text: bytes | str, what: str, source: str):
    """json.loads, with every way it can fail (bad syntax, bad UTF-8, nesting deeper than MAX_JSON_DEPTH, integers
    of more than 4300 digits) reported as a ModelFileError. The depth is checked first: json recurses in C, and
    with a raised recursion limit a hostile header could overflow the C stack."""
    raw = text.encode("utf-8", "surrogatepass") if isinstance(text, str) else bytes(text)
    if _json_depth(raw) > MAX_JSON_DEPTH:
        raise ModelFileError(f"{source}: {what} is not valid JSON for a model file (nested deeper than "
                             f"{MAX_JSON_DEPTH} levels)")
    try:
        return json.loads(raw)
    except (ValueError, RecursionError) as e:   # JSONDecodeError and UnicodeDecodeError are ValueErrors
        raise ModelFileError(f"{source}: {what} is not valid JSON ({type(e).__name__}: {str(e)[:200]})") from None


def _read_header(data: bytes, source: str) -> tuple[dict, int]:
    """Parse and bounds-check the safetensors header before any tensor is touched."""
    if len(data) < 8:
        raise ModelFileError(f"{source}: file is {len(data)} bytes, too short for a safetensors header")
    (n,) = struct.unpack("<Q", data[:8])
    if n == 0 or n > MAX_HEADER_BYTES:
        raise ModelFileError(f"{source}: header length {n} is absurd (expected 1..{MAX_HEADER_BYTES} bytes)")
    if 8 + n > len(data):
        raise ModelFileError(f"{source}: header length {n} runs past the end of the {len(data)}-byte file "
                             "(truncated?)")
    header = _parse_json(data[8:8 + n], "header", source)
    if not isinstance(header, dict):
        raise ModelFileError(f"{source}: header must be a JSON object")
    return header, 8 + n


def _tensors_from(data: bytes, header: dict, start: int, source: str) -> dict[str, np.ndarray]:
    body = len(data) - start
    tensors: dict[str, np.ndarray] = {}
    spans = []
    for name, info in header.items():
        if name == "__metadata__":
            continue
        if not isinstance(info, dict) or set(info) != {"dtype", "shape", "data_offsets"}:
            raise ModelFileError(f"{source}: tensor {name!r:.200} entry malformed: {info!r:.200}")
        dt, shape, offs = info["dtype"], info["shape"], info["data_offsets"]
        if not isinstance(dt, str) or dt not in _NP_DTYPES:
            raise ModelFileError(f"{source}: tensor {name!r:.200} has dtype {dt!r:.200}, expected F32, F16 or BF16")
        if (not isinstance(shape, list) or not all(_is_int(s) and 0 <= s <= MAX_WIDTH for s in shape)
                or len(shape) > 2):
            raise ModelFileError(f"{source}: tensor {name!r:.200} has bad shape {shape!r:.200}")
        if (not isinstance(offs, list) or len(offs) != 2 or not all(_is_int(o) for o in offs)
                or not 0 <= offs[0] <= offs[1] <= body):
            raise ModelFileError(f"{source}: tensor {name!r:.200} offsets {offs!r:.200} fall outside the "
                                 f"{body}-byte data section (truncated?)")
        nbytes = math.prod(shape) * _DTYPE_SIZES[dt]
        if offs[1] - offs[0] != nbytes:
            raise ModelFileError(f"{source}: tensor {name!r:.200} spans {offs[1] - offs[0]} bytes, "
                                 f"its shape {shape} and dtype {dt} need {nbytes}")
        spans.append((offs[0], offs[1], name))
        arr = np.frombuffer(data, dtype=_NP_DTYPES[dt], count=math.prod(shape), offset=start + offs[0])
        tensors[name] = arr.reshape(shape).copy()   # stored form (BF16: bits); parse_model widens after the digest
    spans.sort()
    for (a0, a1, an), (b0, b1, bn) in zip(spans, spans[1:]):
        if b0 < a1:
            raise ModelFileError(f"{source}: tensors {an!r:.200} and {bn!r:.200} overlap")
    # safetensors requires the data section to be exactly the tensors, back to back: a gap or trailing bytes
    # mean a damaged or spliced file.
    covered = sum(b - a for a, b, _ in spans)
    if covered != body:
        raise ModelFileError(f"{source}: data section is {body} bytes but the tensors cover {covered} "
                             "(gaps or trailing bytes: damaged file?)")
    return tensors


def _json_field(meta: dict, key: str, source: str):
    if key not in meta:
        raise ModelFileError(f"{source}: metadata lacks {key!r:.200}")
    if not isinstance(meta[key], str):
        raise ModelFileError(f"{source}: metadata {key!r:.200} must be a string")
    return _parse_json(meta[key], f"metadata {key!r:.200}", source)


def parse_model(data: bytes, source: str = "<bytes>") -> AutoencoderWeights:
    """Parse and fully validate the bytes of a model file."""
    header, start = _read_header(data, source)
    meta = header.get("__metadata__")
    if not isinstance(meta, dict):
        raise ModelFileError(f"{source}: no metadata: not an aefast model file")
    if meta.get("format") != FORMAT_NAME:
        raise ModelFileError(f"{source}: format is {meta.get('format')!r:.200}, expected {FORMAT_NAME!r}")
    if meta.get("format_version") != str(FORMAT_VERSION):
        raise ModelFileError(f"{source}: format_version {meta.get('format_version')!r:.200} is not supported "
                             f"(this aefast reads version {FORMAT_VERSION})")
    sizes = _json_field(meta, "layer_sizes", source)
    acts = _json_field(meta, "activations", source)
    enc = _json_field(meta, "encoder_layers", source)
    shape = _json_field(meta, "input_shape", source)
    scale = _json_field(meta, "pixel_scale", source)
    extras = {k: _json_field(meta, k, source) for k in ("training", "metrics", "data_sha256")}
    if not (isinstance(sizes, list) and 2 <= len(sizes) <= MAX_LAYERS + 1
            and all(_is_int(s) for s in sizes)):
        raise ModelFileError(f"{source}: layer_sizes must be a list of 2..{MAX_LAYERS + 1} integers, "
                             f"got {sizes!r:.200}")
    if not (isinstance(acts, list) and all(isinstance(a, str) for a in acts)):
        raise ModelFileError(f"{source}: activations must be a list of names, got {acts!r:.200}")
    if not _is_int(enc):
        raise ModelFileError(f"{source}: encoder_layers must be an integer, got {enc!r:.200}")
    if not (isinstance(shape, list) and all(_is_int(s) for s in shape)):
        raise ModelFileError(f"{source}: input_shape must be a list of integers, got {shape!r:.200}")
    if not isinstance(scale, (int, float)) or isinstance(scale, bool) or not 0 < abs(scale) < 1e300:
        raise ModelFileError(f"{source}: pixel_scale must be a positive finite number, got {str(scale)[:40]}")
    for k, v in extras.items():
        if not isinstance(v, dict):
            raise ModelFileError(f"{source}: metadata {k!r:.200} must be a JSON object")
    digest = meta.get(DIGEST_KEY)
    if digest is not None and not (isinstance(digest, str) and len(digest) == 64 and set(digest) <= _HEX_DIGITS):
        raise ModelFileError(f"{source}: metadata {DIGEST_KEY!r} must be 64 lowercase hex digits, "
                             f"got {digest!r:.200}")

    tensors = _tensors_from(data, header, start, source)
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
    stored = [tensors[name] for name in _digest_order(tensors)]   # before BF16 kernels are widened
    kernels = [_from_storage(k, header[f"dense_{i}.kernel"]["dtype"]) for i, k in enumerate(kernels)]
    biases = [_from_storage(b, header[f"dense_{i}.bias"]["dtype"]) for i, b in enumerate(biases)]
    model = AutoencoderWeights(kernels, biases, acts, enc, tuple(shape), float(scale), **extras,
                               input_means=means).validate(source)
    # Last, so that a structural defect is named as such rather than as a digest mismatch.
    if digest is not None and tensors_digest(stored) != digest:
        raise ModelFileError(f"{source}: the tensor bytes do not match the file's {DIGEST_KEY} digest (the file "
                             "was damaged, or changed by another program while it was read); expected an intact "
                             "model file")
    model.integrity = INTEGRITY_ABSENT if digest is None else INTEGRITY_VERIFIED
    return model


def _declared_data_end(header: dict) -> int:
    """The end of the data section as the header's well-formed data_offsets declare it (0 if none)."""
    ends = [info["data_offsets"][1] for name, info in header.items()
            if name != "__metadata__" and isinstance(info, dict) and isinstance(info.get("data_offsets"), list)
            and len(info["data_offsets"]) == 2 and _is_int(info["data_offsets"][1])]
    return max(ends, default=0)


def _read_model_bytes(path: Path) -> bytes:
    """The bytes of a model file, read so that no file can hang the reader or make it allocate much more than an
    honest model would need: only regular files (a FIFO, /dev/zero or a socket is refused without blocking, also
    behind a symlink); the header is read and parsed first, and the rest is read only when the header accounts for
    every byte of the file (a 10 GB file with a 100-byte header is refused after reading 8 + 100 bytes)."""
    source = str(path)
    # O_NONBLOCK: opening a FIFO with no writer would otherwise block forever; regular files ignore the flag.
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    with os.fdopen(fd, "rb") as f:
        st = os.fstat(f.fileno())
        if stat.S_ISDIR(st.st_mode):
            raise IsADirectoryError(errno.EISDIR, "is a directory")
        if not stat.S_ISREG(st.st_mode):
            raise ModelFileError(f"{source}: not a regular file (a device, FIFO or socket), expected a "
                                 ".safetensors model file")
        size = st.st_size
        if size == 0:
            # /proc and /sys files say 0 bytes whatever they hold: tell them apart from an empty file.
            if f.read(1):
                raise ModelFileError(f"{source}: reports a size of 0 bytes but has content (a virtual file, as in "
                                     "/proc or /sys?), expected a .safetensors model file")
            raise ModelFileError(f"{source}: empty file (0 bytes), expected a .safetensors model file")
        if size > MAX_FILE_BYTES:
            raise ModelFileError(f"{source}: {size} bytes is far larger than any aefast model")
        head = f.read(min(size, 8 + MAX_HEADER_BYTES))
        header, start = _read_header(head, source)
        declared = start + _declared_data_end(header)
        if size > declared:
            raise ModelFileError(f"{source}: file is {size} bytes but its header describes {declared} "
                                 "(trailing bytes: damaged file, or not an aefast model)")
        # at most `size` bytes in all, even if the file grows while being read; parse_model checks the rest.
        return head + f.read(size - len(head))


def read_model(path: str | os.PathLike) -> AutoencoderWeights:
    """Read and fully validate a model file; ModelFileError names the file and the defect."""
    if isinstance(path, (str, bytes)) and not path:   # Path("") is ".", which would be "is a directory"
        raise ModelFileError("empty path: expected the path of a .safetensors model file")
    path = Path(path)
    try:
        data = _read_model_bytes(path)
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
