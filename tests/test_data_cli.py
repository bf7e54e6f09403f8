"""python -m aefast.data fetch | show."""
import pytest

from aefast.data.__main__ import main
from aefast.data.files import DATA_DIR_ENV


def test_fetch_prints_where_the_files_are(mnist_dir, capsys):
    assert main(["--data-dir", str(mnist_dir), "fetch"]) == 0
    out = capsys.readouterr().out
    assert str(mnist_dir / "t10k-labels-idx1-ubyte.gz") in out and "train_images" in out


def test_show_saves_a_png_grid(mnist_dir, tmp_path, capsys):
    pytest.importorskip("matplotlib")
    out = tmp_path / "grid.png"
    assert main(["--data-dir", str(mnist_dir), "show", "--out", str(out), "--count", "12", "--split", "test"]) == 0
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "saved 12 test digits" in capsys.readouterr().out


def test_missing_folder_is_a_clear_error_not_a_traceback(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv(DATA_DIR_ENV, raising=False)
    assert main(["--data-dir", str(tmp_path / "none"), "fetch"]) == 1
    assert "error:" in capsys.readouterr().err
