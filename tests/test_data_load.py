"""load_mnist: splits, dtypes, shapes, ranges, and where the files come from."""
import shutil

import numpy as np
import pytest

from aefast.data import MNIST_FILES, load_mnist, mnist_files, write_idx
from aefast.data.sources import CACHE_DIR_ENV, DATA_DIR_ENV
from aefast.errors import DataFileError


@pytest.fixture(scope="module")
def mnist_u8(mnist_dir):
    return load_mnist(mnist_dir, dtype="uint8")


@pytest.fixture(autouse=True)
def _no_env_sources(monkeypatch, tmp_path):
    # Each test states its own sources; a leftover env var must not redirect it, and nothing may download.
    monkeypatch.delenv(DATA_DIR_ENV, raising=False)
    monkeypatch.setenv(CACHE_DIR_ENV, str(tmp_path / "empty-cache"))


def test_splits_follow_the_tutorial(mnist_u8):
    assert (len(mnist_u8.train), len(mnist_u8.validation), len(mnist_u8.test)) == (55000, 5000, 10000)
    assert mnist_u8.train.x.shape == (55000, 784) and mnist_u8.train.x.dtype == np.uint8
    assert mnist_u8.train.y.dtype == np.uint8 and mnist_u8.test.y.shape == (10000,)
    assert dict(mnist_u8.sha256) == {k: f.sha256 for k, f in MNIST_FILES.items()}
    # first training labels of MNIST are 5 0 4 1 9; validation is the first 5000, train the rest
    np.testing.assert_array_equal(mnist_u8.validation.y[:5], [5, 0, 4, 1, 9])
    assert mnist_u8.train.x.flags.writeable and mnist_u8.train.x.flags.c_contiguous


def test_float32_is_uint8_over_255_and_shapes_unflatten(mnist_dir, mnist_u8):
    m = load_mnist(mnist_dir, flat=False)
    assert m.train.x.dtype == np.float32 and m.train.x.shape == (55000, 28, 28)
    assert m.test.x.min() == 0.0 and m.test.x.max() == 1.0
    np.testing.assert_array_equal(m.test.x.reshape(10000, 784), mnist_u8.test.x.astype(np.float32) / 255)
    np.testing.assert_array_equal(m.validation.y, mnist_u8.validation.y)


def test_custom_validation_size_and_bad_arguments(mnist_dir):
    m = load_mnist(mnist_dir, dtype="uint8", validation_size=0)
    assert len(m.train) == 60000 and len(m.validation) == 0
    with pytest.raises(ValueError, match="dtype"):
        load_mnist(mnist_dir, dtype="float64")
    with pytest.raises(ValueError, match="validation_size"):
        load_mnist(mnist_dir, validation_size=60001)


def _tiny_mnist(folder, n_train=6, n_test=3, *, n_train_labels=None):
    """Four small IDX files with MNIST names (not MNIST content): for source-order tests."""
    rng = np.random.default_rng(1)
    write_idx(folder / "train-images-idx3-ubyte.gz", rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8))
    write_idx(folder / "train-labels-idx1-ubyte", rng.integers(0, 10, n_train_labels or n_train, dtype=np.uint8),
              compress=False)
    write_idx(folder / "t10k-images-idx3-ubyte.gz", rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8))
    write_idx(folder / "t10k-labels-idx1-ubyte.gz", rng.integers(0, 10, n_test, dtype=np.uint8))
    return folder


def test_explicit_dir_wins_over_env_var(tmp_path, monkeypatch, mnist_dir):
    monkeypatch.setenv(DATA_DIR_ENV, str(mnist_dir))
    tiny = _tiny_mnist(tmp_path)
    m = load_mnist(tiny, validation_size=2)
    assert (len(m.train), len(m.validation), len(m.test)) == (4, 2, 3)
    assert m.files["train_labels"] == tiny / "train-labels-idx1-ubyte"  # raw file found too


def test_env_var_is_used_and_is_never_downloaded_into(tmp_path, monkeypatch):
    monkeypatch.setenv(DATA_DIR_ENV, str(_tiny_mnist(tmp_path)))
    assert mnist_files()["test_images"] == tmp_path / "t10k-images-idx3-ubyte.gz"
    (tmp_path / "t10k-images-idx3-ubyte.gz").unlink()
    with pytest.raises(DataFileError, match="missing MNIST file.*t10k-images-idx3-ubyte.gz"):
        mnist_files()
    assert not (tmp_path / "t10k-images-idx3-ubyte.gz").exists()


def test_explicit_missing_dir_is_an_error(tmp_path):
    with pytest.raises(DataFileError, match="does not exist"):
        load_mnist(tmp_path / "nothing-here")


def test_cache_is_used_when_no_folder_is_named(tmp_path, mnist_dir):
    cache = tmp_path / "cache"
    shutil.copytree(mnist_dir, cache)
    files = mnist_files(cache_dir=cache, download=False)
    assert files == {k: cache / f.gz_name for k, f in MNIST_FILES.items()}


def test_cache_env_var_and_empty_cache_without_download(tmp_path, monkeypatch):
    monkeypatch.setenv(CACHE_DIR_ENV, str(tmp_path / "c"))
    with pytest.raises(DataFileError, match=f"{tmp_path / 'c'}.*not cached and download=False"):
        load_mnist(download=False)


def test_count_mismatch_between_images_and_labels(tmp_path):
    with pytest.raises(DataFileError, match="6 images but .* has 5 labels"):
        load_mnist(_tiny_mnist(tmp_path, n_train_labels=5))
