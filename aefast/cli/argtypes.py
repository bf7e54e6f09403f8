"""argparse `type=` converters shared by the command lines (each raises ArgumentTypeError naming what it expected).
UsageError, the error a command reports as `prog: error: ...` with exit status 2, lives in aefast.errors."""
from __future__ import annotations

from ..data.argtypes import image_size, positive_int  # noqa: F401 (they live below every command line that uses them)
from ..errors import UsageError  # noqa: F401 (re-exported: the commands import it from here)
