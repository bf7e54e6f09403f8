"""The pictures the commands draw hold the right images, in the right places and order (decoded, not just "a PNG").

- `score --png`: the K worst-scored images, worst first, above their reconstructions; `reconstruct --png`: the
  first images above their reconstructions. Both are Pillow grids (aefast/cli/pictures.py) with a fixed layout, so
  every tile is cut out and compared with the expected image pixel for pixel (nearest-neighbour enlargement undone
  after checking it), and the gaps must be the grid's gray.
- the data CLI's `show` and training's reconstructions.png are matplotlib figures (axes, titles, a colormap), so
  they are checked through images of uniform, distinct gray levels (or colours): each level's pixels must form one
  block, and the blocks must sit in the order drawn (row by row; images above reconstructions).
"""
from __future__ import annotations

import csv
import gzip

import numpy as np
import pytest

import aefast
from aefast.cli import main
from aefast.cli.pictures import COLUMNS, GAP, MIN_TILE, to_uint8

Image = pytest.importorskip("PIL.Image")
GRID_GRAY = 128


def _rgb(path) -> np.ndarray:
    return np.asarray(Image.open(path).convert("RGB"))


def pairs_grid_tiles(path, k: int, h: int, w: int, c: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """(originals, reconstructions) as drawn in a save_pairs_grid PNG of k pairs of (h, w, c) images: uint8
    (k, h, w) for gray, (k, h, w, 3) for colour. Fails unless the canvas has the grid's size, every tile is an exact
    nearest-neighbour enlargement, a gray tile has R = G = B, and everything outside the tiles is the gap gray."""
    img = _rgb(path)
    scale = max(1, -(-MIN_TILE // max(h, w)))
    th, tw = h * scale, w * scale
    cols, bands = min(k, COLUMNS), -(-k // COLUMNS)
    assert img.shape == (bands * (2 * th + 3 * GAP) + GAP, cols * (tw + GAP) + GAP, 3)
    gaps = np.ones(img.shape[:2], bool)
    out = ([], [])
    for i in range(k):
        band, col = divmod(i, COLUMNS)
        x = GAP + col * (tw + GAP)
        for row in (0, 1):
            y = GAP + band * (2 * th + 3 * GAP) + row * (th + GAP)
            tile = img[y:y + th, x:x + tw]
            gaps[y:y + th, x:x + tw] = False
            small = tile[::scale, ::scale]
            np.testing.assert_array_equal(np.repeat(np.repeat(small, scale, 0), scale, 1), tile)
            if c == 1:
                assert (small[..., 0] == small[..., 1]).all() and (small[..., 0] == small[..., 2]).all()
                small = small[..., 0]
            out[row].append(small)
    assert (img[gaps] == GRID_GRAY).all(), "something drawn outside the tiles"
    return np.array(out[0]), np.array(out[1])


@pytest.fixture(scope="module")
def test_digits(mnist_dir) -> np.ndarray:
    path = mnist_dir / "t10k-images-idx3-ubyte.gz"
    raw = gzip.open(path).read() if path.exists() else (mnist_dir / "t10k-images-idx3-ubyte").read_bytes()
    return np.frombuffer(raw, np.uint8, offset=16).reshape(10000, 28, 28)


# ---- Pillow grids of the inference commands ---------------------------------------------------------------------
def test_score_png_shows_the_worst_images_worst_first_above_their_reconstructions(test_digits, tmp_path):
    x = test_digits[:300].copy()
    odd = [17, 150, 299]
    x[odd] = np.random.default_rng(0).integers(0, 256, (3, 28, 28), dtype=np.uint8)   # noise among digits
    np.save(tmp_path / "mixed.npy", x)
    k = 12   # more than one band of COLUMNS, so the second band's place is checked too
    assert main(["score", str(tmp_path / "mixed.npy"), "--top", str(k), "--png", str(tmp_path / "worst.png"),
                 "--csv", str(tmp_path / "s.csv"), "--quiet"]) == 0
    order = np.argsort(-aefast.score(x), kind="stable")[:k]
    assert set(order[:3]) == set(odd)
    ranked = [int(r["index"]) for r in csv.DictReader((tmp_path / "s.csv").open())][:k]
    np.testing.assert_array_equal(ranked, order)
    tops, bottoms = pairs_grid_tiles(tmp_path / "worst.png", k, 28, 28)
    np.testing.assert_array_equal(tops, x[order], err_msg="the top row must be the worst images, worst first")
    recon = aefast.reconstruct(x[order], clip=True).reshape(k, 28, 28)
    np.testing.assert_array_equal(bottoms, to_uint8(recon))


def test_reconstruct_png_shows_the_first_images_above_their_reconstructions(test_digits, tmp_path):
    x = test_digits[:30]
    np.save(tmp_path / "x.npy", x)
    assert main(["reconstruct", str(tmp_path / "x.npy"), "-o", str(tmp_path / "r.npy"), "--png",
                 str(tmp_path / "g.png"), "--quiet"]) == 0
    recon = np.load(tmp_path / "r.npy")
    tops, bottoms = pairs_grid_tiles(tmp_path / "g.png", 20, 28, 28)
    np.testing.assert_array_equal(tops, x[:20])
    np.testing.assert_array_equal(bottoms, to_uint8(recon[:20]))


def test_colour_grid_keeps_channels_and_small_images_are_enlarged(tmp_path):
    from aefast.cli.pictures import save_pairs_grid
    rng = np.random.default_rng(1)
    a = rng.integers(0, 256, (3, 8, 6, 3), dtype=np.uint8)
    b = rng.random((3, 8, 6, 3)).astype(np.float32)
    save_pairs_grid(tmp_path / "c.png", a, b)
    tops, bottoms = pairs_grid_tiles(tmp_path / "c.png", 3, 8, 6, 3)
    np.testing.assert_array_equal(tops, a)
    np.testing.assert_array_equal(bottoms, to_uint8(b))


# ---- matplotlib figures -----------------------------------------------------------------------------------------
def _largest_component(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(rows, cols) of the largest 4-connected set of True pixels in mask."""
    seen = np.zeros_like(mask)
    best: list[tuple[int, int]] = []
    for start in zip(*np.nonzero(mask)):
        if seen[start]:
            continue
        seen[start] = True
        stack, part = [start], []
        while stack:
            r, c = stack.pop()
            part.append((r, c))
            for rr, cc in ((r + 1, c), (r - 1, c), (r, c + 1), (r, c - 1)):
                if 0 <= rr < mask.shape[0] and 0 <= cc < mask.shape[1] and mask[rr, cc] and not seen[rr, cc]:
                    seen[rr, cc] = True
                    stack.append((rr, cc))
        if len(part) > len(best):
            best = part
    return np.array([p[0] for p in best]), np.array([p[1] for p in best])


def _blocks(img: np.ndarray, colours: list[tuple[int, int, int]], tol: int = 2) -> list[tuple[float, float]]:
    """For each colour: the (row, column) centre of the largest connected set of pixels within `tol` of it, which
    must be one solid block (its bounding box filled to 95% or more) of at least 400 pixels: an image drawn whole,
    not the anti-aliased edge of a letter or a frame line of that shade."""
    centres = []
    for colour in colours:
        mask = (np.abs(img.astype(int) - np.array(colour)) <= tol).all(axis=2)
        rows, cols = _largest_component(mask)
        assert len(rows) >= 400, f"colour {colour}: no image of it drawn ({len(rows)} pixels)"
        box = (rows.max() - rows.min() + 1) * (cols.max() - cols.min() + 1)
        assert len(rows) >= 0.95 * box, f"colour {colour} is not one solid image"
        centres.append(((rows.min() + rows.max()) / 2, (cols.min() + cols.max()) / 2))
    return centres


def _row_major(centres: list[tuple[float, float]], columns: int) -> None:
    """centres[i] must be in grid row i // columns, column i % columns (rows top to bottom, columns left to right)."""
    grid = [centres[i:i + columns] for i in range(0, len(centres), columns)]
    for r, row in enumerate(grid):
        assert all(a[1] < b[1] for a, b in zip(row, row[1:])), f"row {r} out of order"
        assert max(abs(c[0] - row[0][0]) for c in row) < 3, f"row {r} not level"
        if r:
            assert min(c[0] for c in row) > max(c[0] for c in grid[r - 1]), f"row {r} not below row {r - 1}"


def test_data_show_grid_draws_the_images_in_order(tmp_path):
    pytest.importorskip("matplotlib")
    from aefast.data.__main__ import save_digit_grid
    levels = [20 * (i + 1) for i in range(12)]   # gray_r: pixel v is drawn as 255 - v
    images = np.array([np.full((28, 28), v, np.uint8) for v in levels])
    save_digit_grid(tmp_path / "grid.png", images, list(range(12)), columns=5)
    _row_major(_blocks(_rgb(tmp_path / "grid.png"), [(255 - v,) * 3 for v in levels]), columns=5)


def test_data_show_cli_draws_the_first_test_digits(mnist_dir, test_digits, tmp_path, capsys):
    pytest.importorskip("matplotlib")
    from aefast.data.__main__ import main as data_main, save_digit_grid
    from aefast.data import load_mnist
    assert data_main(["--data-dir", str(mnist_dir), "show", "--out", str(tmp_path / "cli.png"), "--count", "12",
                      "--split", "test"]) == 0
    labels = load_mnist(mnist_dir, dtype="uint8", flat=False).test.y[:12]
    save_digit_grid(tmp_path / "direct.png", test_digits[:12], labels)
    np.testing.assert_array_equal(_rgb(tmp_path / "cli.png"), _rgb(tmp_path / "direct.png"))
    save_digit_grid(tmp_path / "other.png", test_digits[12:24], labels)
    assert not np.array_equal(_rgb(tmp_path / "cli.png"), _rgb(tmp_path / "other.png"))   # the check can fail


@pytest.mark.parametrize("shape", [(28, 28), (12, 12, 3)])
def test_training_reconstructions_png_has_inputs_above_outputs_in_order(tmp_path, shape):
    pytest.importorskip("matplotlib")
    from aefast.train.artifacts import plot_reconstructions
    n = 5
    if len(shape) == 2:   # gray colormap: value p is drawn as 255 p
        tops = [(0.1 + 0.08 * i) for i in range(n)]
        bottoms = [(0.55 + 0.08 * i) for i in range(n)]
        images = np.array([np.full(shape, v, np.float32) for v in tops]).reshape(n, -1)
        recons = np.array([np.full(shape, v, np.float32) for v in bottoms]).reshape(n, -1)
        colours = [(round(255 * v),) * 3 for v in tops + bottoms]
    else:
        rng = np.random.default_rng(3)
        values = rng.choice(np.arange(10, 246, 12), (2 * n, 3), replace=True)
        values[:, 0] = np.arange(2 * n) * 24 + 10   # every colour distinct in red
        images = np.array([np.broadcast_to(v / 255, shape) for v in values[:n]], np.float32).reshape(n, -1)
        recons = np.array([np.broadcast_to(v / 255, shape) for v in values[n:]], np.float32).reshape(n, -1)
        colours = [tuple(int(c) for c in v) for v in values]
    plot_reconstructions(tmp_path / "r.png", images, recons, shape)
    _row_major(_blocks(_rgb(tmp_path / "r.png"), colours), columns=n)
