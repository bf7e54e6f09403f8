"""A seeded, reproducible train / validation / test split of an image set, or an explicit test set.

    splits = load_image_splits("photos/", seed=0)                       # 80 / 10 / 10 % of the images
    splits = load_image_splits("train.npy", test_data="test.npy")       # validation cut from train.npy only
    splits.train, splits.validation, splits.test                        # index arrays into splits.images.x ...
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import DataFileError
from .images import ImageSet, open_images, peek_image_shape

VAL_FRACTION = 0.1
TEST_FRACTION = 0.1
# A folder holding an IDX training and test file pair in MNIST's naming (MNIST, Fashion-MNIST, KMNIST, ...).
IDX_PAIR = ("train-images-idx3-ubyte", "t10k-images-idx3-ubyte")


def split_indices(n: int, *, val_fraction: float = VAL_FRACTION, test_fraction: float = TEST_FRACTION,
                  seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(train, validation, test) sorted index arrays that partition range(n): one permutation seeded by `seed`;
    validation takes ceil(val_fraction * n) images, test ceil(test_fraction * n), train the rest (at least 1)."""
    if not (0 < val_fraction < 1 and 0 <= test_fraction < 1 and val_fraction + test_fraction < 1):
        raise ValueError(f"need 0 < val_fraction, 0 <= test_fraction and their sum below 1, got "
                         f"{val_fraction} and {test_fraction}")
    n_val, n_test = math.ceil(val_fraction * n), math.ceil(test_fraction * n)
    if n - n_val - n_test < 1:
        raise ValueError(f"{n} images are too few to split into train, validation ({n_val}) and test ({n_test})")
    order = np.random.default_rng(seed).permutation(n)
    val, test, train = order[:n_val], order[n_val:n_val + n_test], order[n_val + n_test:]
    return np.sort(train), np.sort(val), np.sort(test)


@dataclass(frozen=True)
class ImageSplits:
    """train/validation index `images`; test indexes `test_images` (the same set unless a test set was given)."""

    images: ImageSet
    test_images: ImageSet
    train: np.ndarray
    validation: np.ndarray
    test: np.ndarray

    @property
    def image_shape(self) -> tuple[int, ...]:
        return self.images.image_shape

    @property
    def sha256(self) -> dict[str, str]:
        """SHA-256 of the data (what a model file records as data_sha256), keyed by file or folder name; with an
        explicit test set, keyed "data:NAME" and "test_data:NAME" (the two may share a name)."""
        if self.test_images is self.images:
            return {self.images.source.name: self.images.sha256}
        return {f"data:{self.images.source.name}": self.images.sha256,
                f"test_data:{self.test_images.source.name}": self.test_images.sha256}


def _idx_pair(folder: Path) -> tuple[Path, Path] | None:
    found = []
    for stem in IDX_PAIR:
        match = next((folder / n for n in (stem + ".gz", stem) if (folder / n).is_file()), None)
        if match is None:
            return None
        found.append(match)
    return found[0], found[1]


def peek_split_shape(data: str | os.PathLike, *, test_data: str | os.PathLike | None = None,
                     resize: tuple[int, int] | None = None) -> tuple[int, ...]:
    """The image_shape load_image_splits(data, test_data=..., resize=...) will have, read cheaply (headers)."""
    data = Path(data).expanduser()
    pair = _idx_pair(data) if data.is_dir() and test_data is None else None
    return peek_image_shape(pair[0] if pair else data, resize=resize)


def load_image_splits(data: str | os.PathLike, *, test_data: str | os.PathLike | None = None,
                      resize: tuple[int, int] | None = None, val_fraction: float = VAL_FRACTION,
                      test_fraction: float = TEST_FRACTION, seed: int = 0, progress: bool = False) -> ImageSplits:
    """Open `data` (see open_images) and split it reproducibly. With `test_data`, or when `data` is a folder
    holding train-images-idx3-ubyte and t10k-images-idx3-ubyte, that is the test set and only validation is
    cut from the training images. The test set must have the training images' shape."""
    data = Path(data).expanduser()
    pair = _idx_pair(data) if data.is_dir() and test_data is None else None
    if pair is not None:
        data, test_data = pair
    images = open_images(data, resize=resize, progress=progress)
    if test_data is None:
        train, val, test = split_indices(len(images), val_fraction=val_fraction, test_fraction=test_fraction,
                                         seed=seed)
        return ImageSplits(images, images, train, val, test)
    test_images = open_images(test_data, resize=resize, progress=progress)
    if test_images.x.shape[1:] != images.x.shape[1:]:
        raise DataFileError(f"{test_images.source}: test images are {_describe(test_images)}, but the training "
                            f"images in {images.source} are {_describe(images)}; expected the same shape")
    train, val, _ = split_indices(len(images), val_fraction=val_fraction, test_fraction=0.0, seed=seed)
    return ImageSplits(images, test_images, train, val, np.arange(len(test_images)))


def _describe(images: ImageSet) -> str:
    h, w, c = images.x.shape[1:]
    return f"{w}x{h} (width x height) {'grayscale' if c == 1 else 'RGB'}"
