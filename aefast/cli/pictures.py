"""PNG grids of images above their reconstructions (Pillow), written atomically."""
from __future__ import annotations

import io
import os
from pathlib import Path

import numpy as np

from .._io import write_bytes_atomic

MIN_TILE = 56      # small images (8x8, 28x28) are enlarged, nearest neighbour, to at least this many pixels
COLUMNS = 10
GAP = 2


def to_uint8(pixels: np.ndarray) -> np.ndarray:
    """Float pixels in [0, 1] (clipped) or uint8 -> uint8."""
    if pixels.dtype == np.uint8:
        return pixels
    return np.round(np.clip(pixels, 0, 1) * 255).astype(np.uint8)


def save_pairs_grid(path: str | os.PathLike, originals: np.ndarray, reconstructions: np.ndarray) -> Path:
    """originals, reconstructions: (k, H, W, C) with C 1 or 3, uint8 or float in [0, 1]. Bands of up to COLUMNS
    images, left to right: a row of originals above the row of their reconstructions."""
    from PIL import Image

    a, b = to_uint8(np.asarray(originals)), to_uint8(np.asarray(reconstructions))
    k, h, w, c = a.shape
    scale = max(1, -(-MIN_TILE // max(h, w)))
    th, tw = h * scale, w * scale
    cols, bands = min(k, COLUMNS), -(-k // COLUMNS)
    canvas = Image.new("RGB", (cols * (tw + GAP) + GAP, bands * (2 * th + 3 * GAP) + GAP), (128, 128, 128))
    for i in range(k):
        band, col = divmod(i, COLUMNS)
        x = GAP + col * (tw + GAP)
        for row, source in enumerate((a, b)):
            tile = source[i][..., 0] if c == 1 else source[i]
            img = Image.fromarray(tile, "L" if c == 1 else "RGB").resize((tw, th), Image.Resampling.NEAREST)
            canvas.paste(img.convert("RGB"), (x, GAP + band * (2 * th + 3 * GAP) + row * (th + GAP)))
    buf = io.BytesIO()
    canvas.save(buf, format="PNG")
    return write_bytes_atomic(path, buf.getvalue())
