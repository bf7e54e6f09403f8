"""The four MNIST files: their names, their known content hashes, and finding them in a folder."""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from ..errors import DataFileError

# Environment variable naming a folder that holds the four files (used as given: never downloaded into).
DATA_DIR_ENV = "AEFAST_DATA_DIR"


@dataclass(frozen=True)
class MnistFile:
    """One MNIST file. `stem` is the IDX name without ".gz"; `sha256` is the SHA-256 of the *uncompressed* IDX
    bytes, which identifies the data whatever gzip settings a mirror used."""

    key: str
    stem: str
    sha256: str
    count: int

    @property
    def gz_name(self) -> str:
        return self.stem + ".gz"

    @property
    def idx_bytes(self) -> int:
        """Size of the uncompressed IDX file: a 16-byte header and 28x28 bytes per image, or 8 + 1 per label."""
        return 16 + self.count * 28 * 28 if self.key.endswith("images") else 8 + self.count


MNIST_FILES: dict[str, MnistFile] = {
    f.key: f
    for f in (
        MnistFile("train_images", "train-images-idx3-ubyte",
                  "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db", 60000),
        MnistFile("train_labels", "train-labels-idx1-ubyte",
                  "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5", 60000),
        MnistFile("test_images", "t10k-images-idx3-ubyte",
                  "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7", 10000),
        MnistFile("test_labels", "t10k-labels-idx1-ubyte",
                  "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2", 10000),
    )
}


def find_in_dir(folder: str | os.PathLike) -> dict[str, Path]:
    """The four files in `folder` (each as NAME.gz or raw NAME, gz preferred), keyed like MNIST_FILES.

    Raises DataFileError listing every missing file: a folder the user named is never downloaded into.
    """
    folder = Path(folder).expanduser()
    if not folder.is_dir():
        raise DataFileError(f"{folder}: MNIST data folder does not exist (expected a folder holding "
                            f"{', '.join(f.gz_name for f in MNIST_FILES.values())})")
    found: dict[str, Path] = {}
    missing: list[str] = []
    for f in MNIST_FILES.values():
        for name in (f.gz_name, f.stem):
            if (folder / name).is_file():
                found[f.key] = folder / name
                break
        else:
            missing.append(f.gz_name)
    if missing:
        raise DataFileError(f"{folder}: missing MNIST file(s) {', '.join(missing)} (either gzipped or raw)")
    return found
