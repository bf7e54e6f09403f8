"""Issues 7 and 15 on the data side: pickles that use only allowed globals but tamper with a dtype's state,
training checkpoints that try to smuggle a pickle in, gzip bombs, absurd IDX dimensions, `fetch` verifying a named
folder and `show` arguments."""
import gzip
import io
import os
import pickle
import re
import shutil
import struct
import tracemalloc
import zlib

import numpy as np
import pytest

from aefast.data import MNIST_FILES, load_mnist, read_labels
from aefast.data.__main__ import main as data_main
from aefast.data._unpickle import restricted_load
from aefast.data.files import DATA_DIR_ENV
from aefast.data.idx import IMAGES_MAGIC, LABELS_MAGIC, encode_idx, parse_idx
from aefast.errors import DataFileError

PLAIN_F8_STATE = np.dtype("f8").__reduce__()[2]   # (3, '<', None, None, None, -1, -1, 0)


class _Reduce:
    """Pickles as `func(*args)` followed by BUILD with `state` (when given)."""

    def __init__(self, func, args, state=None):
        self.func, self.args, self.state = func, args, state

    def __reduce__(self):
        return (self.func, self.args) if self.state is None else (self.func, self.args, self.state)


def _array_pickle_with_dtype_state(dtype_state, protocol=2) -> bytes:
    """The pickle of np.array([1.0, 2.0]) whose dtype is rebuilt with `dtype_state`: only allowed globals."""
    rebuild, args, (version, shape, _, fortran, raw) = np.array([1.0, 2.0]).__reduce__()
    dtype = _Reduce(np.dtype, ("f8", False, True), dtype_state)
    return pickle.dumps(_Reduce(rebuild, args, (version, shape, dtype, fortran, raw)), protocol=protocol)


@pytest.mark.parametrize("protocol", [2, 4])
def test_plain_dtype_state_still_loads(protocol):
    np.testing.assert_array_equal(restricted_load(io.BytesIO(_array_pickle_with_dtype_state(PLAIN_F8_STATE,
                                                                                             protocol))), [1, 2])
    big_endian = (3, ">") + PLAIN_F8_STATE[2:]
    assert restricted_load(io.BytesIO(_array_pickle_with_dtype_state(big_endian))).shape == (2,)  # not refused


@pytest.mark.parametrize("state", [
    PLAIN_F8_STATE[:7] + (1,),                        # NPY_ITEM_REFCOUNT: raw bytes taken as object pointers
    PLAIN_F8_STATE[:7] + (63,),                       # every flag
    PLAIN_F8_STATE[:5] + (16, 8, 0),                  # a new item size
    (3, "<", None, ("a",), {"a": (np.dtype("f8"), 0)}, 8, 8, 0),   # fields
    "not a tuple",
], ids=["refcount-flag", "all-flags", "itemsize", "fields", "junk"])
def test_tampered_dtype_state_is_refused_before_numpy_applies_it(state):
    with pytest.raises(pickle.UnpicklingError, match="dtype state .* refused"):
        restricted_load(io.BytesIO(_array_pickle_with_dtype_state(state)))


def test_checkpoint_holding_a_pickled_object_is_refused_and_never_run(tmp_path):
    from aefast.train.checkpoint import load_checkpoint

    marker = tmp_path / "pwned"
    path = tmp_path / "checkpoint.npz"
    evil = np.array([_Reduce(os.system, (f"touch {marker}",))], dtype=object)
    np.savez(path, **{"model/0": evil, "state": np.frombuffer(b"{}", np.uint8)})
    with pytest.raises(ValueError, match="not a readable aefast training checkpoint"):
        load_checkpoint(path)
    assert not marker.exists()


# --- bounded decompression, IDX sizes in Python integers, `fetch` verifies, `show` arguments ----------

def _bomb(header: bytes, inflated_bytes: int) -> bytes:
    """A gzip stream of `header` then zeros, `inflated_bytes` in all, built without holding them in memory."""
    packer = zlib.compressobj(9, zlib.DEFLATED, 31)
    parts = [packer.compress(header)]
    zeros = bytes(1 << 20)
    for _ in range((inflated_bytes - len(header)) >> 20):
        parts.append(packer.compress(zeros))
    return b"".join(parts) + packer.flush()


def _peak_bytes_of(fn) -> int:
    tracemalloc.start()
    try:
        fn()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


BOMB_BYTES = 256 << 20   # inflates to 256 MiB from ~250 KB


def test_a_gzip_bomb_with_an_honest_header_is_refused_after_its_declared_size(tmp_path):
    path = tmp_path / "train-labels-idx1-ubyte.gz"
    path.write_bytes(_bomb(struct.pack(">II", LABELS_MAGIC, 60000), BOMB_BYTES))

    def read():
        with pytest.raises(DataFileError, match="inflates to more than the 60008 bytes its header declares"):
            read_labels(path)

    assert _peak_bytes_of(read) < 8 << 20     # the old reader inflated all 256 MiB first


def test_a_header_declaring_more_than_the_mnist_file_is_refused_before_inflating(tmp_path, mnist_dir):
    """load_mnist bounds each file by MNIST's known size: a labels file claiming 10**9 labels is refused at once."""
    folder = tmp_path / "mnist"
    folder.mkdir()
    for name in ("train-images-idx3-ubyte.gz", "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"):
        (folder / name).symlink_to(mnist_dir / name)
    (folder / "train-labels-idx1-ubyte.gz").write_bytes(_bomb(struct.pack(">II", LABELS_MAGIC, 10**9), BOMB_BYTES))

    def load():
        with pytest.raises(DataFileError, match=r"train-labels-idx1-ubyte.gz: header declares dimensions "
                                                r"\(1000000000,\), 1000000008 bytes of data, more than the 60008"):
            load_mnist(folder)

    assert _peak_bytes_of(load) < 128 << 20   # the real training images (47 MB), not the 256 MiB bomb


def test_a_raw_file_with_a_huge_tail_is_refused_without_reading_the_tail(tmp_path):
    path = tmp_path / "labels"
    path.write_bytes(encode_idx(np.zeros(10, np.uint8)))
    with open(path, "r+b") as f:
        f.truncate(4 << 30)      # sparse: no disk used, but 4 GiB if read whole

    def read():
        with pytest.raises(DataFileError, match=f"is {4 << 30} bytes, more than the 18 bytes its header declares"):
            read_labels(path)

    assert _peak_bytes_of(read) < 1 << 20


@pytest.mark.parametrize("dims, expected", [
    ((2**31, 2**31, 4), 16 + 2**64), ((2**32 - 1,) * 3, 16 + (2**32 - 1) ** 3), ((2**16, 2**16, 2**16), 16 + 2**48),
])
def test_idx_byte_counts_are_computed_without_wrapping(dims, expected):
    data = struct.pack(">I3I", IMAGES_MAGIC, *dims)
    with pytest.raises(DataFileError, match=rf"truncated: 16 bytes, expected {expected} for dimensions"):
        parse_idx(data, source="f", magic=IMAGES_MAGIC)


def test_dimensions_no_array_can_hold_are_a_data_file_error():
    data = struct.pack(">I3I", IMAGES_MAGIC, 0, 2**32 - 1, 2**32 - 1)
    with pytest.raises(DataFileError, match="cannot be held in an array"):
        parse_idx(data, source="f", magic=IMAGES_MAGIC)


def _mnist_copy(tmp_path, mnist_dir):
    folder = tmp_path / "mnist"
    folder.mkdir()
    for f in MNIST_FILES.values():
        shutil.copyfile(mnist_dir / f.gz_name, folder / f.gz_name)
    return folder


@pytest.mark.parametrize("damage, words", [
    (lambda data: data[: len(data) // 2], "damaged gzip data"),
    (lambda data: gzip.compress(struct.pack(">II", IMAGES_MAGIC, 10000)), "magic number 0x00000803, expected 0x00000801"),
    (lambda data: b"", "too short for an IDX header"),
    (lambda data: gzip.compress(gzip.decompress(data)[:-1] + b"\x0a"), "label value 10 out of range"),
    (lambda data: gzip.compress(gzip.decompress(data) + b"\x00"), "more than the 10008 bytes its header declares"),
], ids=["truncated", "wrong-magic", "empty", "label-10", "trailing-byte"])
def test_fetch_verifies_the_files_of_a_named_folder(tmp_path, mnist_dir, monkeypatch, capsys, damage, words):
    folder = _mnist_copy(tmp_path, mnist_dir)
    target = folder / "t10k-labels-idx1-ubyte.gz"
    target.write_bytes(damage(target.read_bytes()))
    monkeypatch.setenv(DATA_DIR_ENV, str(folder))
    assert data_main(["fetch"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("python -m aefast.data: error: 1 of the data files failed verification")
    assert str(target) in err and re.search(words, err)


def test_fetch_accepts_valid_files_that_are_not_mnist_and_says_so(tmp_path, mnist_dir, monkeypatch, capsys):
    """A named folder may hold another data set in MNIST's format (docs/data.md): verified, noted, exit 0."""
    folder = _mnist_copy(tmp_path, mnist_dir)
    target = folder / "t10k-labels-idx1-ubyte.gz"
    target.write_bytes(gzip.compress(gzip.decompress(target.read_bytes())[:-1] + b"\x09"))
    monkeypatch.setenv(DATA_DIR_ENV, str(folder))
    assert data_main(["fetch"]) == 0
    out, err = capsys.readouterr()
    assert f"note: {target} is a valid IDX file but not MNIST's test_labels" in err and str(target) in out


@pytest.mark.parametrize("count", ["0", "-5", "100000", "x"])
def test_show_refuses_counts_outside_1_to_400(count, mnist_dir, capsys, tmp_path):
    with pytest.raises(SystemExit) as info:
        data_main(["--data-dir", str(mnist_dir), "show", "--count", count, "--out", str(tmp_path / "g.png")])
    assert info.value.code == 2 and "--count: expected" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


def test_show_refuses_an_existing_directory_as_out(mnist_dir, capsys, tmp_path):
    with pytest.raises(SystemExit) as info:
        data_main(["--data-dir", str(mnist_dir), "show", "--out", str(tmp_path)])
    assert info.value.code == 2
    assert f"--out {tmp_path} is a directory; expected the path of the PNG file" in capsys.readouterr().err


def test_show_into_an_unwritable_place_is_a_clear_error(mnist_dir, capsys, tmp_path):
    (tmp_path / "file").write_bytes(b"")
    assert data_main(["--data-dir", str(mnist_dir), "show", "--count", "3", "--out",
                      str(tmp_path / "file" / "g.png")]) == 1
    assert f"--out {tmp_path / 'file' / 'g.png'}: cannot write the PNG there" in capsys.readouterr().err
