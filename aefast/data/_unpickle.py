"""A restricted unpickler that can rebuild plain numeric NumPy arrays and nothing else.

pickle.load runs whatever callable a pickle names (os.system, builtins.eval, ...). This unpickler resolves only
a few globals, each behind a checked wrapper: ndarray reconstruction, the ndarray class itself, dtype
construction limited to fixed-size numeric types (no object arrays, which could smuggle other objects in), and
str -> latin-1 bytes (how protocol 0-2 pickles written by Python 3 spell bytes).
Any other global raises pickle.UnpicklingError before it is looked up, so it is never imported or called.
It is still only ever fed bytes whose SHA-256 was checked first (see hub.py).
"""
from __future__ import annotations

import io
import pickle

import numpy as np
from numpy._core.multiarray import _reconstruct as _np_reconstruct

# Numeric dtype codes a data pickle may use (as written by NumPy 1.x and 2.x pickles).
_ALLOWED_DTYPES = frozenset(
    ["b1", "u1", "u2", "u4", "u8", "i1", "i2", "i4", "i8", "f2", "f4", "f8"]
)


def _reconstruct(cls, shape, typecode):
    if cls is not np.ndarray:
        raise pickle.UnpicklingError(f"array reconstruction of {cls!r} refused: only numpy.ndarray is allowed")
    return _np_reconstruct(cls, shape, typecode)


def _dtype(spec, align=False, copy=False):
    if not isinstance(spec, str) or spec not in _ALLOWED_DTYPES:
        raise pickle.UnpicklingError(f"dtype {spec!r} refused: only fixed-size numeric dtypes are allowed")
    return np.dtype(spec, align, copy)


def _latin1_encode(text, encoding="latin1"):
    if not isinstance(text, str) or encoding not in ("latin1", "latin-1"):
        raise pickle.UnpicklingError("_codecs.encode refused: only str -> latin1 bytes is allowed")
    return text.encode("latin1")


# (module, name) as written in the pickle -> the checked callable it resolves to.
_ALLOWED_GLOBALS = {
    ("numpy.core.multiarray", "_reconstruct"): _reconstruct,
    ("numpy._core.multiarray", "_reconstruct"): _reconstruct,
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): _dtype,
    ("_codecs", "encode"): _latin1_encode,
}


def _plain_dtype_state(state) -> bool:
    """A dtype's pickled __setstate__ tuple that only sets the byte order: (version, order, None, None, None,
    -1, -1, 0). Any other state could give a numeric dtype object flags (NPY_ITEM_REFCOUNT / HASOBJECT), fields
    or a new item size, making NumPy treat raw pickle bytes as object pointers."""
    return (isinstance(state, tuple) and len(state) == 8 and state[0] in (3, 4) and state[1] in ("<", ">", "|", "=")
            and state[2:] == (None, None, None, -1, -1, 0))


# The pure-Python unpickler (pickle._Unpickler): unlike the C one, its opcodes can be checked (BUILD, below).
class NumpyOnlyUnpickler(pickle._Unpickler):
    dispatch = dict(pickle._Unpickler.dispatch)

    def _checked_build(self):
        obj, state = self.stack[-2], self.stack[-1]
        if isinstance(obj, np.dtype) and not _plain_dtype_state(state):
            raise pickle.UnpicklingError(f"dtype state {state!r:.200} refused: only a byte order may be set")
        pickle._Unpickler.load_build(self)

    dispatch[pickle.BUILD[0]] = _checked_build

    def find_class(self, module: str, name: str):
        try:
            return _ALLOWED_GLOBALS[(module, name)]
        except KeyError:
            raise pickle.UnpicklingError(
                f"pickle global {module}.{name} refused: only NumPy array reconstruction is allowed"
            ) from None

    def persistent_load(self, pid):
        raise pickle.UnpicklingError("persistent ids refused")


def restricted_load(stream: io.BufferedIOBase, *, encoding: str = "latin1"):
    """Unpickle from `stream` admitting only numeric NumPy arrays inside tuples/lists/dicts of plain values.

    encoding="latin1" reads Python 2 pickles (whose array bytes are str) as NumPy documents.
    """
    return NumpyOnlyUnpickler(stream, encoding=encoding).load()
