import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def mnist_dir() -> Path:
    """The directory holding the four MNIST IDX files (AEFAST_DATA_DIR, else ../shared/data/mnist)."""
    d = Path(os.environ.get("AEFAST_DATA_DIR") or REPO.parent / "shared" / "data" / "mnist")
    if not (d / "train-images-idx3-ubyte.gz").exists() and not (d / "train-images-idx3-ubyte").exists():
        pytest.fail(f"MNIST IDX files not found in {d}: set AEFAST_DATA_DIR to the folder that holds them")
    return d
