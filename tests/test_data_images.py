"""Any image set in: .npy (memory-mapped), .npz, IDX, folders of PNG/JPEG; the seeded split; clear errors."""
import numpy as np
import pytest
from PIL import Image

from aefast.data import load_image_splits, open_images, parse_size, split_indices, write_idx
from aefast.data.idx import encode_idx
from aefast.errors import DataFileError


def _rgb(rng, n, h=6, w=5):
    return rng.integers(0, 256, (n, h, w, 3), dtype=np.uint8)


def _save_pngs(folder, images, mode=None, suffix=".png"):
    folder.mkdir(parents=True, exist_ok=True)
    for i, img in enumerate(images):
        Image.fromarray(img.squeeze(-1) if img.shape[-1] == 1 else img, mode).save(folder / f"{i:03d}{suffix}")
    return folder


@pytest.fixture
def rng():
    return np.random.default_rng(0)


def test_npy_is_memory_mapped_not_copied(tmp_path, rng):
    x = rng.integers(0, 256, (20, 7, 9), dtype=np.uint8)
    np.save(tmp_path / "a.npy", x)
    images = open_images(tmp_path / "a.npy")
    assert isinstance(images.x, np.memmap) or isinstance(images.x.base, np.memmap)
    assert images.x.shape == (20, 7, 9, 1) and images.image_shape == (7, 9)
    np.testing.assert_array_equal(images.x[..., 0], x)
    np.testing.assert_allclose(images.float32()[3], x[3].reshape(-1) / 255, rtol=1e-6)
    assert images.name(4) == "#4" and len(images.sha256) == 64


def test_colour_and_float_arrays_and_npz(tmp_path, rng):
    x = _rgb(rng, 4)
    np.savez(tmp_path / "one.npz", anything=x)
    assert open_images(tmp_path / "one.npz").image_shape == (6, 5, 3)
    np.savez(tmp_path / "named.npz", labels=np.arange(4), images=x)
    np.testing.assert_array_equal(open_images(tmp_path / "named.npz").x, x)
    np.save(tmp_path / "f.npy", (x / 255).astype(np.float32))
    np.testing.assert_allclose(open_images(tmp_path / "f.npy").float32(), x.reshape(4, -1) / 255, rtol=1e-6)


@pytest.mark.parametrize("array, message", [
    (np.full((2, 4, 4), np.nan, np.float32), "NaN or infinite"),
    (np.full((2, 4, 4), 255.0), r"range over \[255, 255\]; expected \[0, 1\]"),
    (np.zeros((2, 4, 4), np.int16), "dtype int16; expected uint8"),
    (np.zeros((2, 4, 4, 2), np.uint8), r"shape \(2, 4, 4, 2\); expected"),
    (np.zeros((16,), np.uint8), "shape"),
    (np.zeros((0, 4, 4), np.uint8), "holds no images"),
])
def test_bad_arrays_name_the_file_and_the_problem(tmp_path, array, message):
    path = tmp_path / "bad.npy"
    np.save(path, array)
    with pytest.raises(DataFileError, match=message) as e:
        open_images(path)
    assert str(path) in str(e.value)


def test_bad_npz_and_object_npy_and_missing_file(tmp_path):
    np.savez(tmp_path / "two.npz", a=np.zeros((2, 3, 3), np.uint8), b=np.zeros(2))
    with pytest.raises(DataFileError, match=r"two.npz: holds arrays \['a', 'b'\]; expected one array"):
        open_images(tmp_path / "two.npz")
    np.save(tmp_path / "obj.npy", np.array([None, 1], dtype=object), allow_pickle=True)
    with pytest.raises(DataFileError, match="obj.npy: not a readable numeric .npy"):
        open_images(tmp_path / "obj.npy")
    with pytest.raises(DataFileError, match="no such file or folder"):
        open_images(tmp_path / "nothing.npy")
    (tmp_path / "text.bin").write_bytes(b"hello world")
    with pytest.raises(DataFileError, match="text.bin: not an .npy, .npz or IDX image file"):
        open_images(tmp_path / "text.bin")


@pytest.mark.parametrize("compress", [True, False])
def test_idx_files_of_any_image_size(tmp_path, rng, compress):
    x = rng.integers(0, 256, (5, 10, 12), dtype=np.uint8)       # not 28x28: e.g. a resized set
    path = write_idx(tmp_path / "images-idx3-ubyte", x, compress=compress)
    np.testing.assert_array_equal(open_images(path).x[..., 0], x)
    colour = _rgb(rng, 3)
    np.testing.assert_array_equal(open_images(write_idx(tmp_path / "c-idx4", colour)).x, colour)
    (tmp_path / "cut").write_bytes(encode_idx(x)[:-3])
    with pytest.raises(DataFileError, match="cut: .* for IDX dimensions"):
        open_images(tmp_path / "cut")


def test_grayscale_folder_sorted_by_name_hidden_files_skipped(tmp_path, rng):
    x = rng.integers(0, 256, (6, 8, 7, 1), dtype=np.uint8)
    folder = _save_pngs(tmp_path / "g", x)
    (folder / "._000.png").write_bytes(b"macOS resource fork, not an image")
    (folder / ".cache").mkdir()
    (folder / ".cache" / "thumb.png").write_bytes(b"junk")
    images = open_images(folder)
    assert images.image_shape == (8, 7) and images.names[0] == "000.png"
    np.testing.assert_array_equal(images.x, x)


def test_folder_with_any_colour_image_is_rgb_and_jpeg_reads(tmp_path, rng):
    folder = _save_pngs(tmp_path / "mixed", rng.integers(0, 256, (2, 6, 5, 1), dtype=np.uint8))
    Image.fromarray(_rgb(rng, 1)[0]).save(folder / "z.jpg", quality=95)
    images = open_images(folder)
    assert images.x.shape == (3, 6, 5, 3)
    gray = images.x[0]
    assert (gray[..., 0] == gray[..., 1]).all() and (gray[..., 1] == gray[..., 2]).all()


def test_sixteen_bit_grayscale_is_scaled_not_clipped(tmp_path):
    wide = (np.arange(64, dtype=np.uint16).reshape(8, 8) * 1000)          # 0..63000
    (tmp_path / "w").mkdir()
    Image.fromarray(wide).save(tmp_path / "w" / "a.png")
    x = open_images(tmp_path / "w").x[0, ..., 0]
    np.testing.assert_array_equal(x, np.round(wide / 257).astype(np.uint8))
    assert x.max() == 245                                                  # not clipped at 255 from 256 up


def test_jpeg_exif_orientation_is_applied(tmp_path, rng):
    (tmp_path / "photos").mkdir()
    exif = Image.Exif()
    exif[0x0112] = 6                                     # "rotate 90 degrees clockwise to view"
    Image.fromarray(_rgb(rng, 1, 4, 10)[0]).save(tmp_path / "photos" / "a.jpg", exif=exif)
    Image.fromarray(_rgb(rng, 1, 10, 4)[0]).save(tmp_path / "photos" / "b.jpg")   # already upright, same view size
    assert open_images(tmp_path / "photos").x.shape == (2, 10, 4, 3)


def test_mixed_sizes_need_resize(tmp_path, rng):
    folder = _save_pngs(tmp_path / "sizes", _rgb(rng, 2, 6, 5))
    Image.fromarray(_rgb(rng, 1, 9, 4)[0]).save(folder / "big.png")
    with pytest.raises(DataFileError, match=r"different sizes \(000.png is 5x6, big.png is 4x9, width x height\); "
                                            r"pass --resize HxW \(height x width"):
        open_images(folder)
    images = open_images(folder, resize=(4, 3))
    assert images.x.shape == (3, 4, 3, 3)


def test_unreadable_image_and_empty_folder_are_named(tmp_path, rng):
    folder = _save_pngs(tmp_path / "broken", _rgb(rng, 2))
    (folder / "001.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    with pytest.raises(DataFileError, match="001.png: unreadable image"):
        open_images(folder)
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataFileError, match="empty: no .png, .jpg, .jpeg files"):
        open_images(tmp_path / "empty")
    (tmp_path / "float").mkdir()
    Image.fromarray(np.zeros((3, 3), np.float32)).save(tmp_path / "float" / "f.tiff.png", format="TIFF")
    with pytest.raises(DataFileError, match=r"f.tiff.png: 32-bit float image; expected 8- or 16-bit") as e:
        open_images(tmp_path / "float")
    assert "unreadable image (" not in str(e.value)


def test_parse_size():
    assert parse_size("32x24") == (32, 24) and parse_size("8X8") == (8, 8)
    for bad in ("32", "0x4", "axb", "1x2x3"):
        with pytest.raises(ValueError, match="HxW"):
            parse_size(bad)


def test_split_is_seeded_reproducible_and_partitions():
    a = split_indices(1000, seed=3)
    b = split_indices(1000, seed=3)
    assert all(np.array_equal(p, q) for p, q in zip(a, b))
    assert [len(p) for p in a] == [800, 100, 100]
    assert sorted(np.concatenate(a).tolist()) == list(range(1000))
    assert not np.array_equal(a[1], split_indices(1000, seed=4)[1])
    with pytest.raises(ValueError, match="too few"):
        split_indices(2, val_fraction=0.5, test_fraction=0.4)


def test_explicit_test_set_must_match_shape(tmp_path, rng):
    np.save(tmp_path / "train.npy", _rgb(rng, 30))
    np.save(tmp_path / "test.npy", _rgb(rng, 7))
    splits = load_image_splits(tmp_path / "train.npy", test_data=tmp_path / "test.npy", val_fraction=0.2)
    assert (len(splits.train), len(splits.validation), len(splits.test)) == (24, 6, 7)
    assert set(splits.sha256) == {"data:train.npy", "test_data:test.npy"}
    np.save(tmp_path / "gray.npy", rng.integers(0, 256, (7, 6, 5), dtype=np.uint8))
    with pytest.raises(DataFileError, match=r"gray.npy: test images are 5x6 \(width x height\) grayscale, but the "
                                            r"training images in .*train.npy are 5x6 \(width x height\) RGB"):
        load_image_splits(tmp_path / "train.npy", test_data=tmp_path / "gray.npy")


def test_idx_folder_pair_is_train_and_test(tmp_path, rng):
    write_idx(tmp_path / "train-images-idx3-ubyte.gz", rng.integers(0, 256, (40, 5, 5), dtype=np.uint8))
    write_idx(tmp_path / "t10k-images-idx3-ubyte.gz", rng.integers(0, 256, (9, 5, 5), dtype=np.uint8))
    splits = load_image_splits(tmp_path)
    assert (len(splits.train), len(splits.validation), len(splits.test)) == (36, 4, 9)
    assert splits.test_images.source.name == "t10k-images-idx3-ubyte.gz"
