"""python -m aefast.data fetch | show (show's picture: tests/test_pictures.py)."""

from aefast.data.__main__ import main
from aefast.data.files import DATA_DIR_ENV


def test_fetch_prints_where_the_files_are(mnist_dir, capsys):
    assert main(["--data-dir", str(mnist_dir), "fetch"]) == 0
    out = capsys.readouterr().out
    assert str(mnist_dir / "t10k-labels-idx1-ubyte.gz") in out and "train_images" in out


def test_missing_folder_is_a_clear_error_not_a_traceback(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv(DATA_DIR_ENV, raising=False)
    assert main(["--data-dir", str(tmp_path / "none"), "fetch"]) == 1
    assert "error:" in capsys.readouterr().err
