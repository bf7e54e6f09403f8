"""argparse `type=` converters shared by the command lines; each raises ArgumentTypeError naming what it expected."""
from __future__ import annotations

from ..data.argtypes import image_size, positive_int  # noqa: F401 (they live below every command line that uses them)
