"""argparse `type=` converters shared by the command lines; each raises ArgumentTypeError naming what it expected."""
from __future__ import annotations

import argparse

from ..data.size_arg import image_size  # noqa: F401 (the HxW converter lives with the image data)


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value}")
    return value
