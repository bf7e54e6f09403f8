"""Labelled PNG grids of images above their reconstructions (Pillow), written atomically.

A grid is drawn in bands of up to COLUMNS images on white. In each band, from the top: one line per caption row
(e.g. rank, score, name), the row of input images, the row of their reconstructions; the left margin names every
row ("rank", ..., "input", "reconstruction"). Images are enlarged by a whole factor (nearest neighbour) to at least
MIN_TILE pixels on their longer side. The canvas is as wide as the columns in use: a last band with fewer images
leaves the rest of it white, and nothing is drawn outside the tiles and the labels.
"""
from __future__ import annotations

import io
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from .._io import write_bytes_atomic

MIN_TILE = 64       # small images (8x8: x8, 28x28: x3) are enlarged, nearest neighbour, to at least this many pixels
CAPTION_WIDTH = 80  # a column with captions is at least this wide; longer captions are shortened in the middle
COLUMNS = 10
GAP = 4
LABEL_PX = 12       # font size of labels and captions
BACKGROUND = (255, 255, 255)
INK = (0, 0, 0)
ROW_NAMES = ("input", "reconstruction")
ELLIPSIS = "..."


def to_uint8(pixels: np.ndarray) -> np.ndarray:
    """Float pixels in [0, 1] (clipped) or uint8 -> uint8."""
    if pixels.dtype == np.uint8:
        return pixels
    return np.round(np.clip(pixels, 0, 1) * 255).astype(np.uint8)


def label_font():
    """The font of every label: Pillow's own (no font file needed), LABEL_PX high where Pillow can scale it."""
    from PIL import ImageFont

    try:
        return ImageFont.load_default(size=LABEL_PX)
    except TypeError:   # Pillow < 10.1: its fixed-size bitmap font
        return ImageFont.load_default()


def text_width(font, text: str) -> int:
    return int(font.getbbox(text)[2]) if text else 0


def fit_text(font, text: str, width: int) -> str:
    """`text`, or its start and end joined by ELLIPSIS, whichever is the longest that is at most `width` pixels
    wide (the end of a file name, its number and suffix, is kept as much as its start)."""
    if text_width(font, text) <= width:
        return text
    keep = len(text) - 1
    while keep > 0:
        head, tail = text[: (keep + 1) // 2], text[len(text) - keep // 2:]
        short = head + ELLIPSIS + tail
        if text_width(font, short) <= width:
            return short
        keep -= 1
    return ELLIPSIS if text_width(font, ELLIPSIS) <= width else ""


@dataclass(frozen=True)
class Label:
    """A text drawn with its top-left corner at (x, y), in label_font()."""

    x: int
    y: int
    text: str


@dataclass(frozen=True)
class Layout:
    """Where everything of a grid of k pairs goes. `size` is (width, height); `tiles[i]` is the (x, y) top-left
    corner of image i's input tile and of its reconstruction tile, each `tile` = (width, height) pixels, the
    image enlarged `scale` times; `labels` are the row names and the captions."""

    size: tuple[int, int]
    tile: tuple[int, int]
    scale: int
    tiles: tuple[tuple[tuple[int, int], tuple[int, int]], ...]
    labels: tuple[Label, ...]


def grid_layout(k: int, height: int, width: int, captions: Sequence[tuple[str, Sequence[str]]] = (),
                font=None) -> Layout:
    """The layout of k pairs of height x width images; `captions`: (row name, k texts) per caption row, drawn
    above each image in that order, centred on its column and shortened (fit_text) to the column's width."""
    font = font or label_font()
    scale = max(1, -(-MIN_TILE // max(height, width)))
    th, tw = height * scale, width * scale
    col_w = max(tw, CAPTION_WIDTH) if captions else tw
    line_h = int(font.getbbox("Ag")[3]) + 3
    row_names = [name for name, _ in captions] + list(ROW_NAMES)
    margin = GAP + max(text_width(font, name) for name in row_names) + 2 * GAP
    band_h = len(captions) * line_h + 2 * th + GAP + 3 * GAP
    cols, bands = min(k, COLUMNS), -(-k // COLUMNS)
    tiles, labels = [], []
    for band in range(bands):
        y0 = GAP + band * band_h
        input_y = y0 + len(captions) * line_h
        recon_y = input_y + th + GAP
        for r, name in enumerate(row_names):
            y = y0 + r * line_h if r < len(captions) else (input_y, recon_y)[r - len(captions)] + (th - line_h) // 2
            labels.append(Label(GAP, y, name))
    for i in range(k):
        band, col = divmod(i, COLUMNS)
        x0 = margin + col * (col_w + GAP)
        y0 = GAP + band * band_h
        for r, (_, texts) in enumerate(captions):
            text = fit_text(font, str(texts[i]), col_w)
            labels.append(Label(x0 + (col_w - text_width(font, text)) // 2, y0 + r * line_h, text))
        x = x0 + (col_w - tw) // 2
        input_y = y0 + len(captions) * line_h
        tiles.append(((x, input_y), (x, input_y + th + GAP)))
    size = (margin + cols * (col_w + GAP), GAP + bands * band_h)
    return Layout(size, (tw, th), scale, tuple(tiles), tuple(labels))


def save_pairs_grid(path: str | os.PathLike, originals: np.ndarray, reconstructions: np.ndarray,
                    captions: Sequence[tuple[str, Sequence[str]]] = ()) -> Path:
    """originals, reconstructions: (k, H, W, C) with C 1 or 3, uint8 or float in [0, 1]; captions as in
    grid_layout. Draws the labelled grid (module docstring) and writes it to `path` as PNG, atomically."""
    from PIL import Image, ImageDraw

    a, b = to_uint8(np.asarray(originals)), to_uint8(np.asarray(reconstructions))
    k, h, w, c = a.shape
    font = label_font()
    layout = grid_layout(k, h, w, captions, font)
    canvas = Image.new("RGB", layout.size, BACKGROUND)
    for i, corners in enumerate(layout.tiles):
        for source, corner in zip((a, b), corners):
            tile = source[i][..., 0] if c == 1 else source[i]
            img = Image.fromarray(tile, "L" if c == 1 else "RGB").resize(layout.tile, Image.Resampling.NEAREST)
            canvas.paste(img.convert("RGB"), corner)
    draw = ImageDraw.Draw(canvas)
    for label in layout.labels:
        draw.text((label.x, label.y), label.text, fill=INK, font=font)
    buf = io.BytesIO()
    canvas.save(buf, format="PNG")
    return write_bytes_atomic(path, buf.getvalue())
