"""load_mnist: the MNIST splits the tutorial uses, as uint8 or float32 in [0, 1]."""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Literal, Mapping, Sequence

import numpy as np

from ..errors import DataFileError
from .files import MNIST_FILES
from .idx import IMAGE_SIDE, IdxContent, read_images, read_labels
from .sources import mnist_files, named_folder

PIXEL_DEPTH = 255  # float pixels are uint8 / 255, as in the tutorial
VALIDATION_SIZE = 5000  # the first 5000 training images are the validation split (tutorial)


@dataclass(frozen=True)
class Split:
    """One split: x is (N, 784) or (N, 28, 28), uint8 or float32 in [0, 1]; y is (N,) uint8 labels 0..9."""

    x: np.ndarray
    y: np.ndarray

    def __len__(self) -> int:
        return len(self.y)


@dataclass(frozen=True)
class Mnist:
    """The three splits plus provenance: `sha256[key]` is the SHA-256 of each file's uncompressed IDX bytes and
    `files[key]` where it was read from (keys: train_images, train_labels, test_images, test_labels)."""

    train: Split
    validation: Split
    test: Split
    sha256: Mapping[str, str] = field(repr=False)
    files: Mapping[str, Path] = field(repr=False)


def _pixels(images: np.ndarray, dtype: str, flat: bool) -> np.ndarray:
    # images: (N, 28, 28) uint8 read-only view -> a fresh, writable array the caller owns.
    if dtype == "uint8":
        out = images.copy()
    else:
        out = images.astype(np.float32)
        out /= np.float32(PIXEL_DEPTH)
    return out.reshape(len(out), IMAGE_SIDE * IMAGE_SIDE) if flat else out


def _read_all(files: Mapping[str, Path]) -> dict[str, IdxContent]:
    # Bounded by MNIST's known sizes: a file claiming (or inflating to) more is refused before it fills memory.
    return {key: (read_images if key.endswith("images") else read_labels)(path, MNIST_FILES[key].idx_bytes)
            for key, path in files.items()}


def load_mnist(
    data_dir: str | os.PathLike | None = None,
    *,
    dtype: Literal["float32", "uint8"] = "float32",
    flat: bool = True,
    validation_size: int = VALIDATION_SIZE,
    cache_dir: str | os.PathLike | None = None,
    mirrors: Sequence[str] | None = None,
    download: bool = True,
) -> Mnist:
    """Load MNIST: train (training images [validation_size:]), validation ([:validation_size]) and test.

    Files come from, in order: `data_dir`, the AEFAST_DATA_DIR folder, the user cache (`cache_dir` overrides it),
    then a download into the cache (see `mnist_files`). Raises DataFileError for missing or damaged files.
    """
    if dtype not in ("float32", "uint8"):
        raise ValueError(f"dtype must be 'float32' or 'uint8', got {dtype!r}")
    source = dict(cache_dir=cache_dir, mirrors=mirrors, download=download)
    if named_folder(data_dir) is not None:
        files = mnist_files(data_dir, **source)
        contents = _read_all(files)
    else:
        # Cached copies are hash-checked here, while being read, instead of reading them twice; a damaged one
        # sends us back to mnist_files(verify=True), which deletes and re-fetches it.
        files = mnist_files(**source, verify=False)
        try:
            contents = _read_all(files)
            damaged = any(c.sha256 != MNIST_FILES[key].sha256 for key, c in contents.items())
        except DataFileError:
            damaged = True
        if damaged:
            files = mnist_files(**source, verify=True)
            contents = _read_all(files)
    for part in ("train", "test"):
        n_images = len(contents[f"{part}_images"].array)
        n_labels = len(contents[f"{part}_labels"].array)
        if n_images != n_labels:
            raise DataFileError(
                f"{files[part + '_images']}: {n_images} images but {files[part + '_labels']} has {n_labels} "
                "labels; expected equal counts"
            )
    n_train = len(contents["train_labels"].array)
    if not 0 <= validation_size <= n_train:
        raise ValueError(f"validation_size must be in 0..{n_train}, got {validation_size}")

    train_x = _pixels(contents["train_images"].array, dtype, flat)
    train_y = contents["train_labels"].array.copy()
    return Mnist(
        train=Split(train_x[validation_size:], train_y[validation_size:]),
        validation=Split(train_x[:validation_size], train_y[:validation_size]),
        test=Split(_pixels(contents["test_images"].array, dtype, flat), contents["test_labels"].array.copy()),
        sha256=MappingProxyType({key: c.sha256 for key, c in contents.items()}),
        files=MappingProxyType(dict(files)),
    )
