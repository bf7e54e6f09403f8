"""The numba backend (import path kept): `Network` (numba_network.py) and its kernels (numba_kernels.py).

numba is imported when this module is imported, so `aefast` imports it only on first use of this backend.
"""
from __future__ import annotations

from .numba_kernels import (ACTIVATION_CODES, COMPUTES, DECODE_ONCE_ROWS, KR, MB, MR, NB, NR,  # noqa: F401
                            WEIGHT_DTYPES, _activate_rows, _decode_all, _dense_parallel, _dense_serial, _elu,
                            _q8_parallel, _q8_row_block, _q8_serial, _quantize_rows, _round_rows_to_bf16,
                            _row_block, _weight_panel)
from .numba_network import Network  # noqa: F401
