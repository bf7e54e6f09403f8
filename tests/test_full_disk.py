"""A full disk gives a one-line error naming the output, the bytes needed and the bytes free, and leaves no file.

The outputs are memory-mapped .npy files: a store into a page of a sparse file that the disk has no room for raises
SIGBUS and kills the process (exit 135 from a shell, no message, the hidden temporary left filling the disk). The
space is reserved before the first write, so a full disk raises ENOSPC instead. Tested on a real 1 MiB tmpfs (root
only: skipped with the reason where mounting is not permitted) and with ENOSPC injected."""
import errno
import os
import subprocess
import sys

import numpy as np
import pytest

from aefast import _io
from aefast.cli.streaming import npy_output
from aefast.errors import DiskFullError

N_IMAGES = 3000   # compress: 1.2 MB of codes, reconstruct: 9.4 MB of images; the tmpfs holds 1 MiB


@pytest.fixture
def small_disk(tmp_path):
    """A 1 MiB tmpfs mounted on a fresh folder, unmounted afterwards."""
    mount_point = tmp_path / "small"
    mount_point.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mount_point)],
                             capture_output=True, text=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a 1 MiB tmpfs here (needs root and CAP_SYS_ADMIN): {mounted.stderr.strip()}")
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", str(mount_point)], check=True)


@pytest.fixture(scope="module")
def images_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("full_disk") / "images.npy"
    np.save(path, np.random.default_rng(3).integers(0, 256, size=(N_IMAGES, 28, 28), dtype=np.uint8))
    return path


def _run(*argv):
    return subprocess.run([sys.executable, *argv], capture_output=True, text=True, timeout=300)


@pytest.mark.parametrize("command", ["compress", "reconstruct"])
def test_aefast_command_on_a_full_disk_says_so_and_leaves_nothing(small_disk, images_file, command):
    out = small_disk / "out.npy"
    result = _run("-m", "aefast", command, str(images_file), "-o", str(out), "--quiet")
    assert result.returncode == 1, (result.returncode, result.stderr)   # was -7: SIGBUS
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(f"aefast {command}: error: {out}: not enough disk space: needs "), lines[0]
    assert " bytes free" not in lines[0] and lines[0].endswith(" free"), lines[0]
    assert os.listdir(small_disk) == []   # no hidden temporary keeping the disk full


@pytest.mark.parametrize("output", ["out.npy", "out.zarr"])
def test_dask_file_job_on_a_full_disk_says_so_and_leaves_nothing(small_disk, images_file, output):
    pytest.importorskip("dask.array")
    pytest.importorskip("zarr")
    out = small_disk / output
    result = _run("-m", "aefast.dask", "reconstruct", "default", str(images_file), str(out), "--chunk-rows", "500")
    assert result.returncode == 1, (result.returncode, result.stderr)
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith(f"python -m aefast.dask: error: {out}: not enough disk space: needs "), last
    assert os.listdir(small_disk) == []


def test_injected_enospc_raises_disk_full_and_removes_the_temporary(tmp_path, monkeypatch):
    def no_space(fd, offset, length):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "posix_fallocate", no_space)
    target = tmp_path / "r.npy"
    with pytest.raises(DiskFullError) as info:
        with npy_output(target, (1000, 784), np.float32) as out:
            out[:] = 1.0   # never reached: the space is reserved before the first write
    err = info.value
    assert err.errno == errno.ENOSPC and isinstance(err, OSError)
    assert err.needed == 1000 * 784 * 4 + 128 and err.free > 0
    assert str(err) == f"{target}: not enough disk space: needs {err.needed:,} bytes, {err.free:,} free"
    assert os.listdir(tmp_path) == []


def test_reserve_space_without_posix_fallocate_zero_fills_the_range(tmp_path, monkeypatch):
    monkeypatch.delattr(os, "posix_fallocate", raising=False)
    path = tmp_path / "f.bin"
    path.write_bytes(b"header")
    _io.reserve_space(path, 6, 3_000_000)
    data = path.read_bytes()
    assert data[:6] == b"header" and len(data) == 3_000_006 and not any(data[6:])
    assert os.stat(path).st_blocks * 512 >= 3_000_000   # allocated, not sparse


def test_reserve_space_allocates_the_blocks(tmp_path):
    array = _io.create_npy(tmp_path / "a.npy", (2000, 100), np.float32)
    assert os.stat(tmp_path / "a.npy").st_blocks * 512 >= array.nbytes


@pytest.mark.parametrize("output", ["out.npy", "out.zarr"])
def test_dask_cluster_job_on_a_full_disk_kills_no_worker(small_disk, images_file, output):
    """Over worker processes a memory-mapped write to a full disk killed each worker with SIGBUS (the nanny restarts
    it, the scheduler gives up with KilledWorker); the space is reserved on the client before any block runs."""
    distributed = pytest.importorskip("distributed")
    pytest.importorskip("zarr")
    import aefast.dask

    out = small_disk / output
    with distributed.LocalCluster(n_workers=1, threads_per_worker=1, processes=True, dashboard_address=":0") as cluster:
        with pytest.raises(DiskFullError, match=f"{out}: not enough disk space: needs "):
            aefast.dask.process_file("reconstruct", None, images_file, out, address=cluster.scheduler_address,
                                     chunk_rows=500)
        with distributed.Client(cluster) as client:
            assert sum(client.run(lambda: 1).values()) == 1   # the worker is alive
    assert os.listdir(small_disk) == []
