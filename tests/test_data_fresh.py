"""A fresh machine: the tests find MNIST the way load_mnist does, without the CI checkout's ../shared folder."""
import gzip
import shutil

import pytest

from aefast.data import CACHE_DIR_ENV, DATA_DIR_ENV, MNIST_FILES, load_mnist
from aefast.data import fetch, hub


def _fill_cache(cache, mnist_dir):
    cache.mkdir()
    for f in MNIST_FILES.values():
        if (mnist_dir / f.gz_name).is_file():
            shutil.copyfile(mnist_dir / f.gz_name, cache / f.gz_name)
        else:
            (cache / f.gz_name).write_bytes(gzip.compress((mnist_dir / f.stem).read_bytes()))


@pytest.fixture
def no_network(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("the test tried to download MNIST")

    monkeypatch.setattr(fetch, "_download", refuse)
    monkeypatch.setattr(hub, "fetch_from_hub", refuse)


def test_fixture_uses_the_user_cache_when_shared_is_absent(mnist_dir, mnist_resolver, tmp_path, monkeypatch,
                                                          no_network):
    cache = tmp_path / "cache"
    _fill_cache(cache, mnist_dir)
    monkeypatch.delenv(DATA_DIR_ENV, raising=False)
    monkeypatch.setenv(CACHE_DIR_ENV, str(cache))
    found = mnist_resolver(tmp_path / "hidden-shared")
    assert found == cache
    assert len(load_mnist(found, validation_size=0).test) == 10000


def test_fixture_prefers_env_then_shared(mnist_dir, mnist_resolver, tmp_path, monkeypatch, no_network):
    shared = tmp_path / "shared"
    (shared / "data").mkdir(parents=True)
    _fill_cache(shared / "data" / "mnist", mnist_dir)
    monkeypatch.setenv(CACHE_DIR_ENV, str(tmp_path / "empty-cache"))
    monkeypatch.delenv(DATA_DIR_ENV, raising=False)
    assert mnist_resolver(shared) == shared / "data" / "mnist"
    monkeypatch.setenv(DATA_DIR_ENV, str(mnist_dir))
    assert mnist_resolver(shared) == mnist_dir


def test_damaged_cache_without_shared_is_refetched_not_trusted(mnist_dir, mnist_resolver, tmp_path, monkeypatch):
    cache = tmp_path / "cache"
    _fill_cache(cache, mnist_dir)
    (cache / MNIST_FILES["test_labels"].gz_name).write_bytes(gzip.compress(b"not mnist"))
    monkeypatch.delenv(DATA_DIR_ENV, raising=False)
    monkeypatch.setenv(CACHE_DIR_ENV, str(cache))
    asked = []

    def offline_download(f, cache_dir, mirrors, unreachable, warned, progressbar):
        asked.append(f.key)
        shutil.copyfile(tmp_path / "good.gz", cache_dir / f.gz_name)
        return cache_dir / f.gz_name, []

    good = MNIST_FILES["test_labels"]
    shutil.copyfile(mnist_dir / good.gz_name, tmp_path / "good.gz")
    monkeypatch.setattr(fetch, "_download", offline_download)
    assert mnist_resolver(tmp_path / "hidden-shared") == cache
    assert asked == ["test_labels"]
