"""argparse `type=` converters for the image and count settings that several command lines share (`aefast train`,
`python -m aefast.analyze`, `aefast compress/reconstruct/score`); each raises ArgumentTypeError naming what it
expected."""
from __future__ import annotations

import argparse


def image_size(text: str) -> tuple[int, int]:
    """'HxW' -> (H, W)."""
    from .images import parse_size

    try:
        return parse_size(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def positive_int(text: str) -> int:
    """A count of images, epochs, threads or units: an integer >= 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value}")
    return value
