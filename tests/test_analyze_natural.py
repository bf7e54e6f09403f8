"""aefast.analyze.natural: the photo-patch sets (sources, training stride, flips and rotations)."""
import sys

import numpy as np
import pytest

from aefast.analyze import natural


def test_symmetries_are_the_eight_flips_and_rotations_with_the_patches_first():
    rng = np.random.default_rng(0)
    patches = rng.integers(0, 256, size=(3, 4, 4, 3), dtype=np.uint8)
    out = natural.symmetries(patches)
    assert out.shape == (24, 4, 4, 3) and out.dtype == np.uint8
    np.testing.assert_array_equal(out[:3], patches)
    np.testing.assert_array_equal(out[3:6], np.rot90(patches, 1, axes=(1, 2)))
    np.testing.assert_array_equal(out[12:15], patches[:, :, ::-1])
    # the eight versions of one random patch are all different, and every one is a flip/rotation of it
    versions = {out[i].tobytes() for i in range(0, 24, 3)}
    assert len(versions) == 8
    expected = {np.rot90(m, k).tobytes() for m in (patches[0], patches[0][:, ::-1]) for k in range(4)}
    assert versions == expected


def test_training_stride_and_augment_multiply_the_training_patches_and_leave_the_test_patches(tmp_path):
    pytest.importorskip("sklearn")
    plain = natural.prepare(tmp_path, ("gray",))
    more = natural.prepare(tmp_path, ("gray",), train_stride=4, augment=True)
    assert more["gray"]["data"].name == "gray-s4-aug_train.npy" and plain["gray"]["data"].name == "gray_train.npy"
    n_plain, n_more = len(np.load(plain["gray"]["data"])), len(np.load(more["gray"]["data"]))
    assert 8 * 3.5 * n_plain < n_more <= 8 * 4 * n_plain          # 8 symmetries of about 4x the windows
    np.testing.assert_array_equal(np.load(more["gray"]["test_data"]), np.load(plain["gray"]["test_data"]))
    with pytest.raises(ValueError, match="train_stride must be a positive integer, got 0"):
        natural.prepare(tmp_path, ("gray",), train_stride=0)


def test_without_scikit_image_the_skimage_sets_are_skipped_with_a_line_saying_why(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "skimage", None)        # import skimage now raises ImportError
    monkeypatch.setitem(sys.modules, "skimage.data", None)
    assert "scikit-image is not installed" in natural.skimage_missing()
    assert natural.main(["--out", str(tmp_path), "--only", "digits,gray-skimage", "--prepare-only"]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0] == ("skipping gray-skimage: scikit-image is not installed (pip install scikit-image: "
                                   "its sample photos ship inside the package)")
    assert not list((tmp_path / "data").glob("*skimage*"))


def test_the_skimage_sets_come_from_the_photos_inside_scikit_image(tmp_path):
    pytest.importorskip("skimage")
    assert natural.skimage_missing() is None
    sets = natural.prepare(tmp_path, ("colour-skimage",))
    train, test = np.load(sets["colour-skimage"]["data"]), np.load(sets["colour-skimage"]["test_data"])
    assert train.shape[1:] == test.shape[1:] == (32, 32, 3) and len(train) > 4 * len(test) > 0
    # no test patch repeats a training patch, except a uniform one (astronaut.png has black borders in both regions)
    seen = {p.tobytes() for p in train}
    assert not any(p.tobytes() in seen for p in test if p.min() < p.max())


def test_set_values_are_typed_and_hidden_is_always_a_tuple_of_widths():
    assert natural._value("256", "hidden") == (256,)
    assert natural._value("1000,500,", "hidden") == (1000, 500)
    assert natural._value("1e-4", "lr") == 1e-4 and natural._value("8", "epochs") == 8
    assert natural._value("random", "init") == "random"


def test_prepare_without_scikit_image_writes_every_other_set(tmp_path, monkeypatch):
    pytest.importorskip("sklearn")
    monkeypatch.setitem(sys.modules, "skimage", None)
    monkeypatch.setitem(sys.modules, "skimage.data", None)
    assert sorted(natural.prepare(tmp_path)) == ["colour", "digits", "gray"]


def test_a_bad_train_stride_on_the_command_line_is_refused_naming_it(tmp_path, capsys):
    with pytest.raises(SystemExit):
        natural.main(["--out", str(tmp_path), "--train-stride", "0", "--prepare-only"])
    assert "--train-stride must be a positive number of pixels, got 0" in capsys.readouterr().err
    assert not (tmp_path / "data").exists()
