"""The IDX reader/writer on the real MNIST files and on damaged ones."""
import gzip
import struct

import numpy as np
import pytest

from aefast.data import MNIST_FILES, read_images, read_labels, write_idx
from aefast.data.idx import IMAGES_MAGIC, encode_idx, parse_idx
from aefast.errors import DataFileError


def test_reads_the_shared_mnist_files_and_hashes_their_content(mnist_dir):
    labels = read_labels(mnist_dir / "t10k-labels-idx1-ubyte.gz")
    images = read_images(mnist_dir / "t10k-images-idx3-ubyte.gz")
    assert images.array.shape == (10000, 28, 28) and images.array.dtype == np.uint8
    assert labels.array.shape == (10000,) and set(np.unique(labels.array)) == set(range(10))
    assert images.sha256 == MNIST_FILES["test_images"].sha256
    assert labels.sha256 == MNIST_FILES["test_labels"].sha256
    assert 0 < images.array.mean() < 255


def test_gzip_or_raw_is_decided_by_magic_bytes_not_name(tmp_path, mnist_dir):
    raw = gzip.decompress((mnist_dir / "t10k-labels-idx1-ubyte.gz").read_bytes())
    misnamed = tmp_path / "labels.gz"  # raw bytes under a .gz name
    misnamed.write_bytes(raw)
    gz_no_suffix = tmp_path / "labels"
    gz_no_suffix.write_bytes(gzip.compress(raw))
    a, b = read_labels(misnamed), read_labels(gz_no_suffix)
    assert a.sha256 == b.sha256 == MNIST_FILES["test_labels"].sha256
    np.testing.assert_array_equal(a.array, b.array)


@pytest.mark.parametrize("compress", [True, False])
def test_write_then_read_round_trips(tmp_path, compress):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(3, 28, 28), dtype=np.uint8)
    labels = np.array([0, 9, 4], dtype=np.uint8)
    write_idx(tmp_path / "i", images, compress=compress)
    write_idx(tmp_path / "l", labels, compress=compress)
    np.testing.assert_array_equal(read_images(tmp_path / "i").array, images)
    np.testing.assert_array_equal(read_labels(tmp_path / "l").array, labels)
    assert (tmp_path / "i").read_bytes()[:2] == (b"\x1f\x8b" if compress else b"\x00\x00")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["i", "l"]  # no temp files left


def _images_bytes(n=2, side=28):
    return struct.pack(">IIII", IMAGES_MAGIC, n, side, side) + bytes(n * side * side)


@pytest.mark.parametrize(
    "data, reader, message",
    [
        (_images_bytes()[:-1], read_images, "truncated"),
        (_images_bytes()[:10], read_images, "truncated header"),
        (_images_bytes()[:3], read_images, "too short"),
        (_images_bytes() + b"\0", read_images, "trailing bytes"),
        (_images_bytes(side=27), read_images, "expected 28x28"),
        (_images_bytes(), read_labels, "magic number 0x00000803, expected 0x00000801"),
        (encode_idx(np.zeros(4, np.uint8)), read_images, "magic number 0x00000801, expected 0x00000803"),
        (encode_idx(np.array([1, 10], np.uint8)), read_labels, "label value 10 out of range"),
        (b"\x1f\x8b" + b"not really gzip" * 4, read_images, "damaged gzip"),
        (gzip.compress(_images_bytes())[:-12], read_images, "damaged gzip"),
    ],
    ids=["truncated", "short-header", "tiny", "trailing", "wrong-dims", "images-as-labels", "labels-as-images",
         "bad-label", "garbage-gzip", "cut-gzip"],
)
def test_damaged_files_raise_data_file_error_naming_file_and_problem(tmp_path, data, reader, message):
    path = tmp_path / "damaged-idx.gz"
    path.write_bytes(data)
    with pytest.raises(DataFileError, match=message) as info:
        reader(path)
    assert str(path) in str(info.value)


def test_truncated_real_file_is_rejected(tmp_path, mnist_dir):
    data = (mnist_dir / "train-labels-idx1-ubyte.gz").read_bytes()
    path = tmp_path / "train-labels-idx1-ubyte.gz"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(DataFileError, match="damaged gzip"):
        read_labels(path)


def test_missing_file_is_a_data_file_error(tmp_path):
    with pytest.raises(DataFileError, match="not found"):
        read_images(tmp_path / "nope.gz")


def test_parse_is_a_view_not_a_copy():
    data = encode_idx(np.arange(6, dtype=np.uint8))
    arr = parse_idx(data, source="mem", magic=0x801)
    assert not arr.flags.writeable and arr.base is not None
