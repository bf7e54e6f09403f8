"""The argparse `type=` converter for an image size "HxW", shared by every command line that resizes images
(`aefast train --resize`, `aefast compress/reconstruct/score --resize`)."""
from __future__ import annotations

import argparse


def image_size(text: str) -> tuple[int, int]:
    """'HxW' -> (H, W); ArgumentTypeError naming what was expected."""
    from .images import parse_size

    try:
        return parse_size(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None
