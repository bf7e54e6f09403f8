"""The Dask scheduler killed in the middle of an `aefast ... --dask` job: one `error:` line, exit status 1, no
traceback, nothing written. The job is held mid-way deterministically: the worker's preload makes each block signal
that it started, then wait, so the scheduler is killed while a block is running."""
import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

distributed = pytest.importorskip("distributed")


def _wait_for(predicate, what: str, seconds: float = 120):
    deadline = time.monotonic() + seconds
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)


@pytest.fixture
def held_cluster(tmp_path):
    """(address, started-marker, scheduler process): a scheduler and one worker process whose blocks never finish."""
    started = tmp_path / "block-started"
    gate = tmp_path / "gate_preload.py"
    gate.write_text(textwrap.dedent(f"""
        import pathlib, time
        import aefast.dask.arrays as arrays

        def held_block(*args, **kwargs):
            pathlib.Path({str(started)!r}).touch()
            time.sleep(600)

        def dask_setup(worker):
            arrays._block = held_block
    """))
    scheduler_file = tmp_path / "scheduler.json"
    devnull = subprocess.DEVNULL
    scheduler = subprocess.Popen([sys.executable, "-m", "distributed.cli.dask_scheduler", "--host", "127.0.0.1",
                                  "--port", "0", "--no-dashboard", "--scheduler-file", str(scheduler_file)],
                                 stdout=devnull, stderr=devnull)
    worker = None
    try:
        _wait_for(scheduler_file.exists, "the scheduler file")
        _wait_for(lambda: "address" in scheduler_file.read_text(), "the scheduler address")
        address = json.loads(scheduler_file.read_text())["address"]
        worker = subprocess.Popen([sys.executable, "-m", "distributed.cli.dask_worker", address, "--nthreads", "1",
                                   "--no-nanny", "--no-dashboard", "--preload", str(gate)],
                                  stdout=devnull, stderr=devnull)
        with distributed.Client(address, timeout=60) as client:
            client.wait_for_workers(1, timeout=120)
        yield address, started, scheduler
    finally:
        for process in (worker, scheduler):
            if process is not None and process.poll() is None:
                process.kill()
                process.wait(timeout=60)


@pytest.mark.parametrize("command, output", [("compress", "codes.npy"), ("reconstruct", "recon.zarr")])
def test_scheduler_killed_mid_job_is_one_error_line_and_leaves_nothing(held_cluster, tmp_path, command, output):
    address, started, scheduler = held_cluster
    work = tmp_path / "work"
    work.mkdir()
    np.save(work / "in.npy", np.zeros((64, 28, 28), np.uint8))
    job = subprocess.Popen([sys.executable, "-m", "aefast", command, str(work / "in.npy"), "-o", str(work / output),
                            "--dask", address, "--batch-size", "16", "--quiet"],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        _wait_for(lambda: started.exists() or job.poll() is not None, "a block to start")
        assert job.poll() is None, job.communicate()
        scheduler.send_signal(signal.SIGKILL)
        scheduler.wait(timeout=60)
        out, err = job.communicate(timeout=180)
    finally:
        if job.poll() is None:
            job.kill()
            job.wait(timeout=60)
    assert job.returncode == 1, err
    assert "Traceback" not in err, err
    last = err.strip().splitlines()[-1]
    assert last.startswith(f"aefast {command}: error: the Dask cluster at {address} failed during the job"), err
    assert "nothing was written" in last
    assert os.listdir(work) == ["in.npy"]   # neither the output nor its temporary
