"""The MNIST data layer: a checked IDX reader, load_mnist, and where the files come from (see docs/data.md).

Light to import (numpy only); pooch and requests load only when the cache or a download is used.
"""
from __future__ import annotations

from .files import DATA_DIR_ENV, MNIST_FILES, MnistFile
from .idx import IdxContent, read_images, read_labels, write_idx
from .mnist import Mnist, Split, load_mnist
from .sources import CACHE_DIR_ENV, default_cache_dir, mnist_files

__all__ = [
    "CACHE_DIR_ENV",
    "DATA_DIR_ENV",
    "MNIST_FILES",
    "IdxContent",
    "Mnist",
    "MnistFile",
    "Split",
    "default_cache_dir",
    "load_mnist",
    "mnist_files",
    "read_images",
    "read_labels",
    "write_idx",
]
