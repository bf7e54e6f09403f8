"""Issue 7 gaps on the data side: pickles that use only allowed globals but tamper with a dtype's state, and
training checkpoints that try to smuggle a pickle in."""
import io
import os
import pickle

import numpy as np
import pytest

from aefast.data._unpickle import restricted_load

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
