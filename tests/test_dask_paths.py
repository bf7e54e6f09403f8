"""Dask file jobs whose workers run in another folder, or cannot see the client's files.

Workers open the input and write the output by path. A relative path handed to them would be read against the
worker's working folder: the chunks land there and the client renames an output that holds only metadata (Zarr reads
back as zeros), and the input read is whatever file has that name in the worker's folder. Every path is made
absolute on the client, and each worker must see the input (same size and mtime) and the temporary output before
any block runs."""
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

da = pytest.importorskip("dask.array")
distributed = pytest.importorskip("distributed")
zarr = pytest.importorskip("zarr")

import aefast  # noqa: E402
import aefast.dask  # noqa: E402
from aefast.dask.files import _worker_view  # noqa: E402
from aefast.engine.api import DEFAULT_MODEL_PATH  # noqa: E402
from aefast.errors import ClusterError  # noqa: E402

N_IMAGES = 200


@pytest.fixture(scope="module")
def workers_folder(tmp_path_factory):
    return tmp_path_factory.mktemp("workers_cwd")


@pytest.fixture(scope="module")
def elsewhere_address(workers_folder, tmp_path_factory):
    """A LocalCluster of one worker process whose working folder is `workers_folder` (a preload changes it)."""
    preload = tmp_path_factory.mktemp("preload") / "chdir_preload.py"
    preload.write_text(textwrap.dedent(f"""
        import os

        def dask_setup(worker):
            os.chdir({str(workers_folder)!r})
    """))
    with distributed.LocalCluster(n_workers=1, threads_per_worker=1, processes=True, dashboard_address=":0",
                                  preload=[str(preload)]) as cluster, distributed.Client(cluster) as client:
        assert set(client.run(os.getcwd).values()) == {str(workers_folder)}
        yield cluster.scheduler_address


@pytest.fixture
def images(tmp_path, workers_folder, monkeypatch):
    """in.npy in the client's working folder (tmp_path), and a different in.npy in the workers' folder."""
    rng = np.random.default_rng(11)
    real = rng.integers(0, 256, size=(N_IMAGES, 28, 28), dtype=np.uint8)
    np.save(workers_folder / "in.npy", rng.integers(0, 256, size=(N_IMAGES, 28, 28), dtype=np.uint8))
    monkeypatch.chdir(tmp_path)
    np.save("in.npy", real)
    (tmp_path / "out").mkdir()
    yield real
    (workers_folder / "in.npy").unlink()


def _read(path):
    return np.load(path) if str(path).endswith(".npy") else zarr.open_array(str(path), mode="r")[:]


@pytest.mark.parametrize("output", ["out/codes.zarr", "out/codes.npy"])
@pytest.mark.parametrize("source", ["in.npy", "absolute"])
def test_relative_paths_are_the_clients_not_the_workers(elsewhere_address, workers_folder, images, tmp_path,
                                                        output, source):
    source = tmp_path / "in.npy" if source == "absolute" else source
    dest = aefast.dask.process_file("compress", None, source, output, address=elsewhere_address, chunk_rows=64)
    assert dest == tmp_path / output
    np.testing.assert_array_equal(_read(tmp_path / output), aefast.load(DEFAULT_MODEL_PATH).compress(images))
    assert sorted(p.name for p in workers_folder.iterdir()) == ["in.npy"]   # nothing written in the workers' folder
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [os.path.basename(output)]


def test_aefast_command_with_a_relative_output(elsewhere_address, workers_folder, images, tmp_path, capsys):
    from aefast.cli import main

    assert main(["compress", str(tmp_path / "in.npy"), "-o", "out/codes.zarr", "--dask", elsewhere_address]) == 0
    assert "wrote " + str(tmp_path / "out/codes.zarr") in capsys.readouterr().err
    np.testing.assert_array_equal(_read(tmp_path / "out/codes.zarr"), aefast.load(DEFAULT_MODEL_PATH).compress(images))
    assert sorted(p.name for p in workers_folder.iterdir()) == ["in.npy"]


def test_worker_view_names_what_a_worker_cannot_reach(tmp_path):
    src, tmp = tmp_path / "in.npy", tmp_path / ".out.npy.x.tmp"
    np.save(src, np.zeros((2, 28, 28), np.uint8))
    tmp.touch()
    size, mtime = os.stat(src).st_size, os.stat(src).st_mtime_ns // 1_000_000_000
    assert _worker_view(str(src), (size, mtime), str(tmp)) == []
    assert _worker_view(str(src), (size + 1, mtime), str(tmp)) == [
        f"sees a different file at {src} (size, mtime {(size, mtime)}; the client's: {(size + 1, mtime)})"]
    assert _worker_view(str(tmp_path / "nope.npy"), None, str(tmp_path / "gone.tmp")) == [
        f"does not see the input {tmp_path / 'nope.npy'}",
        f"does not see the temporary output {tmp_path / 'gone.tmp'} the client created in {tmp_path}"]


@pytest.fixture
def private_worker(tmp_path):
    """A scheduler and one worker process that sees its own tmpfs over `tmp_path / 'shared'` (its own mount
    namespace), holding only a decoy `in.npy`: the client's files there do not exist for it, or are another file of
    the same name, as on a machine without the shared storage. Skipped where unshare/mount are not permitted."""
    shared = tmp_path / "shared"
    shared.mkdir()
    decoy = tmp_path / "decoy.npy"
    np.save(decoy, np.zeros((10, 28, 28), np.uint8))
    unshare = ["unshare", "-m", "--propagation", "private", "sh", "-c"]
    probe = subprocess.run([*unshare, f"mount -t tmpfs tmpfs {shared}"], capture_output=True, text=True)
    if probe.returncode != 0:
        pytest.skip(f"cannot give a worker its own mount namespace here (unshare -m; mount): {probe.stderr.strip()}")
    with distributed.LocalCluster(n_workers=0, processes=True, dashboard_address=":0") as cluster, \
            distributed.Client(cluster) as client:
        script = (f"mount -t tmpfs tmpfs {shared} && cp {decoy} {shared}/in.npy && "
                  f"exec {sys.executable} -m distributed.cli.dask_worker "
                  f"{cluster.scheduler_address} --nthreads 1 --no-nanny --no-dashboard")
        worker = subprocess.Popen([*unshare, script],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            client.wait_for_workers(1, timeout=120)
            yield shared, cluster.scheduler_address
        finally:
            worker.terminate()
            worker.wait(timeout=60)


def test_workers_that_cannot_see_the_files_are_refused_before_any_block(private_worker, tmp_path):
    shared, address = private_worker
    for name in ("data.npy", "in.npy"):   # the worker has no data.npy, and another in.npy
        np.save(shared / name, np.zeros((N_IMAGES, 28, 28), np.uint8))
    for name, problem in (("data.npy", "does not see the input"), ("in.npy", "sees a different file at")):
        for output in ("codes.npy", "codes.zarr"):
            with pytest.raises(ClusterError, match="cannot reach the job's files") as info:
                aefast.dask.process_file("compress", None, shared / name, shared / output, address=address)
            message = str(info.value)
            assert f"{problem} {shared / name}" in message and "does not see the temporary output" in message
            assert sorted(p.name for p in shared.iterdir()) == ["data.npy", "in.npy"]   # no output, no temporary


def test_aefast_command_reports_unreachable_files_as_one_error_line(private_worker, tmp_path, capsys):
    from aefast.cli import main

    shared, address = private_worker
    np.save(shared / "data.npy", np.zeros((N_IMAGES, 28, 28), np.uint8))
    assert main(["score", str(shared / "data.npy"), "-o", str(shared / "s.npy"), "--dask", address]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("aefast score: error: the Dask workers cannot reach"), err
    assert sorted(p.name for p in shared.iterdir()) == ["data.npy"]


def test_an_unreachable_scheduler_fails_fast_naming_the_address(tmp_path, monkeypatch, capfd):
    import socket

    from aefast.dask import files

    monkeypatch.setattr(files, "CONNECT_TIMEOUT_S", 1)
    with socket.socket() as s:   # a port that refuses: bound, never listening
        s.bind(("127.0.0.1", 0))
        address = "tcp://127.0.0.1:%d" % s.getsockname()[1]
        src = tmp_path / "in.npy"
        np.save(src, np.zeros((4, 28, 28), np.uint8))
        with pytest.raises(ClusterError, match=f"cannot connect to the Dask scheduler at {address} within 1 s"):
            aefast.dask.process_file("score", None, src, tmp_path / "s.npy", address=address)
        from aefast.cli import main
        from aefast.dask.__main__ import main as dask_main

        for run, prog in ((lambda: main(["score", str(src), "-o", str(tmp_path / "s.npy"), "--dask", address]),
                           "aefast score"),
                          (lambda: dask_main(["score", "default", str(src), str(tmp_path / "s.npy"), "--dask",
                                              address]), "python -m aefast.dask")):
            assert run() == 1
            err = capfd.readouterr().err.strip().splitlines()
            assert err[-1].startswith(f"{prog}: error: cannot connect to the Dask scheduler at {address}"), err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.npy"]
