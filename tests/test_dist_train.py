"""`--distribute mirrored|multiworker` with real processes and real collectives on 127.0.0.1.

Two workers (`python -m aefast.train --distribute multiworker`, TF_CONFIG with free ports) train tiny runs; the
exported model must equal a single-process run with the same global batch, seed and data order within ATOL (the
all-reduce sums per-replica gradients in another order than one process does: float32 rounding, measured ~3e-8 on
weights of size ~0.4 after 20 steps). A killed worker must fail the job with a clear error, bounded by a timeout, and
the two workers must then --resume the run to the single-process result.
"""
import concurrent.futures
import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

pytest.importorskip("tensorflow")

from aefast.modelfile import read_model  # noqa: E402
from aefast.train import TrainConfig, train  # noqa: E402

pytestmark = [pytest.mark.train, pytest.mark.slow]

ATOL = 1e-5
# The PCA start puts offsets near 40 into the path's biases, where float32 steps are ~4e-6: reduction order differs
# between the replicas' and the single process's sums by a few ulps, so weights also get a relative tolerance.
RTOL = 1e-6
JOB_TIMEOUT_S = 180       # a whole two-worker job (TensorFlow start-up dominates on a loaded 2-core machine)
FAILURE_TIMEOUT_S = 90    # from killing a worker to the survivor's exit: health checks every 5 s, 2 tries
TINY = dict(hidden=(32,), latent=8, batch_size=64, lr=3e-3, train_limit=640, val_size=256, test_limit=256)
EPOCHS = 4


def _flags(**settings) -> list[str]:
    out = []
    for key, value in settings.items():
        flag = "--" + key.replace("_", "-")
        out += [flag, ",".join(map(str, value)) if isinstance(value, tuple) else str(value)]
    return out


def _free_ports(n: int) -> list[int]:
    """n ports the OS reports free now. TF_CONFIG must name every worker's port before the workers start, so the OS
    cannot hand a port straight to the worker that binds it: another process may take it in between, and
    _start_workers starts the job again when that happened."""
    socks = [socket.socket() for _ in range(n)]
    for s in socks:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


PORT_TRIES = 3


def _inodes(port: int, listening: bool) -> set[int]:
    """Inodes of the TCP sockets whose local port is `port` (any address, IPv4 or IPv6; only those in LISTEN when
    `listening`), from /proc/net."""
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(table) as f:
                rows = f.read().splitlines()[1:]
        except OSError:
            continue
        for row in rows:
            fields = row.split()
            if int(fields[1].rsplit(":", 1)[1], 16) == port and (fields[3] == "0A" or not listening):  # 0A: LISTEN
                found.add(int(fields[9]))
    return found


def _socket_inodes(pid: int) -> set[int]:
    inodes = set()
    try:
        fds = os.listdir(f"/proc/{pid}/fd")
    except OSError:
        return inodes
    for fd in fds:
        try:
            link = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        if link.startswith("socket:["):
            inodes.add(int(link[8:-1]))
    return inodes


def _port_taken_by_another(proc: subprocess.Popen, port: int) -> bool:
    return bool(_inodes(port, listening=False) - _socket_inodes(proc.pid))


def _all_listening(procs, ports, timeout: float) -> list[int]:
    """Wait until worker i listens on ports[i]; the ports another process took before its worker could bind them
    (that worker then fails to start its gRPC server). [] once all listen, or when a worker stopped for another
    reason or the time ran out (the caller's checks then report the worker's own log)."""
    if not os.path.isdir("/proc/net"):
        return []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if all(_inodes(port, listening=True) & _socket_inodes(p.pid) for p, port in zip(procs, ports)):
            return []
        stolen = [port for p, port in zip(procs, ports) if _port_taken_by_another(p, port)]
        if stolen or any(p.poll() is not None for p in procs):
            return stolen
        time.sleep(0.1)
    return []


def _env(index: int | None, ports: list[int] | None) -> dict:
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "CUDA_VISIBLE_DEVICES": "-1", "OMP_NUM_THREADS": "1"}
    env.pop("TF_CONFIG", None)
    if index is not None:
        env["TF_CONFIG"] = json.dumps({"cluster": {"worker": [f"127.0.0.1:{p}" for p in ports]},
                                       "task": {"type": "worker", "index": index}})
    return env


def _start_workers(args_per_worker: list[list[str]], tmp_path) -> list[subprocess.Popen]:
    """The workers, each listening on its TF_CONFIG port; a job whose port another process took first is started
    again on new ports, up to PORT_TRIES times."""
    lost = []
    for _ in range(PORT_TRIES):
        ports = _free_ports(len(args_per_worker))
        procs = []
        for i, args in enumerate(args_per_worker):
            with open(tmp_path / f"worker{i}.log", "w") as log:  # the child keeps its own copy of the descriptor
                procs.append(subprocess.Popen([sys.executable, "-m", "aefast.train", "--distribute", "multiworker",
                                               *args], stdout=log, stderr=subprocess.STDOUT, env=_env(i, ports),
                                              cwd=tmp_path))
        stolen = _all_listening(procs, ports, JOB_TIMEOUT_S)
        if not stolen:
            return procs
        lost.append(stolen)
        for p in procs:
            p.kill()
            p.wait()
    pytest.fail(f"another process took the workers' ports before they could bind them, {PORT_TRIES} times "
                f"(EADDRINUSE on {lost})")


def _wait(procs, timeout: float, tmp_path) -> list[int]:
    deadline = time.monotonic() + timeout
    try:
        return [p.wait(timeout=max(1.0, deadline - time.monotonic())) for p in procs]
    except subprocess.TimeoutExpired:
        for p in procs:
            p.kill()
        logs = "\n".join((tmp_path / f"worker{i}.log").read_text()[-3000:] for i in range(len(procs)))
        pytest.fail(f"the multi-worker job did not finish within {timeout} s:\n{logs}")


def _log(tmp_path, i: int) -> str:
    return (tmp_path / f"worker{i}.log").read_text()


def _assert_same_model(path_a, path_b):
    a, b = read_model(path_a), read_model(path_b)
    assert a.layer_sizes == b.layer_sizes
    for x, y in zip(a.kernels + a.biases, b.kernels + b.biases):
        np.testing.assert_allclose(x, y, rtol=RTOL, atol=ATOL)


MIRRORED_SCRIPT = textwrap.dedent("""
    import sys
    import tensorflow as tf
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    from aefast.train import TrainConfig, train
    from aefast.train.distribute import make_placement
    assert make_placement("mirrored").replicas == 2
    result = train(TrainConfig(**eval(sys.argv[1])), verbose=False)
    print(result.model_path)
""")


@pytest.fixture(scope="module")
def mirrored_job(mnist_dir, tmp_path_factory):
    """Starts the mirrored run (its own process: logical devices must be set before TensorFlow starts) at once, so
    it overlaps the multi-worker job, which spends most of its time waiting; returns a function that waits for it."""
    out = tmp_path_factory.mktemp("mirrored")
    settings = {**TINY, "epochs": EPOCHS, "distribute": "mirrored", "data_dir": str(mnist_dir), "out": str(out),
                "name": "run"}
    with open(out / "stdout", "w") as stdout, open(out / "stderr", "w") as stderr:
        proc = subprocess.Popen([sys.executable, "-c", MIRRORED_SCRIPT, repr(settings)], env=_env(None, None),
                                stdout=stdout, stderr=stderr)

    def wait():
        try:
            code = proc.wait(timeout=JOB_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            proc.kill()
            pytest.fail(f"the mirrored run did not finish within {JOB_TIMEOUT_S} s")
        return code, (out / "stdout").read_text(), (out / "stderr").read_text()

    yield wait
    proc.kill()
    proc.wait()


@pytest.fixture(scope="module")
def reference(mnist_dir, tmp_path_factory):
    """The TINY run over EPOCHS in this process, single device (XLA off, as the distributed CPU runs have it),
    trained in a thread while the distributed jobs run: a Future of its TrainResult."""
    config = TrainConfig(**TINY, epochs=EPOCHS, xla=False, data_dir=str(mnist_dir),
                         out=str(tmp_path_factory.mktemp("ref")), name="run")
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        yield pool.submit(train, config, verbose=False)


def test_two_workers_fail_clearly_when_one_dies_then_resume_to_the_single_process_model(mnist_dir, tmp_path,
                                                                                      mirrored_job, reference):
    """One job, three promises (one job because each worker start costs ~15 s of TensorFlow start-up): a killed
    worker fails the job with a clear error within FAILURE_TIMEOUT_S; both workers --resume it to completion; the
    model equals the single-process one. The non-chief is given another --out: it must never create it."""
    common = _flags(**TINY, epochs=EPOCHS, data_dir=mnist_dir, name="run") + ["--quiet"]
    procs = _start_workers([common + ["--out", "runs"], common + ["--out", "other"]], tmp_path)
    run_dir = tmp_path / "runs" / "run"
    history = run_dir / "history.csv"
    deadline = time.monotonic() + JOB_TIMEOUT_S
    while not (history.exists() and len(history.read_text().splitlines()) >= 2):  # epoch 1 is done
        if time.monotonic() > deadline or any(p.poll() is not None for p in procs):
            for p in procs:
                p.kill()
            pytest.fail("the workers did not finish epoch 1:\n" + _log(tmp_path, 0)[-3000:])
        time.sleep(0.2)
    procs[1].send_signal(signal.SIGKILL)
    killed = time.monotonic()
    code = _wait(procs[:1], FAILURE_TIMEOUT_S, tmp_path)[0]
    procs[1].wait()
    chief_log = _log(tmp_path, 0)
    assert code == 1, chief_log[-3000:]
    assert "another worker stopped or became unreachable" in chief_log and "--resume" in chief_log
    assert time.monotonic() - killed < FAILURE_TIMEOUT_S
    assert (run_dir / "checkpoint.npz").exists()  # the last finished epoch's checkpoint survives the failure

    procs = _start_workers([["--resume", str(run_dir), "--quiet"]] * 2, tmp_path)
    assert _wait(procs, JOB_TIMEOUT_S, tmp_path) == [0, 0], _log(tmp_path, 0)[-3000:] + _log(tmp_path, 1)[-3000:]
    assert str(run_dir / "model.safetensors") in _log(tmp_path, 0)   # the chief prints the model path
    assert "the chief wrote" in _log(tmp_path, 1)
    assert not (tmp_path / "other").exists()  # the non-chief worker wrote nothing, in either job
    assert {"config.json", "model.safetensors", "history.csv", "metrics.json", "checkpoint.npz", "loss.png"} <= \
        {p.name for p in run_dir.iterdir()}
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["epochs_run"] == EPOCHS and metrics["xla"] is False  # XLA cannot compile the CPU all-reduce
    assert json.loads((run_dir / "config.json").read_text())["config"]["distribute"] == "multiworker"
    ref = reference.result(timeout=JOB_TIMEOUT_S)
    _assert_same_model(run_dir / "model.safetensors", ref.model_path)
    val = [float(line.split(",")[2]) for line in history.read_text().splitlines()[1:]]
    np.testing.assert_allclose(val, [row["val_loss"] for row in ref.history], rtol=1e-4)




def test_a_port_taken_before_its_worker_binds_it_is_detected(tmp_path):
    """_start_workers starts the job again when another process took a worker's port; here a listening socket of
    this process plays the thief, and two small Python processes play the workers."""
    listen = "import socket, sys, time; s = socket.socket(); s.bind(('127.0.0.1', int(sys.argv[1]))); s.listen(); " \
             "time.sleep(60)"
    thief = socket.socket()
    thief.bind(("127.0.0.1", 0))
    thief.listen()
    taken, free = thief.getsockname()[1], _free_ports(1)[0]
    procs = [subprocess.Popen([sys.executable, "-c", listen, str(port)]) for port in (taken, free)]
    try:
        assert _all_listening(procs, [taken, free], 60) == [taken]
    finally:
        thief.close()
        for p in procs:
            p.kill()
            p.wait()
    procs = [subprocess.Popen([sys.executable, "-c", listen, str(port)]) for port in _free_ports(2)]
    try:
        assert _all_listening(procs, [int(p.args[-1]) for p in procs], 60) == []
    finally:
        for p in procs:
            p.kill()
            p.wait()


def test_mirrored_over_two_logical_cpus_trains_the_single_process_model(mirrored_job, reference):
    code, stdout, stderr = mirrored_job()
    assert code == 0, stderr[-3000:]
    _assert_same_model(stdout.strip().splitlines()[-1], reference.result(timeout=JOB_TIMEOUT_S).model_path)


def test_distribute_flags_are_validated(tmp_path, monkeypatch, capsys):
    from aefast.train.cli import main
    from aefast.train.distribute import check_batch, make_placement, tf_config

    with pytest.raises(SystemExit) as exit_info:
        main(["--distribute", "ring"])
    assert exit_info.value.code == 2 and "--distribute" in capsys.readouterr().err
    monkeypatch.delenv("TF_CONFIG", raising=False)
    with pytest.raises(ValueError, match="needs the TF_CONFIG environment variable"):
        tf_config()
    monkeypatch.setenv("TF_CONFIG", '{"cluster": {}}')
    with pytest.raises(ValueError, match="TF_CONFIG is not a valid cluster description"):
        tf_config()
    placement = make_placement("none")
    placement.replicas = 3
    with pytest.raises(ValueError, match="batch_size 64 must be a multiple of the 3 replicas"):
        check_batch(placement, 64)
