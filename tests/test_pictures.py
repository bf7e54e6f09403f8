"""The pictures the commands draw hold the right images, in the right places and order (decoded, not just "a PNG").

- `score --png`: the K worst-scored images, worst first, above their reconstructions, each captioned with its rank,
  score and name; `reconstruct --png`: the first images above their reconstructions, captioned with their names.
  Both are labelled Pillow grids (aefast/cli/pictures.py): every tile is cut out at its place in grid_layout and
  compared with the expected image pixel for pixel (nearest-neighbour enlargement undone after checking it), every
  label is compared with its text drawn alone in the same font, and every other pixel must be white: no filler.
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
from aefast.cli.pictures import COLUMNS, MIN_TILE, ROW_NAMES, grid_layout, label_font, text_width, to_uint8

Image = pytest.importorskip("PIL.Image")
WHITE = 255
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _rgb(path) -> np.ndarray:
    assert path.read_bytes()[:8] == PNG_SIGNATURE
    return np.asarray(Image.open(path).convert("RGB"))


def _drawn_alone(text: str, width: int, height: int) -> np.ndarray:
    """`text` drawn in the grids' font at (0, 0) on a white width x height canvas."""
    from PIL import ImageDraw

    img = Image.new("RGB", (width, height), (WHITE,) * 3)
    ImageDraw.Draw(img).text((0, 0), text, fill=(0, 0, 0), font=label_font())
    return np.asarray(img)


def pairs_grid_tiles(path, k: int, h: int, w: int, c: int = 1,
                     captions: list[tuple[str, list[str]]] = ()) -> tuple[np.ndarray, np.ndarray, list[list[str]]]:
    """(originals, reconstructions, captions) as drawn in a save_pairs_grid PNG of k pairs of (h, w, c) images with
    caption rows `captions` ((row name, k texts) each): uint8 (k, h, w) for gray, (k, h, w, 3) for colour; the texts
    drawn above image i, top to bottom. Fails unless the canvas has the layout's size and no room for a filler
    column; the tiles sit row-major in bands of COLUMNS with each input above its reconstruction; every tile is an
    exact nearest-neighbour enlargement to at least MIN_TILE pixels; a gray tile has R = G = B; the margin names the
    rows of every band, level with them; every label is its text as drawn alone, not blank; captions are centred
    above their image; and every pixel outside the tiles and labels is white."""
    img = _rgb(path)
    font = label_font()
    layout = grid_layout(k, h, w, captions)
    tw, th = layout.tile
    assert (tw, th) == (w * layout.scale, h * layout.scale) and max(tw, th) >= MIN_TILE
    assert img.shape == (layout.size[1], layout.size[0], 3)
    inputs = [corners[0] for corners in layout.tiles]
    for i, ((x, y), (rx, ry)) in enumerate(layout.tiles):
        assert rx == x and ry >= y + th, f"image {i}: input not above its reconstruction"
        if i % COLUMNS:
            assert inputs[i - 1][0] + tw <= x and inputs[i - 1][1] == y, f"image {i} not right of image {i - 1}"
        elif i:
            assert y > layout.tiles[i - 1][1][1] + th, f"image {i} does not open a band below the last"
    assert layout.size[0] - max(x for x, _ in inputs) - tw < tw, "room for a filler column"

    free = np.ones(img.shape[:2], bool)
    out = ([], [])
    for corners in layout.tiles:
        for row, (x, y) in enumerate(corners):
            tile = img[y:y + th, x:x + tw]
            free[y:y + th, x:x + tw] = False
            small = tile[::layout.scale, ::layout.scale]
            np.testing.assert_array_equal(np.repeat(np.repeat(small, layout.scale, 0), layout.scale, 1), tile)
            if c == 1:
                assert (small[..., 0] == small[..., 1]).all() and (small[..., 0] == small[..., 2]).all()
                small = small[..., 0]
            out[row].append(small)

    line_h = int(font.getbbox("Ag")[3]) + 3
    for label in layout.labels:
        bw = text_width(font, label.text)
        drawn = img[label.y:label.y + line_h, label.x:label.x + bw]
        np.testing.assert_array_equal(drawn, _drawn_alone(label.text, bw, line_h), err_msg=f"label {label.text!r}")
        assert (drawn < 128).any(), f"label {label.text!r} is blank"
        free[label.y:label.y + line_h, label.x:label.x + bw] = False
    assert (img[free] == WHITE).all(), "something drawn outside the tiles and labels"

    left = min(x for x, _ in inputs)
    margin = [lab for lab in layout.labels if lab.x + text_width(font, lab.text) < left]
    row_names = [name for name, _ in captions] + list(ROW_NAMES)
    assert [lab.text for lab in margin] == row_names * -(-k // COLUMNS)
    for band in range(-(-k // COLUMNS)):
        (_, y_in), (_, y_out) = layout.tiles[band * COLUMNS]
        named = margin[band * len(row_names):(band + 1) * len(row_names)]
        assert y_in <= named[-2].y and named[-2].y + line_h <= y_in + th, "'input' not level with the inputs"
        assert y_out <= named[-1].y and named[-1].y + line_h <= y_out + th, "'reconstruction' not level"
        assert all(a.y + line_h <= b.y for a, b in zip(named, named[1:]))
    texts = [lab for lab in layout.labels if lab not in margin]
    assert len(texts) == k * len(captions)
    above = []
    for i, (x, y) in enumerate(inputs):
        mine = texts[i * len(captions):(i + 1) * len(captions)]
        for lab in mine:
            assert lab.y + line_h <= y and abs(lab.x + text_width(font, lab.text) / 2 - (x + tw / 2)) <= 1
        above.append([lab.text for lab in mine])
    return np.array(out[0]), np.array(out[1]), above


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
                 "--csv", str(tmp_path / "s.csv"), "-o", str(tmp_path / "s.npy"), "--quiet"]) == 0
    order = np.argsort(-aefast.score(x), kind="stable")[:k]
    assert set(order[:3]) == set(odd)
    ranked = [int(r["index"]) for r in csv.DictReader((tmp_path / "s.csv").open())][:k]
    np.testing.assert_array_equal(ranked, order)
    scores = np.load(tmp_path / "s.npy")
    captions = [("rank", [str(r + 1) for r in range(k)]), ("score", [f"{scores[i]:.4g}" for i in order]),
                ("name", [f"#{i}" for i in order])]
    tops, bottoms, above = pairs_grid_tiles(tmp_path / "worst.png", k, 28, 28, captions=captions)
    np.testing.assert_array_equal(tops, x[order], err_msg="the top row must be the worst images, worst first")
    recon = aefast.reconstruct(x[order], clip=True).reshape(k, 28, 28)
    np.testing.assert_array_equal(bottoms, to_uint8(recon))
    assert above == [[str(r + 1), f"{scores[i]:.4g}", f"#{i}"] for r, i in enumerate(order)]


def test_score_png_of_a_folder_names_its_files_shortened_to_the_column(tmp_path):
    folder = tmp_path / "photos"
    folder.mkdir()
    pixels = np.random.default_rng(4).integers(0, 256, (3, 28, 28), dtype=np.uint8)
    names = ["a.png", "holiday_photo_from_the_beach_0001.png", "b.png"]
    for p, name in zip(pixels, names):
        Image.fromarray(p).save(folder / name)
    assert main(["score", str(folder), "--top", "3", "--png", str(tmp_path / "w.png"), "--csv",
                 str(tmp_path / "s.csv"), "--quiet"]) == 0
    rows = list(csv.DictReader((tmp_path / "s.csv").open()))
    shown = [r["name"] for r in rows]
    assert sorted(shown) == sorted(names)
    from aefast.cli.pictures import fit_text
    column = 84   # 28 pixels x3, wider than CAPTION_WIDTH
    long_shown = fit_text(label_font(), names[1], column)
    assert long_shown.startswith("holi") and long_shown.endswith("1.png") and "..." in long_shown
    assert text_width(label_font(), long_shown) <= column < text_width(label_font(), names[1])
    captions = [("rank", ["1", "2", "3"]), ("score", [f"{float(r['score']):.4g}" for r in rows]), ("name", shown)]
    tops, _, above = pairs_grid_tiles(tmp_path / "w.png", 3, 28, 28, captions=captions)
    assert [a[2] for a in above] == [fit_text(label_font(), n, column) for n in shown]
    np.testing.assert_array_equal(tops, pixels[[names.index(n) for n in shown]])


def test_reconstruct_png_shows_the_first_images_above_their_reconstructions(test_digits, tmp_path):
    x = test_digits[:30]
    np.save(tmp_path / "x.npy", x)
    assert main(["reconstruct", str(tmp_path / "x.npy"), "-o", str(tmp_path / "r.npy"), "--png",
                 str(tmp_path / "g.png"), "--quiet"]) == 0
    recon = np.load(tmp_path / "r.npy")
    tops, bottoms, above = pairs_grid_tiles(tmp_path / "g.png", 20, 28, 28,
                                            captions=[("name", [f"#{i}" for i in range(20)])])
    np.testing.assert_array_equal(tops, x[:20])
    np.testing.assert_array_equal(bottoms, to_uint8(recon[:20]))
    assert above == [[f"#{i}"] for i in range(20)]


def test_colour_grid_keeps_channels_and_tiny_images_are_enlarged(tmp_path):
    from aefast.cli.pictures import save_pairs_grid
    rng = np.random.default_rng(1)
    a = rng.integers(0, 256, (3, 8, 6, 3), dtype=np.uint8)
    b = rng.random((3, 8, 6, 3)).astype(np.float32)
    save_pairs_grid(tmp_path / "c.png", a, b)
    assert grid_layout(3, 8, 6).tile == (48, 64)   # 8 pixels high -> x8, nearest neighbour
    tops, bottoms, above = pairs_grid_tiles(tmp_path / "c.png", 3, 8, 6, 3)
    np.testing.assert_array_equal(tops, a)
    np.testing.assert_array_equal(bottoms, to_uint8(b))
    assert above == [[], [], []]


def test_the_grid_check_fails_on_a_filler_column_a_grey_pixel_or_a_missing_label(tmp_path, monkeypatch):
    """pairs_grid_tiles can fail: a grid with room for a filler column, a grey pixel between the tiles, or a row
    name missing is refused."""
    from aefast.cli import pictures
    a = np.zeros((3, 8, 8, 1), np.uint8)
    pictures.save_pairs_grid(tmp_path / "ok.png", a, a)
    pairs_grid_tiles(tmp_path / "ok.png", 3, 8, 8)
    layout = grid_layout(3, 8, 8)

    def wider(*args, **kwargs):   # the real layout on a canvas one tile wider
        got = real(*args, **kwargs)
        return type(got)((got.size[0] + got.tile[0] + 4, got.size[1]), got.tile, got.scale, got.tiles, got.labels)

    real = pictures.grid_layout
    with monkeypatch.context() as m:
        m.setattr(pictures, "grid_layout", wider)
        m.setitem(globals(), "grid_layout", wider)
        pictures.save_pairs_grid(tmp_path / "wide.png", a, a)
        with pytest.raises(AssertionError, match="room for a filler column"):
            pairs_grid_tiles(tmp_path / "wide.png", 3, 8, 8)
    pixels = np.asarray(Image.open(tmp_path / "ok.png")).copy()
    x, y = layout.tiles[2][0]
    pixels[y + 2, x + layout.tile[0] + 1] = 128                       # one grey pixel beside the last tile
    Image.fromarray(pixels).save(tmp_path / "grey.png")
    with pytest.raises(AssertionError, match="outside the tiles"):
        pairs_grid_tiles(tmp_path / "grey.png", 3, 8, 8)
    label = layout.labels[0]
    assert label.text == "input"
    pixels = np.asarray(Image.open(tmp_path / "ok.png")).copy()
    pixels[label.y:label.y + 18, label.x:label.x + 40] = 255          # the row name wiped out
    Image.fromarray(pixels).save(tmp_path / "unlabelled.png")
    with pytest.raises(AssertionError, match="label 'input'"):
        pairs_grid_tiles(tmp_path / "unlabelled.png", 3, 8, 8)


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
    assert capsys.readouterr().out == f"saved 12 test digits to {tmp_path / 'cli.png'}\n"
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
