import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
SHARED_ROOT = REPO.parent / "shared"


def resolve_mnist_dir(shared_root: Path = SHARED_ROOT) -> Path:
    """The folder holding the four MNIST IDX files, found the way aefast.data.load_mnist finds them:
    $AEFAST_DATA_DIR, else `shared_root`/data/mnist (the CI checkout's ../shared), else the user cache
    ($AEFAST_CACHE_DIR or ~/.cache/aefast/mnist, hash-checked), else a download into that cache."""
    from aefast.data import DATA_DIR_ENV, mnist_files
    from aefast.data.files import find_in_dir

    env = os.environ.get(DATA_DIR_ENV)
    if env:
        find_in_dir(env)     # DataFileError listing what is missing
        return Path(env)
    shared = shared_root / "data" / "mnist"
    if shared.is_dir():
        try:
            find_in_dir(shared)
            return shared
        except ValueError:   # an incomplete ../shared: use the cache instead
            pass
    files = mnist_files()   # no folder named: the verified cache, downloading what is missing
    (folder,) = {path.parent for path in files.values()}
    return folder


@pytest.fixture(scope="session")
def mnist_resolver():
    """resolve_mnist_dir itself, for the test that runs it with ../shared hidden."""
    return resolve_mnist_dir


@pytest.fixture(scope="session")
def mnist_dir() -> Path:
    """The directory holding the four MNIST IDX files (see resolve_mnist_dir)."""
    from aefast.errors import DataFileError

    try:
        return resolve_mnist_dir()
    except DataFileError as e:
        pytest.fail(f"MNIST not found and not downloadable ({e}); set AEFAST_DATA_DIR to the folder that holds it")
