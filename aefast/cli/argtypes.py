"""argparse `type=` converters shared by the command lines (each raises ArgumentTypeError naming what it expected).
UsageError, the error a command reports as `prog: error: ...` with exit status 2, lives in aefast.errors."""
from __future__ import annotations

import argparse

from ..errors import UsageError  # noqa: F401 (re-exported: the commands import it from here)


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value}")
    return value


def image_size(text: str) -> tuple[int, int]:
    """'HxW' -> (H, W)."""
    from ..data.images import parse_size

    try:
        return parse_size(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None
