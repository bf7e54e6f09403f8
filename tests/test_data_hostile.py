"""Hostile image sets: small files that would take much memory or time, and damaged files, give a DataFileError
naming the file and what was expected, never a traceback and never a full decode before a shape check."""
import os
import random
import struct
import sys
import zlib

import numpy as np
import pytest
from PIL import Image, ImageFile

from aefast.data import images as images_module
from aefast.data import open_images
from aefast.data.images import peek_image_shape, scan_folder
from aefast.errors import DataFileError


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def _exif(orientation: int = 1) -> bytes:
    """A little-endian TIFF header with one IFD entry: Orientation (SHORT) = orientation."""
    return b"II*\x00" + struct.pack("<I", 8) + struct.pack("<H", 1) + struct.pack("<HHII", 0x0112, 3, 1,
                                                                                   orientation) + b"\0\0\0\0"


def _png(pixels: np.ndarray, exif: bytes | None = None, exif_after_idat: bool = False) -> bytes:
    """An 8-bit grayscale PNG of `pixels` (H, W), written by hand so that chunks can be damaged one by one."""
    h, w = pixels.shape
    ihdr = struct.pack(">IIBBBBB", w, h, 8, 0, 0, 0, 0)
    raw = b"".join(b"\0" + row.tobytes() for row in pixels.astype(np.uint8))
    chunks = [(b"IHDR", ihdr), (b"IDAT", zlib.compress(raw)), (b"IEND", b"")]
    if exif is not None:
        chunks.insert(2 if exif_after_idat else 1, (b"eXIf", exif))
    return b"\x89PNG\r\n\x1a\n" + b"".join(_chunk(k, d) for k, d in chunks)


@pytest.fixture
def no_decoding(monkeypatch):
    """Any pixel decode by Pillow fails the test: only headers may be read."""
    def load(self):
        raise AssertionError(f"decoded {self.filename}")

    monkeypatch.setattr(ImageFile.ImageFile, "load", load)


def test_folder_shapes_come_from_headers_without_decoding(tmp_path, no_decoding):
    folder = tmp_path / "f"
    folder.mkdir()
    for i in range(3):
        (folder / f"{i}.png").write_bytes(_png(np.zeros((30, 40), np.uint8)))
    assert peek_image_shape(folder) == (30, 40)
    scan = scan_folder(folder)
    assert (scan.height, scan.width, scan.channels, len(scan.files)) == (30, 40, 1, 3)
    exif = Image.Exif()
    exif[0x0112] = 6                                     # stored 30 wide x 40 high, shown turned: 40 x 30
    Image.fromarray(np.zeros((40, 30, 3), np.uint8)).save(folder / "photo.jpg", exif=exif)
    scan = scan_folder(folder)
    assert (scan.height, scan.width, scan.channels, scan.colour_file) == (30, 40, 3, folder / "photo.jpg")


def test_cli_refuses_a_folder_of_the_wrong_size_before_decoding_it(tmp_path, no_decoding, capsys):
    from aefast.cli import main

    folder = tmp_path / "big"
    folder.mkdir()
    for i in range(5):
        (folder / f"{i}.png").write_bytes(_png(np.zeros((300, 200), np.uint8)))
    with pytest.raises(SystemExit, match="^2$"):
        main(["score", str(folder)])
    err = capsys.readouterr().err
    assert f"aefast score: error: {folder} holds 200x300 (width x height) grayscale images, but" in err
    assert err.endswith("resize the folder's images with --resize 28x28 (height x width)\n")
    assert "usage:" not in err


def test_pixels_above_the_stated_limit_are_refused_before_decoding(tmp_path, monkeypatch, no_decoding):
    monkeypatch.setattr(images_module, "MAX_IMAGE_PIXELS", 1000)
    folder = tmp_path / "bomb"
    folder.mkdir()
    (folder / "a.png").write_bytes(_png(np.zeros((30, 40), np.uint8)))     # 1200 pixels: Pillow would only warn
    with pytest.raises(DataFileError, match=r"a.png: 40x30 \(width x height\) = 1,200 pixels, more than the "
                                            r"1,000 pixels an image may have"):
        open_images(folder, resize=(8, 8))


def test_pillow_warning_range_is_an_error_not_a_warning(tmp_path, monkeypatch):
    """Pillow warns between 1x and 2x its MAX_IMAGE_PIXELS; aefast refuses at its own stated limit."""
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)
    monkeypatch.setattr(images_module, "MAX_IMAGE_PIXELS", 1000)
    (tmp_path / "w").mkdir()
    (tmp_path / "w" / "a.png").write_bytes(_png(np.zeros((30, 40), np.uint8)))
    with pytest.raises(DataFileError, match="more than the 1,000 pixels"):
        open_images(tmp_path / "w")


def test_npz_member_is_bounded_by_its_header_before_it_is_read(tmp_path, monkeypatch):
    monkeypatch.setattr(images_module, "MAX_NPZ_BYTES", 1000)
    np.savez_compressed(tmp_path / "z.npz", images=np.zeros((2, 30, 30), np.uint8))   # 1800 bytes inflated

    def read_array(*a, **k):
        raise AssertionError("the member was read")

    monkeypatch.setattr(np.lib.format, "read_array", read_array)
    with pytest.raises(DataFileError, match=r"z.npz: member 'images' declares shape \(2, 30, 30\) uint8, "
                                            r"1,800 bytes, more than the 1,000 bytes"):
        open_images(tmp_path / "z.npz")


def test_npz_member_whose_size_disagrees_with_its_header_is_refused(tmp_path):
    import zipfile

    header = b"{'descr': '|u1', 'fortran_order': False, 'shape': (2, 3, 3), }".ljust(117) + b"\n"
    with zipfile.ZipFile(tmp_path / "short.npz", "w") as z:
        # 2 x 3 x 3 = 18 bytes declared, 5 stored
        z.writestr("images.npy", b"\x93NUMPY\x01\x00" + struct.pack("<H", len(header)) + header + b"\0" * 5)
    with pytest.raises(DataFileError, match="short.npz: member 'images' holds 5 bytes of data, but its header "
                                            r"declares 18 \(shape \(2, 3, 3\) uint8\)"):
        open_images(tmp_path / "short.npz")


def test_empty_and_negative_shape_npy_are_named(tmp_path):
    (tmp_path / "empty.npy").write_bytes(b"")
    with pytest.raises(DataFileError, match=r"empty.npy: not a readable numeric .npy array \(.*\); expected a "
                                            "file written by numpy.save"):
        open_images(tmp_path / "empty.npy")
    header = b"{'descr': '|u1', 'fortran_order': False, 'shape': (-3, 4, 4), }".ljust(117) + b"\n"
    (tmp_path / "neg.npy").write_bytes(b"\x93NUMPY\x01\x00" + struct.pack("<H", len(header)) + header)
    with pytest.raises(DataFileError, match="neg.npy: not a readable numeric .npy array"):
        open_images(tmp_path / "neg.npy")


@pytest.mark.skipif(sys.platform == "darwin", reason="macOS file systems refuse non-UTF-8 names")
def test_non_utf8_file_name_is_named_not_a_traceback(tmp_path):
    folder = tmp_path / "names"
    folder.mkdir()
    (folder / "ok.png").write_bytes(_png(np.zeros((4, 4), np.uint8)))
    with open(os.path.join(os.fsencode(folder), b"caf\xe9.png"), "wb") as f:
        f.write(_png(np.zeros((4, 4), np.uint8)))
    with pytest.raises(DataFileError) as e:
        open_images(folder)
    message = str(e.value)
    message.encode("utf-8")                     # printable
    assert message == (f"{folder}: the file name b'caf\\xe9.png' is not valid UTF-8; expected UTF-8 file names "
                       "(rename the file)")


def test_damaged_exif_names_the_file(tmp_path):
    folder = tmp_path / "exif"
    folder.mkdir()
    (folder / "a.png").write_bytes(_png(np.zeros((4, 4), np.uint8)))
    (folder / "b.png").write_bytes(_png(np.zeros((4, 4), np.uint8), exif=b"not a TIFF header at all"))
    with pytest.raises(DataFileError, match=r"b.png: damaged EXIF data \(.*\); expected a TIFF-format EXIF block"):
        open_images(folder)


def test_exif_orientation_stored_after_the_pixels_is_applied(tmp_path, monkeypatch):
    """A PNG may hold its eXIf chunk after IDAT: the header pass finds it by walking the chunk headers, without
    decoding, and the decode turns the image upright by it."""
    folder = tmp_path / "late"
    folder.mkdir()
    pixels = np.arange(12, dtype=np.uint8).reshape(3, 4)
    (folder / "a.png").write_bytes(_png(pixels, exif=_exif(6), exif_after_idat=True))
    with monkeypatch.context() as m:
        m.setattr(ImageFile.ImageFile, "load", lambda self: pytest.fail("decoded"))
        assert peek_image_shape(folder) == (4, 3)
    x = open_images(folder).x[0, ..., 0]
    np.testing.assert_array_equal(x, np.rot90(pixels, -1))             # orientation 6: turned clockwise
    (folder / "b.png").write_bytes(_png(np.zeros((3, 4), np.uint8)))
    with pytest.raises(DataFileError, match=r"images of different sizes \(a.png is 3x4, b.png is 4x3, width x "
                                            r"height\)"):
        open_images(folder)


def _mutations(seed: int, count: int):
    """Damaged variants of a valid PNG: random bytes of one chunk changed (its CRC recomputed, so that Pillow
    parses the damaged content instead of stopping at the checksum), or the file cut short."""
    rng = random.Random(seed)
    pixels = np.arange(48, dtype=np.uint8).reshape(6, 8)
    h, w = pixels.shape
    for _ in range(count):
        chunks = [[b"IHDR", bytearray(struct.pack(">IIBBBBB", w, h, 8, 0, 0, 0, 0))],
                  [b"eXIf", bytearray(_exif(rng.randint(1, 8)))],
                  [b"IDAT", bytearray(zlib.compress(b"".join(b"\0" + r.tobytes() for r in pixels)))],
                  [b"IEND", bytearray()]]
        target = rng.choice(chunks[:3])[1]
        for _ in range(rng.randint(1, 4)):
            if target:
                target[rng.randrange(len(target))] = rng.randrange(256)
        if rng.random() < 0.2 and target:
            del target[rng.randrange(len(target)):]
        data = b"\x89PNG\r\n\x1a\n" + b"".join(_chunk(k, bytes(d)) for k, d in chunks)
        if rng.random() < 0.1:
            data = data[:rng.randrange(8, len(data))]
        yield data


def test_fuzzed_png_chunks_give_only_data_file_errors(tmp_path):
    folder = tmp_path / "fuzz"
    folder.mkdir()
    outcomes = {"read": 0, "refused": 0}
    for i, data in enumerate(_mutations(seed=25, count=300)):
        (folder / "x.png").write_bytes(data)
        try:
            images = open_images(folder)
        except DataFileError as e:
            assert "x.png" in str(e), str(e)
            outcomes["refused"] += 1
        else:
            assert images.x.dtype == np.uint8 and images.x.ndim == 4
            outcomes["read"] += 1
    assert outcomes["refused"] > 50 and outcomes["read"] > 0, outcomes   # both paths were exercised


def test_palette_image_in_a_grayscale_folder_is_named(tmp_path):
    folder = tmp_path / "pal"
    folder.mkdir()
    for i in range(3):
        Image.fromarray(np.full((4, 4), 40 * i, np.uint8)).save(folder / f"{i}.png")
    gray_palette = Image.fromarray(np.zeros((4, 4), np.uint8), "L").convert("P")     # palette of greys only
    gray_palette.save(folder / "3.png")
    assert scan_folder(folder).channels == 1                                      # a grey palette stays grey
    np.testing.assert_array_equal(open_images(folder).x[3], 0)
    colour = Image.fromarray(np.zeros((4, 4, 3), np.uint8) + np.array([200, 10, 10], np.uint8)).quantize(4)
    colour.save(folder / "4.png")
    scan = scan_folder(folder)
    assert scan.channels == 3 and scan.colour_file == folder / "4.png"


def test_a_folder_that_would_not_fit_in_memory_is_refused_before_decoding(tmp_path, monkeypatch, no_decoding):
    monkeypatch.setattr(images_module, "_physical_memory", lambda: 3_000)
    folder = tmp_path / "many"
    folder.mkdir()
    for i in range(3):
        (folder / f"{i}.png").write_bytes(_png(np.zeros((40, 30), np.uint8)))
    with pytest.raises(DataFileError) as e:
        open_images(folder)
    assert str(e.value) == (f"{folder}: 3 images of 30x40 (width x height) x 1 channel(s) need 3,600 bytes decoded, "
                            "more than this machine's 3,000 bytes of memory; resize them (--resize HxW) or use fewer")


def test_cli_names_the_colour_image_of_a_grayscale_folder(tmp_path, capsys):
    from aefast.cli import main

    folder = tmp_path / "digits"
    folder.mkdir()
    for i in range(3):
        Image.fromarray(np.zeros((28, 28), np.uint8)).save(folder / f"{i}.png")
    Image.fromarray(np.zeros((28, 28, 3), np.uint8) + np.array([200, 10, 10], np.uint8)).quantize(4).save(
        folder / "2b.png")
    with pytest.raises(SystemExit, match="^2$"):
        main(["score", str(folder)])
    assert capsys.readouterr().err.endswith(f"; {folder / '2b.png'} is a colour image (it makes the folder RGB), the "
                                            "model takes grayscale: convert it or leave it out\n")
