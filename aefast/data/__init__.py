"""The data layer: MNIST (a checked IDX reader, load_mnist, where the files come from) and any image set
(open_images: .npy/.npz, IDX, folders of PNG/JPEG; load_image_splits: a seeded split). See docs/data.md.

Light to import (numpy only); pooch and requests load only when the cache or a download is used, Pillow only when
a folder of images is read.
"""
from __future__ import annotations

from .files import DATA_DIR_ENV, MNIST_FILES, MnistFile
from .idx import IdxContent, read_images, read_labels, write_idx
from .images import FolderScan, ImageSet, open_images, parse_size, scan_folder
from .mnist import Mnist, Split, load_mnist
from .sources import CACHE_DIR_ENV, default_cache_dir, mnist_files
from .splits import ImageSplits, load_image_splits, split_indices

__all__ = [
    "CACHE_DIR_ENV",
    "DATA_DIR_ENV",
    "FolderScan",
    "MNIST_FILES",
    "IdxContent",
    "ImageSet",
    "ImageSplits",
    "Mnist",
    "MnistFile",
    "Split",
    "default_cache_dir",
    "load_image_splits",
    "load_mnist",
    "mnist_files",
    "open_images",
    "parse_size",
    "read_images",
    "read_labels",
    "scan_folder",
    "split_indices",
    "write_idx",
]
